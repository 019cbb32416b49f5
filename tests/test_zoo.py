"""The RL Zoo wrapper, run in-process with tiny budgets in temporary folders."""

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import optuna
import pytest
import torch as th
import yaml
from rl_zoo3 import hyperparams_opt as zoo_hyperparams_opt
from rl_zoo3 import train as zoo_train
from rl_zoo3.utils import ALGOS
from stable_baselines3 import DQN

from sb3_distill import DistilledDQN
from sb3_distill.cli import main as cli_main
from sb3_distill.config import zoo_configs_dir
from sb3_distill.hyperparams_opt import ALPHA_0_RANGE, ALPHA_RANGE, TEMPERATURE_RANGE, record_alpha_kind
from sb3_distill.recipe import DistillExperimentManager
from sb3_distill.zoo import ZOO_SCRIPTS, ffmpeg_on_path, main, register, registered_command

# Importing rl_zoo3's scripts (to check their ALGOS) makes runpy warn when it runs them afresh as __main__: harmless
pytestmark = pytest.mark.filterwarnings("ignore:'rl_zoo3\\.\\w+' found in sys.modules:RuntimeWarning")

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


@pytest.fixture(scope="module")
def zoo_student(tmp_path_factory, zoo_teacher) -> Path:
    """A distilled_dqn student of ``zoo_teacher`` trained by the Zoo, with checkpoints: its log folder."""
    log_folder = tmp_path_factory.mktemp("zoo_student_logs")
    assert zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-n", "300", "-f", str(log_folder),
               "--seed", "0", "--eval-freq", "-1", "--save-freq", "200", "-params", f"teacher:'{zoo_teacher}'",
               *TINY) == 0  # fmt: skip
    return log_folder


def video_frames(path: Path) -> int:
    assert path.is_file() and path.stat().st_size > 0, path
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    return frames


def test_register_reaches_every_zoo_module_once(monkeypatch, capsys):
    from sb3_distill.algorithms import STUDENT_ALGOS
    from sb3_distill.hyperparams_opt import sample_distilled_alpha_params, sample_distilled_dqn_params

    # rl_zoo3 modules that imported ALGOS by name: a rebound dict would leave them without the students
    zoo_modules = [importlib.import_module(f"rl_zoo3.{name}") for name in ("train", "exp_manager", "enjoy", "record_video")]
    for name in STUDENT_ALGOS:
        monkeypatch.delitem(ALGOS, name, raising=False)
        monkeypatch.delitem(zoo_hyperparams_opt.HYPERPARAMS_SAMPLER, name, raising=False)
        monkeypatch.delitem(zoo_hyperparams_opt.HYPERPARAMS_CONVERTER, name, raising=False)
    monkeypatch.setattr(zoo_train, "ExperimentManager", zoo_train.ExperimentManager)
    algos_before = list(ALGOS)

    register()
    register()
    for module in zoo_modules:
        assert module.ALGOS["distilled_dqn"] is DistilledDQN, module.__name__
    # One entry per student, the others untouched
    assert list(ALGOS) == [*algos_before, *STUDENT_ALGOS]
    assert all(ALGOS[name] is student for name, student in STUDENT_ALGOS.items())
    assert set(STUDENT_ALGOS) <= set(zoo_hyperparams_opt.HYPERPARAMS_CONVERTER)
    # The Gaussian and MSE terms of SAC and TD3 students have no temperature to search
    assert zoo_hyperparams_opt.HYPERPARAMS_SAMPLER["distilled_sac"] is sample_distilled_alpha_params
    assert zoo_hyperparams_opt.HYPERPARAMS_SAMPLER["distilled_ppo"] is sample_distilled_dqn_params
    assert zoo_train.ExperimentManager is DistillExperimentManager

    # rl_zoo3.train's own parser takes --algo distilled_dqn (its choices are read when it parses)
    capsys.readouterr()
    assert main(["train", "--algo", "no_such_algo"]) == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'no_such_algo'" in error
    choices = re.search(r"choose from ([^)]*)", error)
    assert choices is not None and "'distilled_dqn'" in choices.group(1).split(", ")


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_the_scripts_and_exits_0(flag, capsys):
    assert main([flag]) == 0
    output = capsys.readouterr().out
    for script, description in ZOO_SCRIPTS.items():
        assert re.search(rf"^  {script} +{re.escape(description)}$", output, re.MULTILINE), script
    assert "python -m sb3_distill.zoo <script> --help" in output
    assert "flag of the script passes through" in output
    # `sb3-distill zoo --help` hands everything after `zoo` to the same main
    assert cli_main(["zoo", flag]) == 0
    assert capsys.readouterr().out == output


