"""docs/generate_results.py: the docs' results pages, generated from the committed files under benchmarks/results/."""

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|root|home|tmp)/")
# The benchmarks issue #23 asks a page for (slug: folder under benchmarks/results/)
EXPECTED_PAGES = {
    "sample_efficiency_v2": "sample_efficiency_v2",
    "early_evaluations": "early_evaluations",
    "continuous": "continuous",
    "continuous_heldout": "continuous_heldout",
    "minatar": "minatar",
    "inference": "inference",
    "overhead": "overhead",
    "size_search": "size_search",
    "teacher_kinds": "teacher_kinds",
    "stability": "stability",
}
# Learning benchmarks: the CSV of one row per env and arm
LEARNING_TABLES = {
    "sample_efficiency_v2": "results.csv",
    "early_evaluations": "results.csv",
    "continuous": "summary.csv",
    "continuous_heldout": "summary.csv",
    "minatar": "results.csv",
}


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_results", ROOT / "docs" / "generate_results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generator = load_generator()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "results"
    generator.main(out)
    return out


def read_rows(folder: str, name: str) -> list[dict]:
    with open(RESULTS / folder / name, newline="") as file_handler:
        return list(csv.DictReader(file_handler))


def read_json(folder: str, name: str) -> dict:
    with open(RESULTS / folder / name) as file_handler:
        return json.load(file_handler)


def ci(value, low, high) -> str:
    return f"{float(value):.2f} [{float(low):.2f}, {float(high):.2f}]"


def table_line(text: str, *first_cells: str) -> str:
    """The table row of a page that starts with these cells."""
    start = "| " + " | ".join(first_cells) + " |"
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert len(lines) == 1, f"{len(lines)} table rows start with {start!r}"
    return lines[0]


def section(text: str, title: str) -> str:
    """The part of a page under its heading ``## title``."""
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def header_of(text: str, line: str) -> list[str]:
    """The header cells of the table a row belongs to."""
    lines = text.splitlines()
    number = lines.index(line)
    while number > 0 and lines[number - 1].startswith("|"):
        number -= 1
    return cells(lines[number])


def summary_of(slug: str) -> dict:
    benchmark = next(benchmark for benchmark in generator.BENCHMARKS if benchmark.slug == slug)
    return read_json(benchmark.source, benchmark.summary)


def test_a_page_per_benchmark_and_an_index(pages):
    index = (pages / "index.md").read_text()
    block = index.split("```{toctree}")[1].split("```")[0]
    toctree = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith(":")]
    for slug in EXPECTED_PAGES:
        page = pages / f"{slug}.md"
        assert page.is_file(), f"no page for benchmarks/results/{EXPECTED_PAGES[slug]}/"
        assert page.read_text().startswith(generator.MARKER)
        assert re.search(r"^# \S", page.read_text(), re.MULTILINE), f"{slug}.md has no title"
        assert slug in toctree, f"{slug} is not in results/index.md's toctree"
        assert f"]({slug}.md)" in index
    written = {path.stem for path in pages.glob("*.md")} - {"index"}
    assert written == {benchmark.slug for benchmark in generator.BENCHMARKS} == set(toctree)


def test_continuous_distilled_sac_score_is_in_the_table(pages):
    row = next(row for row in read_rows("continuous", "summary.csv") if row["arm"] == "distilled SAC")
    line = table_line((pages / "continuous.md").read_text(), "Pendulum-v1", "distilled SAC")
    assert ci(row["final_score_iqm"], row["final_score_ci_low"], row["final_score_ci_high"]) in cells(line)
    assert ci(row["steps_ratio_iqm"], row["steps_ratio_ci_low"], row["steps_ratio_ci_high"]) in cells(line)
    assert f"{int(row['parameters']):,}" in cells(line)
    assert f"{int(row['budget']):,}" in cells(line)
    assert f"{100 * float(row['parameter_ratio']):.2f}%" in cells(line)


