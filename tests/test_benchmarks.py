"""Each benchmark's --smoke mode, run as a user runs it (a subprocess each: slow), so the scripts keep working."""

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# Each test starts a Python process that trains agents
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_smoke(script: str, output_dir: Path, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", "--output-dir", str(output_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as file_handler:
        return list(csv.DictReader(file_handler))


def test_sample_efficiency_smoke(tmp_path):
    output = run_smoke("sample_efficiency.py", tmp_path)
    arms = [
        "DQN scratch, student net",
        "DQN scratch, teacher net",
        "distilled, constant alpha",
        "distilled, performance alpha",
        "distilled, performance alpha + offline",
    ]
    rows = read_csv(tmp_path / "results.csv")
    # One env (smoke): one row per arm, no aggregate over envs
    assert [(row["env_id"], row["arm"]) for row in rows] == [("CartPole-v1", arm) for arm in arms]
    for row in rows:
        assert float(row["final_score_ci_low"]) <= float(row["final_score_iqm"]) <= float(row["final_score_ci_high"])
        assert int(row["seeds"]) == 2 and int(row["budget"]) == 300
        # Both scratch arms ran: every arm has a steps ratio to the best of them, with its CI
        assert float(row["steps_ratio_ci_low"]) <= float(row["steps_ratio_iqm"]) <= float(row["steps_ratio_ci_high"])
    assert float(rows[2]["parameter_ratio"]) == pytest.approx(450 / 67_586)
    # Only the offline arm uses the teacher's transitions: 10% of the 300-step budget
    assert [int(row["teacher_transitions"]) for row in rows] == [0, 0, 0, 0, 30]
    for name in ("iqm_curves.png", "performance_profile.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)
    curves = read_csv(tmp_path / "curves.csv")
    assert {int(row["timesteps"]) for row in curves} >= {0, 300}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["references"]["CartPole-v1"]["teacher_parameters"] == 67_586
    records = sorted((tmp_path / "runs" / "CartPole-v1").glob("*.json"))
    assert len(records) == 10 and "10 runs: 10 to train" in output
    # A rerun trains nothing: it reads the records back (untouched) and aggregates the same figures
    mtimes = [record.stat().st_mtime_ns for record in records]
    rerun = run_smoke("sample_efficiency.py", tmp_path)
    assert "10 runs: 0 to train" in rerun and "10 read back" in rerun
    assert [record.stat().st_mtime_ns for record in records] == mtimes
    assert read_csv(tmp_path / "results.csv") == rows
    # --no-train aggregates what is recorded and leaves a missing run out instead of training it
    records[0].unlink()
    output = run_smoke("sample_efficiency.py", tmp_path, "--no-train")
    assert "10 runs: 9 read back, 1 without a record left out (--no-train)" in output
    assert not records[0].exists()
    assert sum(int(row["seeds"]) for row in read_csv(tmp_path / "results.csv")) == 9
    assert len(read_csv(tmp_path / "runs.csv")) == 9


def test_minatar_students_smoke(tmp_path):
    pytest.importorskip("minatar.gym")
    output = run_smoke("minatar_students.py", tmp_path)
    rows = read_csv(tmp_path / "results.csv")
    arms = [
        "distilled, ~25%", "distilled, ~7%", "distilled, performance alpha, ~25%", "distilled, performance alpha, ~7%",
        "DQN scratch, ~25% net", "DQN scratch, ~7% net",
    ]  # fmt: skip
    assert [(row["env_id"], row["arm"]) for row in rows] == [("MinAtar/Breakout-v1", arm) for arm in arms]
    # The students' sizes on Breakout (3 actions): the same two networks distilled and from scratch
    assert [int(row["parameters"]) for row in rows] == [33_323, 9_511] * 3
    assert [float(row["parameter_ratio"]) for row in rows[:2]] == pytest.approx([33_323 / 132_179, 9_511 / 132_179])
    # The distilled arms run an offline phase (the entries' own made tiny; 10% of the 300-step budget for the
    # performance arms), the scratch arms use no teacher
    assert [int(row["teacher_transitions"]) for row in rows] == [30, 30, 30, 30, 0, 0]
    # The ratios are to the best scratch arm of the two nets
    assert {row["best_scratch_arm"] for row in rows} <= {"DQN scratch, ~25% net", "DQN scratch, ~7% net"}
    assert (tmp_path / "iqm_curves.png").read_bytes().startswith(PNG_SIGNATURE)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["references"]["MinAtar/Breakout-v1"]["teacher_parameters"] == 132_179
    # Named as in the package, not by this machine's path
    assert summary["arms"]["distilled, ~7%"]["conf_file"] == "zoo_configs/distilled_dqn_minatar_7pct.yml"
    assert summary["arms"]["distilled, ~25%"]["conf_file"] == "zoo_configs/distilled_dqn.yml"
    assert summary["final_episodes"]["distilled, ~25%"] == [2] and summary["reference_episodes"] == 2
    assert len(list((tmp_path / "runs" / "MinAtar" / "Breakout-v1").glob("*.json"))) == 6 and "6 to train" in output
    assert "6 runs: 0 to train" in run_smoke("minatar_students.py", tmp_path)
    # --no-train aggregates what is recorded (as sample_efficiency.py's) and trains nothing
    scratch_record = next((tmp_path / "runs" / "MinAtar" / "Breakout-v1").glob("DQN_scratch_~7%_net_seed0.json"))
    scratch_record.unlink()
    output = run_smoke("minatar_students.py", tmp_path, "--no-train")
    assert "6 runs: 5 read back, 1 without a record left out (--no-train)" in output
    assert not scratch_record.exists()
    assert [row["arm"] for row in read_csv(tmp_path / "results.csv")] == arms[:-1]


def test_overhead_smoke(tmp_path):
    output = run_smoke("overhead.py", tmp_path)
    rows = read_csv(tmp_path / "overhead.csv")
    assert [row["variant"] for row in rows] == ["DQN", "DistilledDQN, cache on", "DistilledDQN, cache off"]
    for row in rows:
        # The median ratio over rounds lies within its interquartile range; the smoke run's 3 rounds of 1 call
        assert float(row["ratio_q25"]) <= float(row["ratio_to_dqn"]) <= float(row["ratio_q75"])
        assert (int(row["rounds"]), int(row["calls_per_round"]), int(row["stored_transitions"])) == (3, 1, 300)
        assert 0 < float(row["ms_per_update_median"]) < 1_000
        # The printed table shows the CSV's figures
        assert f"{row['variant']:<26}{float(row['ms_per_update_median']):>12.3f}" in output
    assert (tmp_path / "overhead.png").read_bytes().startswith(PNG_SIGNATURE)


def test_overhead_buffer_holds_a_runs_mean_number_of_transitions():
    from benchmarks.overhead import mean_stored

    # Growing all run long; growing for a third of it, then full: (10k^2 / 2 + 20k * 10k) / 30k
    assert mean_stored(20_000, 50_000) == 10_000
    assert mean_stored(30_000, 10_000) == 8_333


def test_inference_smoke(tmp_path):
    run_smoke("inference.py", tmp_path)
    teacher, student = read_csv(tmp_path / "inference.csv")
    assert (teacher["model"], student["model"]) == ("teacher", "student")
    assert int(teacher["parameters"]) == 67_586 and int(student["parameters"]) == 450
    # float32 weights plus the state dict's keys and headers: a few hundred bytes per tensor at most
    for row in (teacher, student):
        assert 4 * int(row["parameters"]) < int(row["weights_bytes"]) < 4 * int(row["parameters"]) + 4_000
    assert int(student["zip_bytes"]) == (tmp_path / "student.zip").stat().st_size
    assert (tmp_path / "inference.png").read_bytes().startswith(PNG_SIGNATURE)


def test_atari_smoke(tmp_path):
    output = run_smoke("atari.py", tmp_path)
    rows = read_csv(tmp_path / "atari.csv")
    assert [row["model"].split(" (")[0] for row in rows] == ["teacher", "student 25%", "student 7%"]
    assert [int(row["parameters"]) for row in rows] == [1_687_206, 430_006, 115_706]
    # Trained here: every run has its wall-clock time, and the table its steps-to-95% columns
    assert all(float(row["train_seconds"]) > 0 for row in rows) and "steps to 95%" in output
    assert float(rows[0]["score_pct"]) == 100.0 and int(rows[0]["env_steps"]) >= 200
    assert (tmp_path / "atari.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (tmp_path / "logs" / "distilled_dqn" / "PongNoFrameskip-v4_1" / "PongNoFrameskip-v4.zip").exists()


def test_teacher_kinds_smoke(tmp_path):
    output = run_smoke("teacher_kinds.py", tmp_path)
    rows = read_csv(tmp_path / "teacher_kinds.csv")
    assert [(row["teacher"], row["teacher_kind"]) for row in rows] == [
        ("PPO (Zoo settings)", "logits"),
        ("PPO (Zoo settings)", "logits"),
        ("DQN, SB3 1.x / gym format", "q_values"),
        ("DQN, SB3 1.x / gym format", "q_values"),
    ]
    summary = json.loads((tmp_path / "teacher_kinds.json").read_text())["summary"]
    for result in summary.values():
        low, high = result["iqm_ci95"]
        assert low <= result["iqm_normalized"] <= high and result["n_seeds"] == 2
    assert "IQM score [95% CI]" in output


def test_size_search_smoke(tmp_path):
    output = run_smoke("size_search.py", tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    points = read_csv(tmp_path / "points.csv")
    # Every point of the study's Pareto front, re-evaluated over the smoke run's 2 seeds, each run on file
    assert points and {row["env_id"] for row in points} == {"CartPole-v1"}
    for row in points:
        net_arch = [int(width) for width in row["net_arch"].split()]
        sizes = [4, *net_arch, 2]
        assert int(row["parameters"]) == sum(a * b + b for a, b in itertools.pairwise(sizes))
        assert float(row["teacher_share"]) == pytest.approx(int(row["parameters"]) / 67_586)
        assert float(row["ci_low"]) <= float(row["iqm"]) <= float(row["ci_high"])
        assert len(row["scores"].split()) == 2
        for seed in (0, 1):
            assert (tmp_path / "runs" / "CartPole-v1" / f"trial_{row['trial']}_seed_{seed}.json").is_file()
    assert len(summary["smallest"]) == 1 and summary["seeds"] == 2
    assert (tmp_path / "pareto_fronts.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "CartPole-v1: 3 trials" in output
    # A rerun skips the finished study and runs: no new trial, the same points
    rerun = run_smoke("size_search.py", tmp_path)
    assert "CartPole-v1: 3 trials" in rerun and read_csv(tmp_path / "points.csv") == points


def test_size_search_latency_rows_time_every_runtime_of_student_and_teacher(tmp_path):
    pytest.importorskip("onnxruntime")
    from stable_baselines3 import DQN

    from benchmarks.size_search import latency_rows

    DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[4]), seed=0).save(tmp_path / "student.zip")
    rows = latency_rows(tmp_path / "student.zip", "CartPole-v1", "student", tmp_path)
    assert [row["runtime"] for row in rows] == ["SB3 predict", "torch q_net", "TorchScript", "onnxruntime"]
    assert {(row["model"], row["parameters"], row["env_id"]) for row in rows} == {("student", 30, "CartPole-v1")}
    # Each runtime's file: the zip for SB3 and torch, the exported .pt and .onnx files for the others
    assert [row["file"] for row in rows] == ["zip", "zip", "pt", "onnx"]
    assert rows[0]["file_bytes"] == (tmp_path / "student.zip").stat().st_size
    assert rows[2]["file_bytes"] == (tmp_path / "CartPole-v1_student.pt").stat().st_size
    assert rows[3]["file_bytes"] == (tmp_path / "CartPole-v1_student.onnx").stat().st_size
    assert all(0 < row["batch_1_us"] < 1e5 and 0 < row["batch_256_us"] < 1e6 for row in rows)


def test_atari_steps_to_95_is_the_first_evaluation_at_the_threshold():
    from benchmarks.atari import steps_to

    curve = (np.array([100, 200, 300, 400]), np.array([-21.0, -5.0, 10.0, 8.0]))
    # 300 of 400 steps: three quarters of the run's 80 s
    assert steps_to(curve, 9.5, 80.0) == (300, 60.0)
    assert steps_to(curve, 11.0, 80.0) == (None, None)
    assert steps_to(None, 0.0, 80.0) == (None, None)


def test_atari_given_teacher_zip_is_evaluated_without_unpickling(tmp_path, monkeypatch):
    import argparse

    from stable_baselines3 import DQN

    import benchmarks.atari as atari

    env_kwargs = {"max_episode_steps": 300}
    env = atari.atari_eval_env("PongNoFrameskip-v4", 0, env_kwargs)
    DQN("CnnPolicy", env, buffer_size=100, seed=0).save(tmp_path / "teacher.zip")
    # A given zip is read by the safe loader: SB3's unpickling loader must not be called
    monkeypatch.setattr(DQN, "load", lambda *args, **kwargs: pytest.fail("the teacher was unpickled"))
    args = argparse.Namespace(seed=0, eval_episodes=1)
    row, curve = atari.teacher_row("PongNoFrameskip-v4", tmp_path / "teacher.zip", None, args, env_kwargs)
    assert curve is None and row["env_steps"] is None and row["steps_to_95"] is None and row["train_seconds"] is None
    assert row["parameters"] == 1_687_206 and np.isfinite(row["return_mean"]) and row["score_pct"] == 100.0


def test_stability_smoke(tmp_path):
    output = run_smoke("stability.py", tmp_path)
    rows = read_csv(tmp_path / "runs.csv")
    # One seed per alpha (smoke): each row summarizes its run's logs
    assert [row["alpha"] for row in rows] == ["0.5", "0.9", "performance"]
    assert [float(row["alpha_late"]) for row in rows[:2]] == [0.5, 0.9]
    # The performance-based weight starts at alpha_0 = 1 and can only decay
    assert 0.0 <= float(rows[2]["alpha_late"]) <= 1.0
    for row in rows:
        assert 0.0 <= float(row["teacher_agreement_late"]) <= 1.0 and float(row["td_loss_late"]) >= 0.0
        assert 0 <= int(row["late_dips"]) <= int(row["late_evaluations"]) == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["dips_total"]) == {"0.5", "0.9", "performance"} and "teacher_agreement_late" in output


def test_references_measured_over_other_episodes_are_refused(tmp_path):
    from benchmarks.sample_efficiency import load_references

    path = tmp_path / "references.json"
    reference = {"teacher_return": 14.1, "teacher_std": 9.4, "random_return": 0.6, "teacher_parameters": 1, "episodes": 20}
    path.write_text(json.dumps({"MinAtar/Breakout-v1": reference}))
    with pytest.raises(ValueError, match=r"references.json: the MinAtar/Breakout-v1 reference was measured over 20 "
                                         r"episodes, not 100"):  # fmt: skip
        load_references(["MinAtar/Breakout-v1"], 100, path)
    # Read back as it is when the numbers agree, without measuring again
    assert load_references(["MinAtar/Breakout-v1"], 20, path) == {"MinAtar/Breakout-v1": reference}


def test_stability_alphas_with_a_floor():
    from benchmarks.stability import alpha_kwargs, check_alpha_value

    reference = {"teacher_return": -84.0, "random_return": -500.0}
    assert alpha_kwargs("performance:0.5", reference) == {
        "alpha": "performance", "alpha_0": 1.0, "alpha_min": 0.5, "teacher_return": -84.0, "random_return": -500.0
    }  # fmt: skip
    assert alpha_kwargs("performance", reference)["alpha_min"] == 0.0 and alpha_kwargs("0.9", reference) == {"alpha": 0.9}
    assert [check_alpha_value(value) for value in ("0.5", "performance", "performance:0.25")] == [None] * 3
    for value in ("1.5", "high", "performance:", "performance:x", "performance:2"):
        assert check_alpha_value(value) == (
            f"--alphas {value!r}: expected a number in [0, 1], 'performance' or 'performance:ALPHA_MIN'"
        )


def test_sample_efficiency_hyperparams_go_to_the_distilled_arms_only(tmp_path):
    from benchmarks.sample_efficiency import CONSTANT, build_arm

    # Measured once, then handed to a variant's run as its starting references
    first = tmp_path / "first"
    run_smoke_args = [sys.executable, str(ROOT / "benchmarks" / "sample_efficiency.py"), "--smoke", "--arms", CONSTANT]
    subprocess.run([*run_smoke_args, "--output-dir", str(first)], check=True, capture_output=True, cwd=ROOT, timeout=600)
    references = json.loads((first / "references.json").read_text())
    references["CartPole-v1"]["teacher_return"] = 400.0  # as if measured: the variant must not measure again
    (first / "references.json").write_text(json.dumps(references))
    variant = tmp_path / "variant"
    completed = subprocess.run(
        [*run_smoke_args, "DQN scratch, student net", "-params", "alpha:0.3", "temperature:0.5",
         "--references", str(first / "references.json"), "--output-dir", str(variant)],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    # The scratch arm would fail on alpha (plain DQN takes none): it got only the smoke settings
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads((variant / "summary.json").read_text())
    assert summary["hyperparams"] == {"alpha": 0.3, "temperature": 0.5}
    assert summary["references"]["CartPole-v1"]["teacher_return"] == 400.0
    model, _ = build_arm(CONSTANT, "CartPole-v1", 0, 300, {"alpha": 0.3, "temperature": 0.5}, references["CartPole-v1"])
    assert (model.alpha, model.temperature) == (0.3, 0.5)


def test_minatar_hyperparams_go_to_the_distilled_arms_only(tmp_path):
    pytest.importorskip("minatar.gym")
    # Starting references, as if measured by the main run (the variant must not measure them again)
    references = tmp_path / "references.json"
    references.write_text(json.dumps({"MinAtar/Breakout-v1": {
        "teacher_return": 10.0, "teacher_std": 1.0, "random_return": 0.5, "teacher_parameters": 132_179,
        "teacher_path": "teacher.zip", "episodes": 2}}))  # fmt: skip

    def run(output_dir: Path, *params: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "minatar_students.py"), "--smoke", "--arms", "distilled, ~7%",
             "DQN scratch, ~7% net", "--references", str(references), "--output-dir", str(output_dir), "-params",
             *params],
            capture_output=True, text=True, timeout=600, cwd=ROOT,
        )  # fmt: skip

    # The distilled arm gets the value (an out-of-range alpha stops it)...
    refused = run(tmp_path / "refused", "alpha:1.5")
    assert refused.returncode != 0 and "alpha=1.5" in refused.stderr
    # ...the scratch arm does not (plain DQN would fail on alpha)
    completed = run(tmp_path / "variant", "alpha:0.3")
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads((tmp_path / "variant" / "summary.json").read_text())
    assert summary["hyperparams"] == {"alpha": 0.3}
    assert summary["references"]["MinAtar/Breakout-v1"]["teacher_return"] == 10.0


def test_a_run_finished_meanwhile_by_another_process_is_read_back(tmp_path):
    from benchmarks.sample_efficiency import run_one

    record = tmp_path / "run.json"
    finished = {"env_id": "CartPole-v1", "arm": "distilled, constant alpha", "seed": 0, "final_return": 500.0}
    record.write_text(json.dumps(finished))
    # No model is built (the budget and references would fail): the record is returned as it is, untouched
    job = {"env_id": "CartPole-v1", "arm": "distilled, constant alpha", "seed": 0, "record": str(record)}
    assert run_one(job) == finished and json.loads(record.read_text()) == finished


def test_early_evaluations_smoke(tmp_path):
    output = run_smoke("early_evaluations.py", tmp_path)
    # Evaluation does not change training: every replay's evaluations at the main grid's steps equal its record's
    assert "30 of 30 evaluations at the main grid's steps equal the records'; 0 replays departed" in output
    replay = json.loads((tmp_path / "runs" / "CartPole-v1" / "distilled_constant_alpha_seed0.json").read_text())
    # Two periods of 100 smoke steps, four evaluations each, then stopped
    assert replay["timesteps"] == list(range(0, 201, 25))
    source = json.loads((tmp_path / "source" / "runs" / "CartPole-v1" / "distilled_constant_alpha_seed0.json").read_text())
    assert replay["returns"][::4] == source["returns"][:3]
    rows = read_csv(tmp_path / "results.csv")
    assert len(rows) == 5 and {row["window"] for row in rows} == {"200"} and {row["fine_freq"] for row in rows} == {"25"}
    for row in rows:
        # A finer grid can only find the same step or an earlier one
        assert float(row["steps_to_95_iqm"]) <= float(row["steps_to_95_iqm_main_grid"])


def test_early_evaluations_replay_a_recipe_variant(tmp_path):
    # A recipe variant's output: its distilled arm ran with other hyperparameters (here another student net)
    source = tmp_path / "source"
    variant = ["--arms", "distilled, constant alpha", "-params", "policy_kwargs:dict(net_arch=[8])"]
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sample_efficiency.py"), "--smoke", "--output-dir", str(source), *variant],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "early_evaluations.py"), "--smoke", "--source-dir", str(source),
         "--arms", "distilled, constant alpha", "--output-dir", str(tmp_path / "replays")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    # Replayed with the variant's hyperparameters: the same 8-unit student, the same evaluations
    assert "6 of 6 evaluations at the main grid's steps equal the records'; 0 replays departed" in completed.stdout
    rows = read_csv(tmp_path / "replays" / "results.csv")
    assert [(row["arm"], row["parameters"]) for row in rows] == [("distilled, constant alpha", str(4 * 8 + 8 + 8 * 2 + 2))]


def test_continuous_smoke_records_every_run_and_resumes(tmp_path):
    output = run_smoke("continuous.py", tmp_path, "--workers", "1")
    assert "0 of 6 runs already recorded; running 6" in output
    rows = read_csv(tmp_path / "summary.csv")
    assert [row["arm"] for row in rows] == ["distilled SAC", "distilled TD3", "SAC scratch, teacher net"]
    assert all(row["seeds"] == "2" for row in rows)
    summary = json.loads((tmp_path / "summary.json").read_text())
    # The configs as the package names them, never this machine's paths
    assert summary["configs"]["distilled SAC"] == "zoo_configs/distilled_sac.yml"
    references = json.loads((tmp_path / "references.json").read_text())["Pendulum-v1"]
    assert references["teacher_path"] == "zoo_configs/teachers/Pendulum-v1_sac.zip"
    assert references["teacher_return"] > references["random_return"]
    runs = read_csv(tmp_path / "runs.csv")
    assert len(runs) == 6 and {run["budget"] for run in runs} == {"300"}
    # A rerun trains nothing
    assert "6 of 6 runs already recorded; running 0" in run_smoke("continuous.py", tmp_path, "--workers", "1")
