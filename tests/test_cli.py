import json

import pytest
from stable_baselines3 import DQN

from sb3_distill.cli import main
from sb3_distill.config import zoo_config_path

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
    assert main(["distill", "--env", "Pendulum-v1", "-f", str(tmp_path)]) == 2
    assert "'Pendulum-v1'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written for a run that could not start


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


def test_default_config_files_exist():
    assert zoo_config_path("dqn").is_file()
    assert zoo_config_path("distilled_dqn").is_file()


def test_zoo_subcommand_reaches_the_zoo_wrapper(capsys):
    assert main(["zoo", "fly"]) == 2
    assert "python -m sb3_distill.zoo {train,enjoy" in capsys.readouterr().err


def test_regular_install_ships_configs_teacher_and_study_settings(tmp_path):
    """A non-editable install carries zoo_configs/ (with the shipped teacher) and tuning/ inside the package."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    data = target / "sb3_distill" / "data"
    assert (data / "zoo_configs" / "distilled_dqn.yml").is_file()
    assert (data / "zoo_configs" / "teachers" / "CartPole-v1_dqn.zip").is_file()
    assert (data / "tuning" / "study.yml").is_file()
    located = subprocess.run(
        [sys.executable, "-c", "from sb3_distill.config import zoo_configs_dir; print(zoo_configs_dir())"],
        env={"PYTHONPATH": str(target), "PATH": ""},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    assert located.stdout.strip() == str(data / "zoo_configs")


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
