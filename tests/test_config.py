"""The project's data folders and the teachers that ship with the package."""

import subprocess
import sys
from pathlib import Path

import pytest
from stable_baselines3 import DQN

import sb3_distill
from sb3_distill.config import shipped_teacher, shipped_teachers, zoo_configs_dir


def test_shipped_teacher_is_the_packaged_zip_and_loads_with_sb3():
    path = sb3_distill.shipped_teacher("CartPole-v1")
    assert path == zoo_configs_dir() / "teachers" / "CartPole-v1_dqn.zip"
    assert path.is_file()
    teacher = DQN.load(path, device="cpu")
    assert teacher.observation_space.shape == (4,)
    assert teacher.action_space.n == 2


def test_shipped_teachers_lists_the_teacher_folder():
    listed = shipped_teachers()
    assert "CartPole-v1" in listed
    assert listed == sorted(path.name.removesuffix("_dqn.zip") for path in (zoo_configs_dir() / "teachers").glob("*_dqn.zip"))
    for env_id in listed:
        assert shipped_teacher(env_id).is_file()


def test_shipped_teachers_of_another_algorithm():
    assert shipped_teachers("sac") == ["Pendulum-v1"]
    path = shipped_teacher("Pendulum-v1", algo="sac")
    assert path.name == "Pendulum-v1_sac.zip" and path.with_suffix(".json").is_file()
    with pytest.raises(ValueError, match=r"No sac teacher ships for env 'CartPole-v1'.*\['Pendulum-v1'\].*--algo sac"):
        shipped_teacher("CartPole-v1", algo="sac")


def test_shipped_teacher_of_an_env_without_one_names_it_and_the_envs_with_one():
    with pytest.raises(ValueError, match="PongNoFrameskip-v4") as error:
        shipped_teacher("PongNoFrameskip-v4")
    message = str(error.value)
    for env_id in shipped_teachers():
        assert repr(env_id) in message


@pytest.mark.slow
def test_regular_install_ships_configs_teacher_and_study_settings(tmp_path):
    """A non-editable install carries zoo_configs/ (with the shipped teacher) and tuning/ inside the package."""
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
        [
            sys.executable,
            "-c",
            "import sb3_distill; from sb3_distill.config import zoo_configs_dir; "
            "print(sb3_distill.__file__); print(zoo_configs_dir()); print(sb3_distill.shipped_teacher('CartPole-v1'))",
        ],
        env={"PYTHONPATH": str(target), "PATH": ""},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    package_file, configs_dir, teacher_file = located.stdout.strip().splitlines()
    # The installed copy was imported, not the source checkout
    assert package_file == str(target / "sb3_distill" / "__init__.py")
    assert configs_dir == str(data / "zoo_configs")
    assert teacher_file == str(data / "zoo_configs" / "teachers" / "CartPole-v1_dqn.zip")
