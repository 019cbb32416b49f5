"""Runs that survive (#24): checkpoints, Ctrl-C / SIGTERM / SIGKILL, and ``sb3-distill distill --resume``."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import DQN
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_distill import DistilledDQN
from sb3_distill.checkpoints import (
    POINTER_FILE,
    RUN_FILE,
    default_checkpoint_freq,
    read_checkpoint,
    read_run_file,
    restore_vec_normalize,
    write_checkpoint,
)
from sb3_distill.cli import main
from tests.study_polling import running_trial_numbers

# A tiny CartPole student of the shipped teacher, evaluated often: a run of a few seconds with several checkpoints
BUDGET = 3_000
RUN_ARGS = ["distill", "-n", str(BUDGET), "--checkpoint-freq", "500", "--eval-freq", "500", "--curve-episodes", "2"]
RUN_ARGS += [
    "--eval-episodes",
    "2",
    "--reference-episodes",
    "2",
    "--no-progress-bar",
    "-params",
    "policy_kwargs:dict(net_arch=[8])",
    "learning_starts:0",
]
GRID = list(range(500, BUDGET + 1, 500))


def start_command(arguments: list[str], cwd: Path) -> subprocess.Popen:
    """``sb3-distill ARGUMENTS`` in a subprocess of its own, to be stopped by a real signal."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "sb3_distill", *arguments]
    return subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_run(log_folder: Path, cwd: Path) -> subprocess.Popen:
    return start_command([*RUN_ARGS, "-f", str(log_folder)], cwd)


