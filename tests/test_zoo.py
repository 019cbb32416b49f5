"""The RL Zoo wrapper, run in-process with tiny budgets in temporary folders."""

from pathlib import Path

import optuna
import pytest
import yaml
from rl_zoo3 import hyperparams_opt as zoo_hyperparams_opt
from rl_zoo3 import train as zoo_train
from rl_zoo3.utils import ALGOS
from stable_baselines3 import DQN

from sb3_distill import DistilledDQN
from sb3_distill.config import zoo_configs_dir
from sb3_distill.hyperparams_opt import ALPHA_RANGE, TEMPERATURE_RANGE
from sb3_distill.zoo import main

# Updates from the first steps, small buffers: a few hundred steps say whether the whole path works
TINY = ["learning_starts:100", "buffer_size:1000", "train_freq:4", "gradient_steps:1"]


def zoo(*arguments: str) -> int:
    return main(list(arguments))


def saved_config(run_dir: Path, env_id: str) -> dict:
    with open(run_dir / env_id / "config.yml") as file_handler:
        return dict(yaml.load(file_handler, Loader=yaml.UnsafeLoader))


@pytest.fixture(scope="module")
def zoo_teacher(tmp_path_factory) -> Path:
    """A DQN teacher trained by the Zoo with the project's teacher recipe: its log folder."""
    log_folder = tmp_path_factory.mktemp("zoo_logs")
    config = str(zoo_configs_dir() / "dqn.yml")
    assert zoo("train", "--algo", "dqn", "--env", "CartPole-v1", "--conf-file", config, "-n", "300",
               "-f", str(log_folder), "--seed", "0", "--eval-freq", "-1", "-params", *TINY) == 0  # fmt: skip
    return log_folder / "dqn" / "CartPole-v1_1"


def test_register_mutates_the_shared_dicts():
    algos = ALGOS
    main(["--help-is-not-a-script"])  # usage error, but nothing is rebound
    from sb3_distill.zoo import register

    register()
    register()
    assert algos is ALGOS and zoo_train.ALGOS is ALGOS
    assert ALGOS["distilled_dqn"] is DistilledDQN
    assert "distilled_dqn" in zoo_hyperparams_opt.HYPERPARAMS_SAMPLER
    assert "distilled_dqn" in zoo_hyperparams_opt.HYPERPARAMS_CONVERTER


def test_train_student_from_zoo_teacher_then_enjoy(tmp_path, zoo_teacher, capsys):
    code = zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-n", "300", "-f", str(tmp_path),
               "--seed", "0", "--eval-freq", "-1", "-params", f"teacher:'{zoo_teacher}'", *TINY)  # fmt: skip
    assert code == 0
    run_dir = tmp_path / "distilled_dqn" / "CartPole-v1_1"
    config = saved_config(run_dir, "CartPole-v1")
    assert config["teacher"] == str(zoo_teacher.resolve())
    assert config["policy_kwargs"] == "dict(net_arch=[64])"  # the project's student, not the Zoo's default
    student = DQN.load(run_dir / "CartPole-v1.zip")
    assert student.q_net.q_net[0].out_features == 64
    assert student.num_timesteps >= 300

    capsys.readouterr()
    assert zoo("enjoy", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-f", str(tmp_path), "--exp-id", "1",
               "-n", "100", "--no-render", "--deterministic") == 0  # fmt: skip
    assert "Mean reward" in capsys.readouterr().out


def test_default_config_and_shipped_teacher_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # far from zoo_configs/: the teacher path resolves against the YAML's folder
    assert zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-n", "300", "--eval-freq", "-1",
               "-params", *TINY) == 0  # fmt: skip
    config = saved_config(tmp_path / "logs" / "distilled_dqn" / "CartPole-v1_1", "CartPole-v1")
    assert Path(config["teacher"]) == (zoo_configs_dir() / "teachers" / "CartPole-v1_dqn.zip").resolve()
    assert (config["alpha"], config["temperature"]) == (0.5, 1.0)