def test_script_help_is_rl_zoo3_own_with_distilled_dqn(capsys):
    assert main(["train", "--help"]) == 0
    output = capsys.readouterr().out
    algo_choices = re.search(r"--algo \{([^}]*)\}", output)
    assert algo_choices is not None and "distilled_dqn" in algo_choices.group(1).split(",")
    assert "-optimize" in output and "--conf-file" in output  # rl_zoo3's train flags
    assert main(["record_training", "--help"]) == 0
    assert "--gif" in capsys.readouterr().out


def test_registered_command_sends_zoo_scripts_through_this_module():
    arguments = ["--algo", "distilled_dqn", "--no-render"]
    assert registered_command(["python", "-m", "rl_zoo3.record_video", *arguments]) == [
        sys.executable, "-m", "sb3_distill.zoo", "record_video", *arguments]  # fmt: skip
    for other in (["python", "-m", "rl_zoo3.push_to_hub"], ["python", "-m", "pip", "list"], ["ffmpeg", "-i", "a.mp4"],
                  ["python"], "python -m rl_zoo3.record_video"):  # fmt: skip
        assert registered_command(other) == other


def test_record_training_spawns_record_video_through_this_module(tmp_path, zoo_student, monkeypatch):
    """rl_zoo3's record_training starts `python -m rl_zoo3.record_video`: what reaches subprocess.call is rewritten."""
    commands = []
    real_call = subprocess.call

    def fake_call(command, *args, **kwargs) -> int:
        if "record_video" not in str(command):  # imageio-ffmpeg checks its binary with subprocess.check_call
            return real_call(command, *args, **kwargs)
        commands.append(command)
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    videos = tmp_path / "videos"
    assert zoo("record_training", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-f", str(zoo_student),
               "-n", "10", "-o", str(videos)) == 0  # fmt: skip
    assert subprocess.call is fake_call  # restored
    checkpoints = sorted((zoo_student / "distilled_dqn" / "CartPole-v1_1").glob("rl_model_*_steps.zip"))
    assert checkpoints and len(commands) == 1 + len(checkpoints)  # the final model, then each checkpoint
    for command in commands:
        assert command[:5] == [sys.executable, "-m", "sb3_distill.zoo", "record_video", "--env"]
        assert command[command.index("--algo") + 1] == "distilled_dqn"


def test_record_video_of_a_student(tmp_path, zoo_student):
    videos = tmp_path / "videos"
    assert zoo("record_video", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-f", str(zoo_student),
               "--exp-id", "1", "-n", "200", "--no-render", "-o", str(videos)) == 0  # fmt: skip
    (video,) = videos.glob("*.mp4")
    assert video.name.startswith("final-model-distilled_dqn-CartPole-v1")
    assert video_frames(video) == 201  # the reset frame, then one per step


def test_record_training_of_a_student(tmp_path, zoo_student):
    """For real: a record_video process per model, then ffmpeg (the system's, else imageio-ffmpeg's) joins them."""
    videos = tmp_path / "videos"
    assert zoo("record_training", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-f", str(zoo_student),
               "-n", "50", "-o", str(videos)) == 0  # fmt: skip
    checkpoints = list((zoo_student / "distilled_dqn" / "CartPole-v1_1").glob("rl_model_*_steps.zip"))
    parts = [*videos.glob("final-model-*.mp4"), *videos.glob("checkpoint-*.mp4")]
    assert len(parts) == 1 + len(checkpoints)
    assert video_frames(videos / "training.mp4") == sum(video_frames(part) for part in parts) == 51 * len(parts)


def test_ffmpeg_falls_back_to_imageio_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg here
    with ffmpeg_on_path():
        ffmpeg = shutil.which("ffmpeg")
        assert ffmpeg is not None and os.path.realpath(ffmpeg) == os.path.realpath(imageio_ffmpeg.get_ffmpeg_exe())
    assert os.environ["PATH"] == str(tmp_path)
    assert shutil.which("ffmpeg") is None


