"""Teacher runs that survive: checkpoints, SIGKILL / SIGTERM, and ``sb3-distill teacher --resume``."""

import json
import signal
import time
from pathlib import Path

import pytest
from stable_baselines3.common.vec_env import VecNormalize

from sb3_distill import teacher_runs
from sb3_distill.algorithms import TEACHER_ALGOS
from sb3_distill.checkpoints import RUN_FILE, STATE_FILE, RunCheckpoints, read_checkpoint, read_run_file, write_json_atomically
from sb3_distill.cli import main
from sb3_distill.common.teacher_zip import read_zip_data
from tests.test_checkpoints import start_command, wait_for_checkpoint

# Tiny nets, trained at every step: a few seconds of training with several checkpoints, and a budget reached exactly
TINY_DQN = ["-params", "policy_kwargs:dict(net_arch=[8])", "train_freq:1", "gradient_steps:1", "learning_starts:100"]
TINY_DQN += ["buffer_size:5000"]
QUIET = ["--eval-episodes", "1", "--no-progress-bar"]
DQN_RUN = ["teacher", "-n", "2000", "--checkpoint-freq", "500", *QUIET, "-o", "teachers/dqn.zip", *TINY_DQN]
SAC_RUN = ["teacher", "--algo", "sac", "--env", "Pendulum-v1", "-n", "600", "--checkpoint-freq", "200", *QUIET]
SAC_RUN += ["-o", "teachers/sac.zip", "-params", "policy_kwargs:dict(net_arch=[8])", "learning_starts:100"]
# algo: (the command's arguments, its budget, its checkpoint frequency)
TEACHER_RUNS = {"dqn": (DQN_RUN, 2000, 500), "sac": (SAC_RUN, 600, 200)}


def check_complete_teacher(output: Path, budget: int, resumed_from: int) -> dict:
    """The zip and .json of an uninterrupted run, the model continued from ``resumed_from`` steps, no run folder left."""
    assert not output.with_suffix(".run").exists()
    metadata = json.loads(output.with_suffix(".json").read_text())
    assert metadata["env_steps"] == metadata["n_timesteps"] == budget
    assert metadata["evaluation"]["n_episodes"] == 1
    data = read_zip_data(output)
    assert data["num_timesteps"] == budget and data["_num_timesteps_at_start"] == resumed_from
    return metadata


@pytest.mark.parametrize("algo", TEACHER_RUNS)
def test_a_killed_teacher_run_resumes_from_its_checkpoint_to_a_complete_teacher(tmp_path, capsys, monkeypatch, algo):
    arguments, budget, checkpoint_freq = TEACHER_RUNS[algo]
    process = start_command(arguments, tmp_path)
    run_dir = tmp_path / "teachers" / f"{algo}.run"
    step = wait_for_checkpoint(run_dir, process, at_least=checkpoint_freq)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "teachers" / f"{algo}.zip").exists()
    checkpoint_dir, state = read_checkpoint(run_dir)
    resumed_from = state["num_timesteps"]
    assert step <= resumed_from < budget and resumed_from % checkpoint_freq == 0 and not state["trained"]
    assert sorted(path.name for path in checkpoint_dir.iterdir()) == ["replay_buffer.pkl", "state.json", "teacher.zip"]
    assert TEACHER_ALGOS[algo].load(checkpoint_dir / "teacher.zip").num_timesteps == resumed_from
    assert read_run_file(run_dir, "teacher")["argv"] == arguments
    # The training time of the first session, as its checkpoint records it, is counted in the teacher's .json
    write_json_atomically(checkpoint_dir / STATE_FILE, {**state, "train_seconds": 1000.0})

    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    assert main(["teacher", "--resume", str(Path("teachers") / f"{algo}.run"), "--no-progress-bar"]) == 0
    session = time.perf_counter() - start
    assert f"Resuming at step {resumed_from:,}" in capsys.readouterr().out
    metadata = check_complete_teacher(tmp_path / "teachers" / f"{algo}.zip", budget, resumed_from)
    assert 1000.0 < metadata["train_seconds"] < 1000.0 + session + 0.1
    assert metadata["command"] == "sb3-distill " + " ".join(arguments)


def test_sigterm_stops_a_teacher_run_with_a_checkpoint_and_one_line(tmp_path):
    arguments, budget, checkpoint_freq = TEACHER_RUNS["dqn"]
    process = start_command(arguments, tmp_path)
    run_dir = tmp_path / "teachers" / "dqn.run"
    wait_for_checkpoint(run_dir, process, at_least=checkpoint_freq)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]
    assert "Traceback" not in stderr
    checkpoint_dir, state = read_checkpoint(run_dir)
    step = state["num_timesteps"]
    assert checkpoint_freq <= step < budget and checkpoint_dir.name == f"step_{step}"
    run = Path("teachers") / "dqn.run"
    assert stderr.strip().splitlines()[-1] == (
        f"SIGTERM at step {step:,} of {budget:,}: the teacher and its training state are saved in "
        f"{run / 'checkpoints' / f'step_{step}'}; continue with: sb3-distill teacher --resume {run}"
    )
    assert sorted(path.name for path in checkpoint_dir.iterdir()) == ["replay_buffer.pkl", "state.json", "teacher.zip"]
    assert not (tmp_path / "teachers" / "dqn.zip").exists()