@pytest.mark.parametrize("slug", sorted(LEARNING_TABLES))
def test_every_env_and_arm_has_its_row(pages, slug):
    text = (pages / f"{slug}.md").read_text()
    rows = read_rows(slug, LEARNING_TABLES[slug])
    over_envs = {row["env_id"] for row in summary_of(slug).get("over_envs", [])}
    per_env = [row for row in rows if row["env_id"] not in over_envs]
    assert per_env
    for row in per_env:
        line = table_line(text, row["env_id"], row["arm"])
        shown = dict(zip(header_of(text, line), cells(line), strict=True))
        final = ci(row["final_score_iqm"], row["final_score_ci_low"], row["final_score_ci_high"])
        assert shown["final score IQM [95% CI]"] == final
        assert shown["parameters"] == f"{int(row['parameters']):,}"
        assert shown["online steps to 95% (IQM)"] == f"{round(float(row['steps_to_95_iqm'])):,}"
        assert shown["reached 95%"] == f"{row['seeds_reached_95']}/{row['seeds']}"
        if row["steps_ratio_iqm"]:
            ratio = ci(row["steps_ratio_iqm"], row["steps_ratio_ci_low"], row["steps_ratio_ci_high"])
            assert shown["steps ratio [95% CI]"] == ratio
        else:
            assert shown["steps ratio [95% CI]"] == "n/a"
    for row in summary_of(slug).get("over_envs", []):
        line = table_line(text, row["env_id"], row["arm"])
        assert ci(row["final_score_iqm"], row["final_score_ci_low"], row["final_score_ci_high"]) in cells(line)


def test_values_of_the_other_benchmarks(pages):
    # inference: the student's latency and its share of the teacher
    rows = {row["model"]: row for row in read_rows("inference", "inference.csv")}
    line = table_line((pages / "inference.md").read_text(), "student")
    share = 100 * int(rows["student"]["parameters"]) / int(rows["teacher"]["parameters"])
    assert f"{float(rows['student']['latency_batch1_us']):.1f}" in cells(line)
    assert f"{share:.2f}%" in cells(line)
    # overhead: the ratio to DQN with its quartiles
    row = read_rows("overhead", "overhead.csv")[1]
    line = table_line((pages / "overhead.md").read_text(), row["env_id"], row["variant"])
    assert ci(row["ratio_to_dqn"], row["ratio_q25"], row["ratio_q75"]) in cells(line)
    # size search: each env's smallest student
    text = section((pages / "size_search.md").read_text(), "Smallest student per env")
    for row in read_rows("size_search", "smallest.csv"):
        line = table_line(text, row["env_id"], row["trial"])
        assert ci(row["iqm"], row["ci_low"], row["ci_high"]) in cells(line)
        assert f"{int(row['onnx_bytes']):,}" in cells(line)
    # teacher kinds: the IQM and its CI from the JSON
    text = section((pages / "teacher_kinds.md").read_text(), "Results")
    for teacher, result in read_json("teacher_kinds", "teacher_kinds.json")["summary"].items():
        assert ci(result["iqm_normalized"], *result["iqm_ci95"]) in cells(table_line(text, teacher))
    # stability: the late dips of each alpha over all seeds
    summary = read_json("stability", "summary.json")
    text = section((pages / "stability.md").read_text(), "Means over seeds")
    for means in summary["means"]:
        line = table_line(text, means["alpha"])
        assert str(summary["dips_total"][means["alpha"]]) in cells(line)
        assert f"{means['final_score']:.2f}" in cells(line)


@pytest.mark.parametrize("benchmark", [benchmark.slug for benchmark in generator.BENCHMARKS])
def test_command_and_machine_are_on_the_page(pages, benchmark):
    summary = summary_of(benchmark)
    text = (pages / f"{benchmark}.md").read_text()
    assert f"```bash\n{generator.relative_paths(summary['command'])}\n```" in text
    assert summary["machine"] in text
    if not MACHINE_PATH.search(summary["command"]):
        assert summary["command"] in text


def test_machine_paths_are_shown_relative():
    assert generator.relative_paths("/work/main/zoo_configs/teachers/CartPole-v1_dqn.zip") == (
        "zoo_configs/teachers/CartPole-v1_dqn.zip"
    )
    assert generator.relative_paths(f"{ROOT}/benchmarks/results/x.json") == "benchmarks/results/x.json"
    assert generator.relative_paths("run --ppo-teacher /tmp/ppo/logs/ppo/CartPole-v1_1 --seeds 5") == (
        "run --ppo-teacher CartPole-v1_1 --seeds 5"
    )
    assert generator.relative_paths("teacher:'/root/t.zip'") == "teacher:'t.zip'"
    for untouched in ("https://download.pytorch.org/whl/cpu", "zoo_configs/sac.yml", "x86_64, 2 CPU cores, no GPU"):
        assert generator.relative_paths(untouched) == untouched


def test_no_machine_path_on_any_page(pages):
    # the committed files do name paths of the machine that ran them
    assert "/tmp/" in read_json("teacher_kinds", "teacher_kinds.json")["command"]
    assert read_json("stability", "summary.json")["reference"]["teacher_path"].startswith("/work/main/")
    for page in pages.glob("*.md"):
        bad = [line for line in page.read_text().splitlines() if MACHINE_PATH.search(line)]
        assert not bad, f"{page.name} names paths of one machine: {bad}"
    assert "`zoo_configs/teachers/CartPole-v1_dqn.zip`" in (pages / "stability.md").read_text()


