"""The README (the front door) and the Sphinx site in docs/."""

import importlib.util
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request
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
# Written at every build by docs/generate_results.py (gitignored): checked through a fresh generation, below
GENERATED = DOCS / "results"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


def docs_pages() -> list[Path]:
    """The hand-written pages of docs/ (not the build, not the generated results pages)."""
    return sorted(path for path in DOCS.rglob("*.md") if "_build" not in path.parts and GENERATED not in path.parents)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """The results pages as the docs build writes them into docs/results/, written into a temporary docs/results/."""
    spec = importlib.util.spec_from_file_location("generate_results", DOCS / "generate_results.py")
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator
    spec.loader.exec_module(generator)
    out = tmp_path_factory.mktemp("docs") / GENERATED.name
    generator.main(out)
    return out


def toctree_entries(text: str) -> list[str]:
    entries = []
    for block in re.findall(r"```\{toctree\}\n(.*?)```", text, re.DOTALL):
        entries += [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith(":")]
    return entries


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


def link_target(page: Path, link: str, generated: Path) -> Path:
    """Where a link of a docs page points, a link into docs/results/ (or from it) resolved in the fresh generation."""
    target = Path(os.path.normpath(page.parent / link.split("#")[0]))
    if target == GENERATED or GENERATED in target.parents:
        return generated / target.relative_to(GENERATED)
    if generated in page.parents and generated not in target.parents and target != generated:
        return DOCS / target.relative_to(generated.parent)
    return target


def test_docs_relative_links_exist(generated):
    missing = []
    for page in [*docs_pages(), *sorted(generated.glob("*.md"))]:
        for link in relative_links(page.read_text()):
            if not link_target(page, link, generated).exists():
                where = page.relative_to(ROOT) if ROOT in page.parents else f"docs/results/{page.name} (generated)"
                missing.append(f"{where}: {link}")
    assert not missing, f"links to files that do not exist: {missing}"
    assert "results/index.md" in relative_links((DOCS / "results.md").read_text()), "docs/results.md links to the tables"


def test_every_page_is_in_a_toctree(generated):
    index = toctree_entries((DOCS / "index.md").read_text())
    for page in docs_pages():
        if page != DOCS / "index.md":
            name = page.relative_to(DOCS).with_suffix("").as_posix()
            assert name in index, f"docs/{name}.md is in no toctree of docs/index.md"
    # the generated pages: through results/index, itself in docs/index.md's toctree
    assert f"{GENERATED.name}/index" in index
    results_index = toctree_entries((generated / "index.md").read_text())
    pages = sorted(page.stem for page in generated.glob("*.md") if page.name != "index.md")
    assert len(pages) >= 10
    for page in pages:
        assert page in results_index, f"docs/results/{page}.md is in no toctree of docs/results/index.md"


@pytest.fixture(scope="module")
def built_site(tmp_path_factory) -> Path:
    """The site built as scripts/build_docs.sh does (warnings as errors), into a temporary folder."""
    out = tmp_path_factory.mktemp("site") / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.mark.slow
def test_sphinx_build_without_warnings(built_site):
    out = built_site
    assert (out / "index.html").exists()
    assert (out / "results" / "index.html").exists()
    assert (out / "results" / "continuous.html").exists()
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served_site(built_site):
    """The built site served by ``python -m http.server`` on a free localhost port; yields its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(built_site)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/index.html", timeout=2) as response:
                    assert response.status == 200
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (after checking the signature)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_screenshot(path: Path) -> None:
    """The screenshot exists and shows a page: full size, many colours (text, the dark sidebar), not a blank."""
    import matplotlib.image
    import numpy as np

    assert path.is_file(), f"no screenshot {path}"
    width, height = png_size(path)
    assert width >= 1000 and height >= 700, (width, height)
    assert path.stat().st_size > 20_000, f"{path} is {path.stat().st_size} bytes: a blank page?"
    pixels = matplotlib.image.imread(path)[..., :3].reshape(-1, 3)
    assert len(np.unique(np.round(pixels * 255).astype(np.uint8), axis=0)) > 50


@pytest.mark.slow
def test_browser_renders_the_site(built_site, served_site, tmp_path):
    """Headless Chromium opens the served site: the front page, its navigation sidebar, the API page, a results page;
    screenshots go next to the build (``<build>/../screenshots/``)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian: apt-get install chromium chromium-driver)")
    if not CHROMEDRIVER.exists():
        pytest.skip(f"{CHROMEDRIVER} is not installed (Debian: apt-get install chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the tests extra)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    screenshots = built_site.parent / "screenshots"
    screenshots.mkdir(exist_ok=True)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(f"{served_site}/index.html")
        assert driver.title.startswith("sb3-distill"), driver.title
        assert driver.find_element(By.CSS_SELECTOR, "h1").text.startswith("sb3-distill")
        sidebar = driver.find_element(By.CSS_SELECTOR, "nav.wy-nav-side")
        assert sidebar.is_displayed()
        # the theme's stylesheet is applied: the sidebar is dark, not the browser's transparent default
        assert sidebar.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "transparent")
        links = driver.find_elements(By.CSS_SELECTOR, ".wy-menu a")
        targets = {link.get_attribute("href").split("#")[0].removeprefix(served_site + "/") for link in links}
        assert {"install.html", "api.html", "cli_reference.html", "results/index.html"} <= targets, targets
        assert "Install" in {link.text.split()[0] for link in links if link.text}
        driver.save_screenshot(str(screenshots / "front.png"))

        driver.get(f"{served_site}/api.html")
        assert driver.title.startswith("API reference"), driver.title
        student = driver.find_element(By.ID, "sb3_distill.DistilledSAC")
        assert student.is_displayed() and "DistilledSAC" in student.text
        current = driver.find_elements(By.CSS_SELECTOR, ".wy-menu li.current > a")
        assert any(link.text == "API reference" for link in current)
        driver.execute_script("arguments[0].scrollIntoView()", student)
        driver.save_screenshot(str(screenshots / "api.png"))

        driver.get(f"{served_site}/results/sample_efficiency_v2.html")
        assert "distilled, constant alpha" in driver.find_element(By.CSS_SELECTOR, "table").text
        images = driver.find_elements(By.CSS_SELECTOR, "div[role=main] img")
        assert len(images) == 2
        for image in images:
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 100
        driver.save_screenshot(str(screenshots / "results.png"))
    finally:
        driver.quit()
    for name in ("front.png", "api.png", "results.png"):
        assert_screenshot(screenshots / name)


def test_the_api_page_documents_every_public_name():
    import sb3_distill

    text = (DOCS / "api.md").read_text()
    automodules = set(re.findall(r"^\.\. automodule:: (\S+)", text, re.MULTILINE))
    listed = set(re.findall(r"^\.\. auto(?:class|function|data):: sb3_distill\.(\S+)", text, re.MULTILINE))
    for name in sb3_distill.__all__:
        module = getattr(getattr(sb3_distill, name), "__module__", None)
        documented = name in listed or module in automodules
        # A class re-exported by a documented module (ActionDistribution through sb3_distill.common.teacher)
        documented = documented or any(name in getattr(__import__(m, fromlist=["_"]), "__all__", ()) for m in automodules)
        assert documented, f"sb3_distill.{name} ({module}) is on no API page"
