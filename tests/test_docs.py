"""The README (the front door) and the Sphinx site in docs/."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 200
THE_TWO_COMMANDS = (
    "bash scripts/setup.sh && .venv/bin/sb3-distill",
    'bash scripts/setup.sh && .venv/bin/python -m pytest -m "not slow"',
)
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|root|home|tmp)/")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
NOT_RUN = "<!-- not run -->"


def docs_pages() -> list[Path]:
    return sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.parts)


def test_readme_is_short_and_has_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    for command in THE_TWO_COMMANDS:
        assert command in text, f"README.md lost the command {command!r}"
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text


def test_readme_names_every_student():
    text = README.read_text()
    for student in ("DistilledDQN", "DistilledQRDQN", "DistilledPPO", "DistilledSAC", "DistilledTD3"):
        assert student in text


@pytest.mark.parametrize("path", [README, *docs_pages()], ids=lambda path: str(path.relative_to(ROOT)))
def test_no_absolute_machine_paths(path):
    bad = [(number, line) for number, line in enumerate(path.read_text().splitlines(), 1) if MACHINE_PATH.search(line)]
    assert not bad, f"{path.relative_to(ROOT)} names paths of one machine: {bad}"


def relative_links(text: str) -> list[str]:
    links = [match.group(1) for match in MARKDOWN_LINK.finditer(text)]
    return [link for link in links if not re.match(r"[a-z]+:", link) and not link.startswith("#")]


def test_readme_relative_links_exist():
    links = relative_links(README.read_text())
    assert links, "the README links to its docs pages"
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_docs_relative_links_exist():
    missing = []
    for page in docs_pages():
        for link in relative_links(page.read_text()):
            if not (page.parent / link.split("#")[0]).exists():
                missing.append(f"{page.relative_to(ROOT)}: {link}")
    assert not missing, f"links to files that do not exist: {missing}"


def test_every_page_is_in_a_toctree():
    index = (DOCS / "index.md").read_text()
    for page in docs_pages():
        if page.name != "index.md":
            assert re.search(rf"^{page.stem}$", index, re.MULTILINE), f"docs/{page.name} is in no toctree of docs/index.md"


@pytest.mark.slow
def test_sphinx_build_without_warnings(tmp_path):
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "index.html").exists()
    assert "DistilledSAC" in (out / "api.html").read_text()
    cli_page = (out / "cli_reference.html").read_text()
    assert "--algo" in cli_page
    assert "sb3-distill distill" in cli_page


def python_blocks() -> list[tuple[str, str]]:
    """Every ```python block of docs/*.md, except those preceded by a ``<!-- not run -->`` line (fragments)."""
    blocks = []
    for page in docs_pages():
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip() == "```python":
                previous = next((lines[i].strip() for i in range(number - 1, -1, -1) if lines[i].strip()), "")
                end = lines.index("```", number + 1)
                if previous != NOT_RUN:
                    blocks.append((f"{page.relative_to(ROOT)}:{number + 1}", "\n".join(lines[number + 1 : end])))
    return blocks


@pytest.mark.slow
@pytest.mark.parametrize(("where", "code"), python_blocks(), ids=[where for where, _ in python_blocks()])
def test_python_blocks_run(where, code, tmp_path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=900
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stderr[-3000:]}"