def test_train_student_from_zoo_teacher(zoo_student, zoo_teacher):
    run_dir = zoo_student / "distilled_dqn" / "CartPole-v1_1"
    config = saved_config(run_dir, "CartPole-v1")
    assert config["teacher"] == str(zoo_teacher.resolve())
    assert config["policy_kwargs"] == "dict(net_arch=[64])"  # the project's student, not the Zoo's default
    student = DQN.load(run_dir / "CartPole-v1.zip")
    assert student.q_net.q_net[0].out_features == 64
    assert student.num_timesteps >= 300


def test_enjoy_a_student(zoo_student, capsys):
    capsys.readouterr()
    assert zoo("enjoy", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-f", str(zoo_student), "--exp-id", "1",
               "-n", "100", "--no-render", "--deterministic") == 0  # fmt: skip
    assert re.search(r"Mean reward: -?\d", capsys.readouterr().out)


def test_default_config_and_shipped_teacher_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # far from zoo_configs/: the teacher path resolves against the YAML's folder
    assert zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-n", "300", "--eval-freq", "-1",
               "-params", *TINY) == 0  # fmt: skip
    config = saved_config(tmp_path / "logs" / "distilled_dqn" / "CartPole-v1_1", "CartPole-v1")
    assert Path(config["teacher"]) == (zoo_configs_dir() / "teachers" / "CartPole-v1_dqn.zip").resolve()
    assert (config["alpha"], config["temperature"]) == (1.0, 1.0)


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


@pytest.mark.parametrize(
    "alpha, searched",
    [(0.5, {"alpha", "temperature"}), ("performance", {"alpha_0", "temperature"})],
)
def test_registered_sampler_and_converter_round_trip_either_kind_of_alpha(alpha, searched):
    register()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    record_alpha_kind(trial, alpha)
    sampled = zoo_hyperparams_opt.HYPERPARAMS_SAMPLER["distilled_dqn"](trial, 2, 1, {})
    assert set(trial.params) == searched
    assert sampled == {**({"alpha": "performance"} if alpha == "performance" else {}), **trial.params}
    assert zoo_hyperparams_opt.HYPERPARAMS_CONVERTER["distilled_dqn"](trial.params) == sampled


