import json

import numpy as np
import pytest
import yaml
from rl_zoo3.utils import SimpleLinearSchedule
from stable_baselines3 import DQN

from sb3_distill.cli import main
from sb3_distill.config import zoo_configs_dir

SHIPPED_TEACHER = zoo_configs_dir() / "teachers" / "CartPole-v1_dqn.zip"
TINY_RUN = ["-n", "300", "--eval-freq", "300", "--eval-episodes", "2", "--curve-episodes", "1", "--no-progress-bar"]
TINY_RUN += ["--reference-episodes", "2"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_distill_on_the_embedded_teacher_prints_and_saves_the_comparison(tmp_path, capsys):
    code = main(
        [
            "distill",
            "-n",
            "600",
            "--eval-freq",
            "300",
            "--eval-episodes",
            "2",
            "--curve-episodes",
            "1",
            "--net-arch",
            "16",
            "-f",
            str(tmp_path),
            "--no-progress-bar",
        ]
    )
    assert code == 0
    output = capsys.readouterr().out
    run_dir = tmp_path / "CartPole-v1_1"
    comparison = json.loads((run_dir / "comparison.json").read_text())
    # The shipped teacher is the Zoo's [256, 256] net; the student [16]
    assert comparison["teacher"]["parameters"] == 67_586
    assert comparison["student"]["parameters"] == (4 * 16 + 16) + (16 * 2 + 2)
    assert comparison["parameter_ratio"] == pytest.approx(114 / 67_586)
    assert comparison["student"]["env_steps"] >= 600
    assert comparison["teacher"]["env_steps"] == 50_176  # read from the teacher zip, as its .json records
    assert comparison["student"]["n_episodes"] == 2
    assert "parameters" in output and "0.17%" in output and "random policy" in output
    assert comparison["random_return"] < comparison["teacher"]["mean_return"]
    assert (run_dir / "learning_curve.png").read_bytes().startswith(PNG_SIGNATURE)
    assert DQN.load(run_dir / "student.zip").policy.q_net.q_net[0].out_features == 16
    # A second run gets a new folder: nothing saved is overwritten
    main(
        [
            "distill",
            "-n",
            "300",
            "--eval-freq",
            "300",
            "--eval-episodes",
            "1",
            "--curve-episodes",
            "1",
            "-f",
            str(tmp_path),
            "--no-progress-bar",
        ]
    )
    assert (run_dir / "student.zip").exists() and (tmp_path / "CartPole-v1_2" / "student.zip").exists()


def test_distill_bad_input_is_a_one_line_error(tmp_path, capsys):
    assert main(["distill", "--teacher", str(tmp_path / "missing.zip"), "-f", str(tmp_path)]) == 2
    assert "missing.zip" in capsys.readouterr().err
    assert main(["distill", "--alpha", "2", "-f", str(tmp_path)]) == 2
    assert "alpha=2.0" in capsys.readouterr().err
    # No entry of its own: the 'default' entry, which names no teacher
    assert main(["distill", "--env", "Pendulum-v1", "-f", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "'Pendulum-v1'" in error and "entry 'default'" in error and "--teacher" in error
    assert main(["distill", "--env", "CartPole-v2", "-f", str(tmp_path)]) == 2
    assert "Unknown env id 'CartPole-v2': did you mean 'CartPole-v1'" in capsys.readouterr().err
    assert main(["distill", "--conf-file", str(tmp_path / "none.yml"), "-f", str(tmp_path)]) == 2
    assert "none.yml" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written for a run that could not start
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "-params", "learning_rate:1e-3)", "-f", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "-params learning_rate:1e-3)" in capsys.readouterr().err


def test_teacher_trains_saves_and_refuses_to_overwrite(tmp_path, capsys):
    output = tmp_path / "teacher.zip"
    args = ["teacher", "-n", "300", "--eval-episodes", "1", "-o", str(output), "--no-progress-bar"]
    assert main(args) == 0
    teacher = DQN.load(output)
    assert teacher.num_timesteps >= 300  # rounded up to whole rollouts of train_freq=256
    assert teacher.policy.q_net.q_net[0].out_features == 256  # the Zoo's CartPole-v1 net
    metadata = json.loads(output.with_suffix(".json").read_text())
    assert metadata["seed"] == 0 and metadata["n_timesteps"] == 300 and metadata["parameters"] == 67_586
    saved = output.read_bytes()
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert output.read_bytes() == saved


def test_zoo_subcommand_reaches_the_zoo_wrapper(capsys):
    assert main(["zoo", "fly"]) == 2
    assert "record_training" in capsys.readouterr().err


def test_normalized_score_puts_random_at_zero_and_teacher_at_one():
    from sb3_distill.report import normalized_score

    assert normalized_score(-109.0, teacher_return=-109.0, random_return=-500.0) == 1.0
    assert normalized_score(-500.0, teacher_return=-109.0, random_return=-500.0) == 0.0
    # A student better than its teacher on a negative-return env scores above 1
    assert normalized_score(-90.0, teacher_return=-109.0, random_return=-500.0) > 1.0


def test_score_of_a_teacher_no_better_than_random_is_not_a_number_and_shown_as_na():
    from sb3_distill.report import format_score, normalized_score

    score = normalized_score(-1.0, teacher_return=-21.0, random_return=-21.0)
    assert score != score  # NaN
    assert format_score(score) == "n/a"
    assert format_score(normalized_score(-60.0, teacher_return=-21.0, random_return=-100.0)) == "50.6%"


def test_distill_reads_a_config_the_way_the_zoo_does(tmp_path, capsys):
    """lin_* schedules, train_freq lists and env wrappers, as rl_zoo3 preprocesses them."""
    config = tmp_path / "students.yml"
    entry = {
        "teacher": str(SHIPPED_TEACHER),
        "n_timesteps": 300,
        "policy": "MlpPolicy",
        "learning_rate": "lin_2.3e-3",
        "train_freq": [1, "episode"],
        "gradient_steps": 8,
        "learning_starts": 50,
        "policy_kwargs": "dict(net_arch=[8])",
    }
    config.write_text(yaml.safe_dump({"CartPole-v1": entry}))
    assert main(["distill", "--conf-file", str(config), *TINY_RUN, "-f", str(tmp_path / "runs")]) == 0
    run_dir = tmp_path / "runs" / "CartPole-v1_1"
    student = DQN.load(run_dir / "student.zip")
    assert isinstance(student.learning_rate, SimpleLinearSchedule)
    assert student.learning_rate(1.0) == pytest.approx(2.3e-3) and student.learning_rate(0.5) == pytest.approx(1.15e-3)
    assert (student.train_freq.frequency, student.train_freq.unit.value) == (1, "episode")
    assert student.policy.q_net.q_net[0].out_features == 8
    assert json.loads((run_dir / "comparison.json").read_text())["hyperparams"]["learning_rate"] == "lin_2.3e-3"

    # The entry's env wrapper reaches the env: its extra time feature no longer fits the teacher
    entry["env_wrapper"] = "sb3_contrib.common.wrappers.TimeFeatureWrapper"
    config.write_text(yaml.safe_dump({"CartPole-v1": entry}))
    capsys.readouterr()
    assert main(["distill", "--conf-file", str(config), *TINY_RUN, "-f", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err
    assert str(SHIPPED_TEACHER) in error and "(4,)" in error and "(5,)" in error


def test_env_without_an_entry_runs_from_default_with_a_teacher(tmp_path):
    # CartPole-v0 has no entry: the 'default' one, its student sized from the teacher ([54, 54]: under 5% of it)
    args = ["distill", "--env", "CartPole-v0", "--teacher", str(SHIPPED_TEACHER), *TINY_RUN, "-f", str(tmp_path)]
    assert main([*args, "-params", "learning_starts:50", "buffer_size:1000"]) == 0
    comparison = json.loads((tmp_path / "CartPole-v0_1" / "comparison.json").read_text())
    assert comparison["student"]["parameters"] == (4 * 54 + 54) + (54 * 54 + 54) + (54 * 2 + 2)
    assert comparison["reference_episodes"] == 2 and comparison["teacher"]["n_episodes"] == 2
    # Shown relative to the project, never as a folder of the machine it ran on
    assert comparison["teacher_path"] == "zoo_configs/teachers/CartPole-v1_dqn.zip"
    assert comparison["hyperparams"]["buffer_size"] == 1000


def test_distill_tensorboard_log_writes_the_distillation_keys(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = ["distill", *TINY_RUN, "--net-arch", "8", "-f", str(tmp_path / "runs"), "-tb", str(tmp_path / "tb")]
    assert main([*args, "-params", "learning_starts:50", "train_freq:4", "gradient_steps:1"]) == 0
    (event_file,) = (tmp_path / "tb").glob("*/events.out.tfevents.*")
    accumulator = EventAccumulator(str(event_file))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"train/distill_loss", "train/td_loss", "train/alpha", "train/teacher_agreement"} <= tags
    assert np.isfinite([event.value for event in accumulator.Scalars("train/distill_loss")]).all()


def test_teachers_from_strangers_on_the_command_line(tmp_path, capsys, cartpole_teacher_path):
    """A legacy gym-era zip distils; a pickle payload does not run; a broken file is one error line naming it."""
    from tests.legacy_fixtures import make_legacy_zip, make_payload_zip, rewrite_zip

    run = ["distill", *TINY_RUN, "--net-arch", "8", "-f", str(tmp_path / "runs"), "-params", "learning_starts:50"]
    legacy = make_legacy_zip(cartpole_teacher_path, tmp_path / "legacy.zip")
    assert main([*run, "--teacher", str(legacy)]) == 0
    assert json.loads((tmp_path / "runs" / "CartPole-v1_1" / "comparison.json").read_text())["teacher_path"] == str(legacy)

    marker = tmp_path / "payload-ran"
    payload = make_payload_zip(cartpole_teacher_path, tmp_path / "payload.zip", marker)
    assert main([*run, "--teacher", str(payload)]) == 0
    assert not marker.exists()

    broken = rewrite_zip(cartpole_teacher_path, tmp_path / "broken.zip", members={"data": b"{not json"})
    capsys.readouterr()
    assert main([*run, "--teacher", str(broken)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and str(broken) in error


def test_offline_phase_teacher_steps_are_reported_apart(tmp_path, capsys):
    args = ["distill", *TINY_RUN, "--net-arch", "8", "-f", str(tmp_path)]
    overrides = [
        "learning_starts:50",
        "train_freq:4",
        "gradient_steps:1",
        "offline_transitions:120",
        "offline_gradient_steps:5",
    ]
    assert main([*args, "-params", *overrides]) == 0
    comparison = json.loads((tmp_path / "CartPole-v1_1" / "comparison.json").read_text())
    assert comparison["teacher_transitions"] == 120
    assert 300 <= comparison["student"]["env_steps"] < 304  # the student's own steps only (rollouts of 4)
    # The printed comparison says so too
    assert "offline phase: 120 transitions acted by the teacher, not counted in the student's env steps" in (
        capsys.readouterr().out
    )


@pytest.mark.parametrize(
    "algo, env_id, plain",
    [
        ("distilled_sac", "Pendulum-v1", "stable_baselines3.SAC"),
        ("distilled_td3", "Pendulum-v1", "stable_baselines3.TD3"),
        ("distilled_ppo", "CartPole-v1", "stable_baselines3.PPO"),
        ("distilled_qrdqn", "CartPole-v1", "sb3_contrib.QRDQN"),
    ],
)
def test_distill_any_student_from_its_entry(tmp_path, capsys, algo, env_id, plain):
    import importlib

    args = ["distill", "--algo", algo, "--env", env_id, *TINY_RUN, "-f", str(tmp_path)]
    # Tiny budgets: updates from the first steps, a small net
    overrides = ["policy_kwargs:dict(net_arch=[8])"]
    if algo == "distilled_ppo":
        overrides += ["n_envs:1", "n_steps:64", "batch_size:32", "n_epochs:1"]
    else:
        overrides += ["learning_starts:50", "buffer_size:1000"]
    assert main([*args, "-params", *overrides]) == 0
    printed = capsys.readouterr().out
    run_dir = tmp_path / f"{env_id}_1"
    comparison = json.loads((run_dir / "comparison.json").read_text())
    assert comparison["algo"] == algo and comparison["env_id"] == env_id
    assert f"loads with {plain}.load" in printed
    module, name = plain.rsplit(".", 1)
    loaded = getattr(importlib.import_module(module), name).load(run_dir / "student.zip")
    assert loaded.num_timesteps >= 300


def test_teacher_of_another_algorithm_uses_the_zoos_settings(tmp_path, capsys):
    output = tmp_path / "sac.zip"
    args = ["teacher", "--algo", "sac", "--env", "Pendulum-v1", "-n", "200", "--eval-episodes", "1", "--no-progress-bar"]
    assert main([*args, "-o", str(output), "-params", "learning_starts:50", "policy_kwargs:dict(net_arch=[8])"]) == 0
    metadata = json.loads(output.with_suffix(".json").read_text())
    assert metadata["algo"] == "sac" and metadata["config_file"] == "zoo_configs/sac.yml"
    assert metadata["parameters"] == (3 * 8 + 8) + 2 * (8 * 1 + 1)  # the actor: one hidden layer, mean and log_std heads
    assert "Training a SAC teacher on Pendulum-v1" in capsys.readouterr().out


def test_an_unknown_algo_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "--algo", "distilled_a2c"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'distilled_a2c'" in capsys.readouterr().err


def test_the_run_names_the_students_size_and_warns_before_training(tmp_path, capsys):
    # CartPole-v0 has no entry: 'default' sizes the student from the teacher, under 5% of it
    args = ["distill", "--env", "CartPole-v0", "--teacher", str(SHIPPED_TEACHER), *TINY_RUN, "-f", str(tmp_path)]
    assert main([*args, "-params", "learning_starts:50", "buffer_size:1000"]) == 0
    captured = capsys.readouterr()
    assert "into a [54, 54] DQN student (3,350 parameters, 4.96% of the teacher)" in captured.out
    assert "Recipe from the teacher: student [54, 54]: 3,350 parameters" in captured.out
    assert "warning:" not in captured.err
    # policy_kwargs given as None: SB3's [64, 64] (4,610 parameters, 6.82% of the teacher), named as such
    assert main([*args, "-params", "learning_starts:50", "buffer_size:1000", "policy_kwargs:None"]) == 0
    assert "into a SB3-default DQN student (4,610 parameters, 6.82% of the teacher)" in capsys.readouterr().out
    # A student above 10% of its teacher is announced before it trains
    assert main([*args, "--net-arch", "256", "-params", "learning_starts:50", "buffer_size:1000"]) == 0
    assert "warning: the student has 1,794 parameters" not in capsys.readouterr().err  # 2.65%: no warning
    assert main([*args, "--net-arch", "256", "256", "-params", "learning_starts:50", "buffer_size:1000"]) == 0
    err = capsys.readouterr().err
    assert "warning: the student has 67,586 parameters, 100.0% of the teacher's 67,586 (more than 10%)" in err


def test_warn_before_training_names_a_teacher_no_better_than_random(capsys):
    from sb3_distill.runs import warn_before_training

    assert warn_before_training(450, 67_586, 500.0, 21.1) == []
    (line,) = warn_before_training(450, 67_586, -1200.0, -1100.0)
    assert line.startswith("warning: the teacher's mean return -1200.0 over 3 episodes is no better than a random policy's")
    assert line in capsys.readouterr().err


def test_tune_of_a_teacher_algorithm_is_refused_by_the_parser(capsys):
    # Every student can be tuned (tests/test_tuning.py runs SAC and PPO studies); a teacher algorithm is not a student
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--algo", "sac", "--env", "Pendulum-v1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --algo: invalid choice: 'sac'" in err and "distilled_sac" in err
