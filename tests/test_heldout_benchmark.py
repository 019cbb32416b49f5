"""benchmarks/heldout_teachers.py's --smoke mode, run as a user runs it: teachers, students, table, then a resume."""

import json
import sys
from pathlib import Path

import pytest

from tests.test_benchmarks import read_csv, run_smoke

# Trains three tiny teachers through `sb3-distill teacher` and six students (about a minute on a 2-core CPU)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TEACHERS = ["CartPole-v1_dqn_seed2", "CartPole-v1_dqn_seed3", "CartPole-v1_dqn_seed4_zoo"]


def test_heldout_teachers_smoke_trains_teachers_and_students_and_resumes(tmp_path):
    output = run_smoke("heldout_teachers.py", tmp_path)
    # The teachers come from the project's CLI, each with its .json; the third with the RL Zoo's own config
    for name in TEACHERS:
        record = json.loads((tmp_path / "teachers" / f"{name}.json").read_text())
        assert (tmp_path / "teachers" / f"{name}.zip").exists()
        assert record["env_id"] == "CartPole-v1" and record["seed"] == int(name.split("seed")[1][0])
        assert record["command"].startswith("sb3-distill teacher")
    zoo = json.loads((tmp_path / "teachers" / f"{TEACHERS[2]}.json").read_text())
    assert zoo["config_file"].endswith(str(Path("rl_zoo3", "hyperparams", "dqn.yml")))
    assert "6 runs: 6 to train" in output
    rows = read_csv(tmp_path / "summary.csv")
    assert [row["teacher"] for row in rows] == [*TEACHERS, "held-out, all (3)"]
    for row, name in zip(rows, TEACHERS, strict=False):
        # The references are this teacher's, measured in its own folder
        references = json.loads((tmp_path / "CartPole-v1" / name / "references.json").read_text())
        assert references["CartPole-v1"]["teacher_path"].endswith(f"{name}.zip")
        assert float(row["teacher_return"]) == pytest.approx(references["CartPole-v1"]["teacher_return"])
        assert len(list((tmp_path / "CartPole-v1" / name / "runs" / "CartPole-v1").glob("*.json"))) == 2
        assert int(row["seeds"]) == 2 and int(row["student_parameters"]) == 450
        assert float(row["parameter_share"]) == pytest.approx(450 / 67_586)
        # The teacher scored as its own student: one final evaluation per student seed, on its own references
        ceiling = json.loads((tmp_path / "CartPole-v1" / name / "teacher_as_student.json").read_text())
        assert ceiling["seeds"] == 2 and ceiling["final_episodes"] == 2 and len(ceiling["final_scores"]) == 2
        teacher_return, random_return = float(row["teacher_return"]), float(row["random_return"])
        expected = [(value - random_return) / (teacher_return - random_return) for value in ceiling["final_returns"]]
        assert ceiling["final_scores"] == pytest.approx(expected)
        assert float(row["teacher_as_student_min"]) == pytest.approx(min(expected))
        assert int(row["teacher_as_student_below_0.90"]) == sum(score < 0.9 for score in expected)
    for row in rows:
        assert float(row["final_score_ci_low"]) <= float(row["final_score_iqm"]) <= float(row["final_score_ci_high"])
        assert float(row["final_score_min"]) <= float(row["final_score_iqm"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["command"].startswith("python ") and summary["machine"] and len(summary["rows"]) == 4
    # A rerun trains nothing: teachers and runs are read back, the table is the same
    rerun = run_smoke("heldout_teachers.py", tmp_path)
    assert rerun.count("already trained, skipped") == 3 and "6 runs: 0 to train" in rerun
    assert read_csv(tmp_path / "summary.csv") == rows

    # A recipe variant, on the same teachers: its own students, on the shipped teacher too
    variant = tmp_path / "variant"
    output = run_smoke("heldout_teachers.py", variant, "--teachers-dir", str(tmp_path / "teachers"), "-params", "alpha:1.0")
    assert output.count("already trained, skipped") == 3 and "8 runs: 8 to train" in output
    assert not (variant / "teachers").exists()
    variant_rows = read_csv(variant / "summary.csv")
    assert [row["teacher"] for row in variant_rows] == ["shipped", *TEACHERS, "held-out, all (3)"]
    shipped = json.loads((variant / "CartPole-v1" / "shipped" / "references.json").read_text())["CartPole-v1"]
    assert shipped["teacher_path"] == "zoo_configs/teachers/CartPole-v1_dqn.zip"
    assert json.loads((variant / "summary.json").read_text())["hyperparams"] == {"alpha": 1.0}


def test_heldout_table_includes_the_shipped_teachers_row():
    sys.path.insert(0, str(ROOT))
    from benchmarks.heldout_teachers import shipped_row

    row = shipped_row("CartPole-v1")
    assert row is not None and row["teacher"] == "shipped" and row["seeds"] == 10
    results = read_csv(ROOT / "benchmarks" / "results" / "sample_efficiency_v2" / "results.csv")
    (expected,) = [r for r in results if r["env_id"] == "CartPole-v1" and r["arm"] == "distilled, constant alpha"]
    assert row["final_score_iqm"] == pytest.approx(float(expected["final_score_iqm"]))
    assert row["final_score_ci_low"] == pytest.approx(float(expected["final_score_ci_low"]))
    assert shipped_row("NoSuchEnv-v0") is None


def test_a_variants_hyperparams_reach_every_student_but_not_the_teacher(tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks.heldout_teachers import student_jobs, teacher_specs

    specs = teacher_specs("CartPole-v1", ROOT / "benchmarks" / "results" / "heldout" / "teachers", shipped=True)
    assert [spec["name"] for spec in specs] == ["shipped", *TEACHERS]
    assert specs[0]["zip"] == ROOT / "zoo_configs" / "teachers" / "CartPole-v1_dqn.zip" and specs[0]["seed"] == 1
    (tmp_path / "CartPole-v1" / "shipped").mkdir(parents=True)
    references = {"teacher_return": 500.0, "teacher_std": 0.0, "random_return": 22.0, "teacher_parameters": 67_586}
    (tmp_path / "CartPole-v1" / "shipped" / "references.json").write_text(json.dumps({"CartPole-v1": {
        **references, "teacher_path": "zoo_configs/teachers/CartPole-v1_dqn.zip", "episodes": 100}}))  # fmt: skip
    _, jobs = student_jobs(specs[0], tmp_path, 3, False, 100, {"alpha": 1.0, "n_timesteps": 5000})
    assert [job["seed"] for job in jobs] == [0, 1, 2]
    for job in jobs:
        assert job["overrides"] == {"alpha": 1.0, "n_timesteps": 5000, "teacher": str(specs[0]["zip"].resolve())}