def test_an_on_policy_teacher_resumes_with_its_normalization_statistics(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = ["teacher", "--algo", "ppo", "-n", "2048", "--checkpoint-freq", "512", *QUIET, "-o", "ppo.zip"]
    arguments += ["-params", "policy_kwargs:dict(net_arch=[8])", "normalize:True"]
    with monkeypatch.context() as patch:
        original = RunCheckpoints.save

        def stop_after_the_first_checkpoint(self):
            saved = original(self)
            if self.stop.signal is None:  # the periodic checkpoint: then a SIGTERM, without sending one
                self.stop.signal = signal.SIGTERM
            return saved

        patch.setattr(RunCheckpoints, "save", stop_after_the_first_checkpoint)
        assert main(arguments) == 143
    checkpoint_dir, state = read_checkpoint(tmp_path / "ppo.run")
    # No replay buffer for PPO; the statistics of the entry's VecNormalize
    assert sorted(path.name for path in checkpoint_dir.iterdir()) == ["state.json", "teacher.zip", "vecnormalize.pkl"]
    restored = []
    original_restore = teacher_runs.restore_vec_normalize

    def record_restore(env, folder):
        restored.append(original_restore(env, folder))
        return restored[-1]

    monkeypatch.setattr(teacher_runs, "restore_vec_normalize", record_restore)
    capsys.readouterr()
    assert main(["teacher", "--resume", "ppo.run", "--no-progress-bar"]) == 0
    assert f"Resuming at step {state['num_timesteps']:,}" in capsys.readouterr().out
    assert isinstance(restored[0], VecNormalize) and restored[0].obs_rms.count > 512
    metadata = json.loads((tmp_path / "ppo.json").read_text())
    assert metadata["env_steps"] >= 2048 and metadata["algo"] == "ppo"
    assert read_zip_data(tmp_path / "ppo.zip")["_num_timesteps_at_start"] == state["num_timesteps"]
    assert not (tmp_path / "ppo.run").exists()


def test_a_run_killed_before_its_first_checkpoint_restarts_then_a_complete_run_is_not_resumed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = ["teacher", "-n", "300", *QUIET, "-o", "t.zip", *TINY_DQN]
    # What a run killed before its first checkpoint leaves: its run.json, no checkpoint
    (tmp_path / "t.run").mkdir()
    write_json_atomically(tmp_path / "t.run" / RUN_FILE, {"argv": arguments, "cwd": str(tmp_path), "command": "c"})
    assert main(["teacher", "--resume", "t.run"]) == 0
    assert "Training a DQN teacher" in capsys.readouterr().out
    check_complete_teacher(tmp_path / "t.zip", 300, resumed_from=0)
    assert main(["teacher", "--resume", "t.run"]) == 2
    assert "--resume t.run: the run is complete (t.zip and its .json are written" in capsys.readouterr().err
    assert main(arguments) == 2
    assert "t.zip exists; pass --force" in capsys.readouterr().err


def test_a_new_run_does_not_overwrite_an_unfinished_one_unasked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = ["teacher", "-n", "200", *QUIET, "-o", "t.zip", *TINY_DQN]
    (tmp_path / "t.run").mkdir()
    assert main(arguments) == 2
    assert "t.run exists and is not a run folder of sb3-distill teacher" in capsys.readouterr().err
    (tmp_path / "t.run" / RUN_FILE).write_text(json.dumps({"argv": arguments, "cwd": str(tmp_path)}))
    assert main(arguments) == 2
    assert "t.run holds an unfinished run of t.zip: continue it with sb3-distill teacher --resume t.run" in (
        capsys.readouterr().err
    )
    assert main([*arguments, "--force"]) == 0
    assert (tmp_path / "t.zip").exists() and not (tmp_path / "t.run").exists()


def test_resume_takes_the_run_of_its_own_command_and_no_other_option(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["teacher", "--resume", "t.run", "--seed", "3"]) == 2
    assert "'--seed' cannot be given with it" in capsys.readouterr().err
    runs = {"t.run": ["teacher", "-o", "t.zip"], "CartPole-v1_1": ["distill", "-n", "300"], "py.run": None}
    for folder, argv in runs.items():
        (tmp_path / folder).mkdir()
        write_json_atomically(tmp_path / folder / RUN_FILE, {"argv": argv, "cwd": str(tmp_path)})
    assert main(["distill", "--resume", "t.run"]) == 2
    assert "--resume t.run: not a run of sb3-distill distill" in capsys.readouterr().err
    assert main(["teacher", "--resume", "CartPole-v1_1"]) == 2
    assert "--resume CartPole-v1_1: not a run of sb3-distill teacher" in capsys.readouterr().err
    assert main(["teacher", "--resume", "py.run"]) == 2
    assert "started from Python" in capsys.readouterr().err
    (tmp_path / "t.run").rename(tmp_path / "renamed")
    assert main(["teacher", "--resume", "renamed"]) == 2
    assert "a teacher's run folder is named after its zip, <output without .zip>.run" in capsys.readouterr().err