def test_figures_are_copied_and_shown(pages):
    shown = 0
    for benchmark in generator.BENCHMARKS:
        text = (pages / f"{benchmark.slug}.md").read_text()
        for figure in sorted((RESULTS / benchmark.source).glob("*.png")):
            copy = pages / benchmark.slug / figure.name
            assert copy.read_bytes() == figure.read_bytes(), f"{figure} is not copied next to {benchmark.slug}.md"
            assert re.search(rf"!\[[^\]]+\]\({benchmark.slug}/{re.escape(figure.name)}\)", text)
            shown += 1
    assert shown >= 8
    for name in ("iqm_curves.png", "performance_profile.png"):
        assert (pages / "sample_efficiency_v2" / name).is_file()
    for slug, name in (("inference", "inference.png"), ("overhead", "overhead.png"), ("size_search", "pareto_fronts.png")):
        assert f"]({slug}/{name})" in (pages / f"{slug}.md").read_text()


def test_a_column_the_benchmark_did_not_write_is_left_out(pages):
    assert "stored_transitions" in read_rows("overhead", "overhead.csv")[0]
    assert "stored_transitions" not in read_rows("overhead_256x256", "overhead.csv")[0]
    assert "stored transitions" in (pages / "overhead.md").read_text()
    assert "stored transitions" not in (pages / "overhead_256x256.md").read_text()
    # early_evaluations' own columns
    assert "on the main grid" in (pages / "early_evaluations.md").read_text()
    assert "on the main grid" not in (pages / "sample_efficiency_v2.md").read_text()


def results_without(tmp_path: Path, missing: str) -> Path:
    """A copy of benchmarks/results/ (links) without the folder or file ``missing``."""
    copy = tmp_path / "results"
    copy.mkdir(parents=True)
    for folder in RESULTS.iterdir():
        if folder.name == missing:
            continue
        if missing.startswith(folder.name + "/"):
            (copy / folder.name).mkdir()
            for path in folder.iterdir():
                if f"{folder.name}/{path.name}" != missing:
                    (copy / folder.name / path.name).symlink_to(path)
        else:
            (copy / folder.name).symlink_to(folder)
    return copy


def test_a_missing_results_folder_is_an_error_naming_it(tmp_path):
    out = tmp_path / "pages"
    with pytest.raises(generator.ResultsError, match=r"benchmarks/results/continuous/ is missing"):
        generator.main(out, results_without(tmp_path, "continuous"))
    assert not out.exists(), "nothing is written when a benchmark is missing"


def test_a_missing_figure_or_column_is_an_error_naming_it(tmp_path):
    with pytest.raises(generator.ResultsError, match=r"minatar/iqm_curves.png is missing"):
        generator.main(tmp_path / "pages", results_without(tmp_path / "a", "minatar/iqm_curves.png"))
    results = results_without(tmp_path / "b", "continuous/summary.csv")
    rows = read_rows("continuous", "summary.csv")
    with open(results / "continuous" / "summary.csv", "w", newline="") as file_handler:
        columns = [name for name in rows[0] if name != "final_score_ci_low"]
        writer = csv.DictWriter(file_handler, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(generator.ResultsError, match=r"continuous/summary.csv lacks the columns \['final_score_ci_low'\]"):
        generator.main(tmp_path / "pages", results)


def test_regenerating_keeps_unchanged_files_and_removes_stale_pages(pages, tmp_path):
    out = tmp_path / "results"
    generator.main(out)
    page = out / "continuous.md"
    figure = out / "minatar" / "iqm_curves.png"
    os.utime(page, (1, 1))
    os.utime(figure, (1, 1))
    (out / "gone.md").write_text(generator.MARKER + "\n\n# A benchmark no longer listed\n")
    (out / "gone").mkdir()
    (out / "gone" / "curve.png").write_bytes(b"png")
    (out / "notes.md").write_text("# Written by hand\n")
    generator.main(out)
    assert page.stat().st_mtime == 1 and figure.stat().st_mtime == 1, "unchanged files are not rewritten"
    assert not (out / "gone.md").exists() and not (out / "gone").exists()
    assert (out / "notes.md").exists(), "only the generator's own pages are removed"
    assert page.read_text() == (pages / "continuous.md").read_text()


def test_command_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "generate_results.py"), str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "index.md").is_file()
    assert (tmp_path / "out" / "sample_efficiency_v2" / "iqm_curves.png").is_file()
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "generate_results.py"), str(tmp_path / "out2"),
                             "--results-dir", str(results_without(tmp_path, "minatar"))], capture_output=True, text=True)
    assert result.returncode == 1
    assert "benchmarks/results/minatar/ is missing" in result.stderr