def test_optimize_samples_alpha_and_temperature_only_then_replays_a_trial(tmp_path, zoo_teacher):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = ["--algo", "distilled_dqn", "--env", "CartPole-v1", "-f", str(tmp_path), "-params",
              f"teacher:'{zoo_teacher}'", *TINY]  # fmt: skip
    assert zoo("train", *common, "-n", "300", "-optimize", "--n-trials", "2", "--n-evaluations", "1",
               "--eval-episodes", "2", "--no-optim-plots", "--storage", storage, "--study-name", "s",
               "--seed", "1") == 0  # fmt: skip
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 2
    for trial in study.trials:
        # The student's architecture is the config's: only the distillation weights are searched
        assert set(trial.params) == {"alpha", "temperature"}
        assert ALPHA_RANGE[0] <= trial.params["alpha"] <= ALPHA_RANGE[1]
        assert TEMPERATURE_RANGE[0] <= trial.params["temperature"] <= TEMPERATURE_RANGE[1]

    # --trial-id replays a trial's hyperparameters (rl_zoo3 treats --trial-id 0 as "none": use 1)
    assert zoo("train", *common, "-n", "200", "--eval-freq", "-1", "--storage", storage, "--study-name", "s",
               "--trial-id", "1") == 0  # fmt: skip
    run_dirs = sorted((tmp_path / "distilled_dqn").glob("CartPole-v1_*"), key=lambda path: path.stat().st_mtime)
    config = saved_config(run_dirs[-1], "CartPole-v1")
    assert config["alpha"] == study.trials[1].params["alpha"]
    assert config["temperature"] == study.trials[1].params["temperature"]
    assert config["policy_kwargs"] == "dict(net_arch=[64])"


def test_atari_student_on_pong(tmp_path):
    """The `atari` entries of both configs: AtariWrapper, 4 stacked frames, CnnPolicy, ale-py's shipped ROMs."""
    tiny_atari = ["buffer_size:300", "learning_starts:100"]
    config = str(zoo_configs_dir() / "dqn.yml")
    assert zoo("train", "--algo", "dqn", "--env", "PongNoFrameskip-v4", "--conf-file", config, "-n", "200",
               "-f", str(tmp_path), "--eval-freq", "-1", "-params", *tiny_atari) == 0  # fmt: skip
    teacher = tmp_path / "dqn" / "PongNoFrameskip-v4_1"
    assert zoo("train", "--algo", "distilled_dqn", "--env", "PongNoFrameskip-v4", "-n", "200", "-f", str(tmp_path),
               "--eval-freq", "-1", "-params", f"teacher:'{teacher}'", *tiny_atari) == 0  # fmt: skip
    student = DQN.load(tmp_path / "distilled_dqn" / "PongNoFrameskip-v4_1" / "PongNoFrameskip-v4.zip")
    assert student.observation_space.shape == (4, 84, 84)
    assert sum(parameter.numel() for parameter in student.q_net.parameters()) == 430_006


def write_config(path: Path, entry: dict) -> Path:
    path.write_text(yaml.safe_dump({"CartPole-v1": entry}))
    return path


def test_missing_teacher_in_config_names_file_entry_and_path(tmp_path, capsys):
    config = write_config(tmp_path / "students.yml", {"teacher": "no/such/teacher.zip", "policy": "MlpPolicy"})
    code = zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "--conf-file", str(config), "-n", "100",
               "-f", str(tmp_path / "logs"))  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err
    assert str(config) in error and "'CartPole-v1'" in error and "no/such/teacher.zip" in error
    assert not (tmp_path / "logs" / "distilled_dqn" / "CartPole-v1_1" / "CartPole-v1.zip").exists()


def test_config_without_teacher(tmp_path, capsys):
    config = write_config(tmp_path / "students.yml", {"policy": "MlpPolicy"})
    assert zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "--conf-file", str(config), "-n", "100",
               "-f", str(tmp_path / "logs")) == 2  # fmt: skip
    assert "teacher=None" in capsys.readouterr().err


def test_zoo_teacher_with_other_frame_stacking_is_refused(tmp_path, capsys):
    config = str(zoo_configs_dir() / "dqn.yml")
    assert zoo("train", "--algo", "dqn", "--env", "CartPole-v1", "--conf-file", config, "-n", "100", "-f",
               str(tmp_path), "--eval-freq", "-1", "-params", "frame_stack:2", *TINY) == 0  # fmt: skip
    teacher = tmp_path / "dqn" / "CartPole-v1_1"
    capsys.readouterr()
    assert zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-n", "100", "-f", str(tmp_path),
               "-params", f"teacher:'{teacher}'", *TINY) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert "frame_stack: teacher 2, student None" in error


def test_optimize_with_a_teacher_for_another_env_fails_before_any_trial(tmp_path, zoo_teacher, capsys):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    code = zoo("train", "--algo", "distilled_dqn", "--env", "Acrobot-v1", "-n", "300", "-optimize", "--n-trials", "2",
               "--no-optim-plots", "--storage", storage, "--study-name", "s", "-f", str(tmp_path),
               "-params", f"teacher:'{zoo_teacher}'", *TINY)  # fmt: skip
    assert code == 2
    assert "Discrete(2)" in capsys.readouterr().err
    assert not (tmp_path / "study.db").exists()  # no study was even created


def test_unknown_script_prints_usage(capsys):
    assert zoo("fly") == 2
    assert "train" in capsys.readouterr().err