def wait_for_checkpoint(run_dir: Path, process: subprocess.Popen, at_least: int, timeout: float = 240.0) -> int:
    """The step of the first checkpoint of at least ``at_least`` steps, once its pointer is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the run ended before its checkpoint: {process.communicate()}"
        try:
            step = json.loads((run_dir / POINTER_FILE).read_text())["num_timesteps"]
        except (FileNotFoundError, json.JSONDecodeError):
            step = -1
        if step >= at_least:
            return step
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint of {at_least} steps in {timeout} s")


def check_complete_run(run_dir: Path) -> None:
    """The files of an uninterrupted run, its learning curve on the whole grid, and no checkpoint left."""
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "comparison.json",
        "evaluations.npz",
        "learning_curve.png",
        RUN_FILE,
        "student.zip",
    ]
    with np.load(run_dir / "evaluations.npz") as data:
        assert list(data["timesteps"]) == GRID
        assert data["results"].shape == (len(GRID), 2)
    student = DQN.load(run_dir / "student.zip")
    assert student.num_timesteps >= BUDGET
    comparison = json.loads((run_dir / "comparison.json").read_text())
    assert comparison["student"]["env_steps"] == student.num_timesteps


@pytest.mark.parametrize(
    "signum",
    [
        signal.SIGKILL,
        pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, marks=pytest.mark.slow),
    ],
    ids=lambda s: signal.Signals(s).name,
)
def test_a_stopped_run_resumes_from_its_checkpoint_to_a_complete_run_folder(tmp_path, signum):
    process = start_run(Path("runs"), tmp_path)
    run_dir = tmp_path / "runs" / "CartPole-v1_1"
    step = wait_for_checkpoint(run_dir, process, at_least=1_000)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    kept_dir, state = read_checkpoint(run_dir)
    if signum == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL
        assert state["num_timesteps"] >= step
    else:
        # Saved at the step it stopped at, one line saying where and how to continue, no traceback
        assert process.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[signum]
        assert "Traceback" not in stderr
        name = signal.Signals(signum).name
        assert f"{name} at step {state['num_timesteps']:,} of {BUDGET:,}" in stderr
        assert f"continue with: sb3-distill distill --resume {Path('runs') / 'CartPole-v1_1'}" in stderr
    assert state["num_timesteps"] < BUDGET and not state["trained"]
    assert sorted(path.name for path in kept_dir.iterdir()) == ["replay_buffer.pkl", "state.json", "student.zip"]
    # The checkpoint's student is the run's, at the saved step count, with its replay buffer
    saved = DQN.load(kept_dir / "student.zip")
    assert saved.num_timesteps == state["num_timesteps"]

    resumed = subprocess.run(
        [sys.executable, "-m", "sb3_distill", "distill", "--resume", "runs/CartPole-v1_1", "--no-progress-bar"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming at step {state['num_timesteps']:,}" in resumed.stdout
    check_complete_run(run_dir)


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    assert main(["distill", "--resume", str(tmp_path / "missing")]) == 2
    assert f"--resume {tmp_path / 'missing'}: no such run folder" in capsys.readouterr().err
    (tmp_path / "not_a_run").mkdir()
    assert main(["distill", "--resume", str(tmp_path / "not_a_run")]) == 2
    assert "run.json is missing" in capsys.readouterr().err
    (tmp_path / "not_a_run" / RUN_FILE).write_text("{oops")
    assert main(["distill", "--resume", str(tmp_path / "not_a_run")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    # The run's settings are its own
    assert main(["distill", "--resume", str(tmp_path / "not_a_run"), "--alpha", "0.3"]) == 2
    assert "'--alpha' cannot be given with it" in capsys.readouterr().err


def test_a_finished_run_is_not_resumed_and_keeps_no_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*RUN_ARGS, "-n", "600", "-f", "runs"]) == 0
    run_dir = tmp_path / "runs" / "CartPole-v1_1"
    assert not (run_dir / POINTER_FILE).exists() and not (run_dir / "checkpoints").exists()
    run = read_run_file(run_dir)
    assert run["argv"][:1] == ["distill"] and run["n_timesteps"] == 600 and run["checkpoint_freq"] == 500
    capsys.readouterr()
    assert main(["distill", "--resume", "runs/CartPole-v1_1"]) == 2
    assert "the run is complete (comparison.json is written); nothing to resume" in capsys.readouterr().err


def small_student(cartpole_teacher_path: Path, env=None) -> DistilledDQN:
    return DistilledDQN(
        "MlpPolicy",
        env or "CartPole-v1",
        teacher=cartpole_teacher_path,
        learning_starts=0,
        buffer_size=1_000,
        policy_kwargs=dict(net_arch=[8]),
    )


def test_a_half_written_checkpoint_is_never_taken_for_a_good_one(tmp_path, cartpole_teacher_path):
    student = small_student(cartpole_teacher_path).learn(100)
    assert read_checkpoint(tmp_path) is None
    first = write_checkpoint(tmp_path, student, train_seconds=1.5)
    assert first.name == "step_100"
    # A run killed while writing the next one leaves a temporary folder: the pointer still names the first
    (tmp_path / "checkpoints" / ".tmp_step_200-1234").mkdir()
    (tmp_path / "checkpoints" / ".tmp_step_200-1234" / "student.zip").write_bytes(b"half")
    found, state = read_checkpoint(tmp_path)
    assert found == first and state["num_timesteps"] == 100 and state["train_seconds"] == 1.5
    # The next checkpoint replaces the first, and clears the temporary folder
    student.learn(100, reset_num_timesteps=False)
    second = write_checkpoint(tmp_path, student, train_seconds=3.0)
    assert [path.name for path in (tmp_path / "checkpoints").iterdir()] == ["step_200"]
    assert read_checkpoint(tmp_path)[0] == second
    # A file cut short is refused by name, not loaded
    with open(second / "replay_buffer.pkl", "r+b") as file_handler:
        file_handler.truncate(10)
    with pytest.raises(ValueError, match=r"checkpoint\.json is damaged \(replay_buffer\.pkl has 10 bytes"):
        read_checkpoint(tmp_path)


def test_a_checkpoint_keeps_the_normalization_statistics(tmp_path, cartpole_teacher_path):
    env = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    student = small_student(cartpole_teacher_path, env).learn(200)
    checkpoint_dir = write_checkpoint(tmp_path, student, train_seconds=0.0)
    fresh = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    restored = restore_vec_normalize(fresh, checkpoint_dir)
    assert isinstance(restored, VecNormalize)
    np.testing.assert_allclose(restored.obs_rms.mean, env.obs_rms.mean)
    assert restored.obs_rms.count == env.obs_rms.count > 200
    with pytest.raises(ValueError, match="the run's env does not normalize"):
        restore_vec_normalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]), checkpoint_dir)


def test_default_checkpoint_freq():
    assert default_checkpoint_freq(20_000) == 10_000
    assert default_checkpoint_freq(1_000_000) == 100_000


@pytest.mark.slow
def test_sigterm_stops_a_study_after_its_running_trial_keeping_the_finished_ones(tmp_path):
    import optuna

    command = [sys.executable, "-m", "sb3_distill", "tune", "-n", "20000", "--n-trials", "20", "--seed", "0", "-f", "out"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    storage = f"sqlite:///{tmp_path / 'out' / 'studies.db'}"
    deadline = time.monotonic() + 300
    while not running_trial_numbers(tmp_path / "out" / "studies.db") and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    assert "SIGTERM: study 'distilled_dqn_CartPole-v1' stopped" in stderr and "run the same command" in stderr
    trials = optuna.load_study(study_name="distilled_dqn_CartPole-v1", storage=storage).get_trials()
    assert trials and trials[-1].state == optuna.trial.TrialState.FAIL and trials[-1].user_attrs["interrupted"] is True
    assert len(trials) < 20
    assert (tmp_path / "out" / "distilled_dqn_CartPole-v1" / "report_1" / "summary.json").exists()