def test_optimize_with_a_performance_alpha_samples_alpha_0_then_replays_a_trial(tmp_path):
    """The shipped teacher (the default entry's): the students measure its return, which a random policy's is below."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = ["--algo", "distilled_dqn", "--env", "CartPole-v1", "-f", str(tmp_path)]
    assert zoo("train", *common, "-n", "300", "-optimize", "--n-trials", "2", "--n-evaluations", "1",
               "--eval-episodes", "2", "--no-optim-plots", "--storage", storage, "--study-name", "s", "--seed", "1",
               "-params", "alpha:'performance'", *TINY) == 0  # fmt: skip
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 2
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert set(trial.params) == {"alpha_0", "temperature"}
        assert ALPHA_0_RANGE[0] <= trial.params["alpha_0"] <= ALPHA_0_RANGE[1]
        assert TEMPERATURE_RANGE[0] <= trial.params["temperature"] <= TEMPERATURE_RANGE[1]

    # The converter gives the alpha back: the entry's constant alpha becomes the trial's performance-based one
    assert zoo("train", *common, "-n", "200", "--eval-freq", "-1", "--storage", storage, "--study-name", "s",
               "--trial-id", "1", "-params", *TINY) == 0  # fmt: skip
    run_dirs = sorted((tmp_path / "distilled_dqn").glob("CartPole-v1_*"), key=lambda path: path.stat().st_mtime)
    config = saved_config(run_dirs[-1], "CartPole-v1")
    assert config["alpha"] == "performance"
    assert config["alpha_0"] == study.trials[1].params["alpha_0"]
    assert config["temperature"] == study.trials[1].params["temperature"]
    student = DistilledDQN.load(run_dirs[-1] / "CartPole-v1.zip")
    assert (student.alpha, student.alpha_0) == ("performance", study.trials[1].params["alpha_0"])


def test_optimize_refuses_searched_hyperparameters_in_params(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    common = ["train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-n", "300", "-optimize", "--n-trials", "1",
              "--no-optim-plots", "--storage", storage, "--study-name", "s", "-f", str(tmp_path)]  # fmt: skip
    assert zoo(*common, "-params", "alpha:'performance'", "alpha_0:0.3", *TINY) == 2
    assert "['alpha_0'] are what the study searches (alpha_0, temperature)" in capsys.readouterr().err
    assert zoo(*common, "-params", "temperature:0.1", *TINY) == 2
    assert "['temperature'] are what the study searches (alpha, temperature)" in capsys.readouterr().err
    assert not (tmp_path / "study.db").exists()


@pytest.mark.slow
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


@pytest.mark.parametrize("arguments", [["fly"], []])
def test_unknown_or_missing_script_prints_usage_and_exits_2(arguments, capsys):
    assert zoo(*arguments) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: python -m sb3_distill.zoo {train,enjoy,record_video,record_training}" in captured.err
    assert ("unknown script 'fly'" if arguments else "no script given") in captured.err


def test_legacy_teacher_from_a_zoo_yaml_and_from_tune(tmp_path, cartpole_teacher_path):
    """An SB3 1.x / gym-era zip (no gym installed) serves as the teacher of a Zoo YAML entry and of a study."""
    from tests.legacy_fixtures import make_legacy_zip

    legacy = make_legacy_zip(cartpole_teacher_path, tmp_path / "legacy.zip")
    config = write_config(tmp_path / "students.yml", {"teacher": "legacy.zip", "policy": "MlpPolicy", "n_timesteps": 200})
    assert zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "--conf-file", str(config), "-f",
               str(tmp_path / "logs"), "--eval-freq", "-1", "-params", *TINY) == 0  # fmt: skip
    saved = saved_config(tmp_path / "logs" / "distilled_dqn" / "CartPole-v1_1", "CartPole-v1")
    assert saved["teacher"] == str(legacy)
    tune_args = ["tune", "--teacher", str(legacy), "--n-trials", "1", "-n", "200", "-f", str(tmp_path / "tuning")]
    assert cli_main([*tune_args, "-params", *TINY, "--eval-freq", "100", "--pruner", "none"]) == 0
    study = optuna.load_study(
        study_name="distilled_dqn_CartPole-v1", storage=f"sqlite:///{tmp_path / 'tuning' / 'studies.db'}"
    )
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE]


def test_legacy_zoo_log_folder_is_a_teacher_and_a_broken_one_is_one_error_line(tmp_path, cartpole_teacher_path, capsys):
    """A Zoo log folder as the Zoo writes it (OrderedDict config.yml), holding an SB3 1.x / gym-era zip."""
    from collections import OrderedDict

    from tests.legacy_fixtures import make_legacy_zip, rewrite_zip

    from sb3_distill.common.teacher import load_teacher

    folder = tmp_path / "dqn" / "CartPole-v1_1"
    (folder / "CartPole-v1").mkdir(parents=True)
    make_legacy_zip(cartpole_teacher_path, folder / "CartPole-v1.zip")
    config = OrderedDict([("policy", "MlpPolicy"), ("n_timesteps", 300)])
    (folder / "CartPole-v1" / "config.yml").write_text(yaml.dump(config))
    assert "!!python/object/apply:collections.OrderedDict" in (folder / "CartPole-v1" / "config.yml").read_text()
    original = DQN.load(cartpole_teacher_path)
    teacher = load_teacher(folder, original.observation_space, original.action_space)
    observations = th.as_tensor(np.stack([original.observation_space.sample() for _ in range(16)]))
    assert teacher.kind == "q_values"
    th.testing.assert_close(teacher.q_values(observations), original.q_net(observations), rtol=0, atol=0)
    assert zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-n", "200", "-f", str(tmp_path / "logs"),
               "--eval-freq", "-1", "-params", f"teacher:'{folder}'", *TINY) == 0  # fmt: skip

    rewrite_zip(cartpole_teacher_path, folder / "CartPole-v1.zip", members={"policy.pth": b"not a torch file"})
    capsys.readouterr()
    assert zoo("train", "--algo", "distilled_dqn", "--env", "CartPole-v1", "-n", "200", "-f", str(tmp_path / "logs"),
               "--eval-freq", "-1", "-params", f"teacher:'{folder}'", *TINY) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert error.startswith("error: ") and str(folder / "CartPole-v1.zip") in error and "policy.pth" in error
