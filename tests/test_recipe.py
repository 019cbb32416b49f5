"""sb3_distill.recipe: Zoo-format config entries read and preprocessed the way rl_zoo3 does."""

from pathlib import Path

import pytest
import yaml
from rl_zoo3.utils import SimpleLinearSchedule
from sb3_contrib.common.wrappers import TimeFeatureWrapper
from stable_baselines3.common.utils import ConstantSchedule
from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize
from torch import nn

from sb3_distill import DistilledDQN
from sb3_distill.config import zoo_configs_dir
from sb3_distill.recipe import check_env_id, make_recipe, next_run_dir

SHIPPED_TEACHER = zoo_configs_dir() / "teachers" / "CartPole-v1_dqn.zip"


def write_config(path: Path, entries: dict) -> Path:
    path.write_text(yaml.safe_dump(entries))
    return path


def test_project_entry_gives_the_students_constructor_arguments():
    recipe = make_recipe("CartPole-v1")
    assert recipe.entry_key == "CartPole-v1" and recipe.n_timesteps == 10_000 and recipe.n_envs == 1
    # The entry's relative teacher is resolved against the YAML file's folder
    assert Path(recipe.teacher) == SHIPPED_TEACHER.resolve()
    assert recipe.model_kwargs["policy_kwargs"] == {"net_arch": [64]}
    assert isinstance(recipe.model_kwargs["learning_rate"], ConstantSchedule)
    assert recipe.hyperparams["policy_kwargs"] == "dict(net_arch=[64])"  # as written
    assert "n_timesteps" not in recipe.model_kwargs
    student = recipe.make_model(recipe.make_env(seed=0), seed=0)
    assert isinstance(student, DistilledDQN) and student.batch_size == 64 and student.alpha == 1.0


def test_schedules_train_freq_lists_and_policy_kwargs_strings_are_the_zoos(tmp_path):
    config = write_config(
        tmp_path / "c.yml",
        {
            "CartPole-v1": {
                "teacher": str(SHIPPED_TEACHER),
                "n_timesteps": 1000,
                "policy": "MlpPolicy",
                "learning_rate": "lin_1e-3",
                "train_freq": [2, "episode"],
                "policy_kwargs": "dict(net_arch=[32], activation_fn=nn.Tanh)",
            }
        },
    )
    recipe = make_recipe("CartPole-v1", conf_file=config, net_arch=[8])
    assert isinstance(recipe.model_kwargs["learning_rate"], SimpleLinearSchedule)
    assert recipe.model_kwargs["learning_rate"](0.5) == pytest.approx(5e-4)
    assert recipe.model_kwargs["train_freq"] == (2, "episode")
    # --net-arch replaces the layers and keeps the rest of the entry's policy_kwargs
    assert recipe.model_kwargs["policy_kwargs"] == {"net_arch": [8], "activation_fn": nn.Tanh}
    assert recipe.net_arch == [8]


def test_wrappers_frame_stacking_and_normalization_build_the_zoos_env(tmp_path):
    entry = {
        "n_timesteps": 1000,
        "policy": "MlpPolicy",
        "env_wrapper": "sb3_contrib.common.wrappers.TimeFeatureWrapper",
        "frame_stack": 2,
        "normalize": "dict(norm_obs=True, norm_reward=False)",
        "n_envs": 2,
    }
    recipe = make_recipe("CartPole-v1", "dqn", conf_file=write_config(tmp_path / "c.yml", {"CartPole-v1": entry}))
    assert recipe.n_envs == 2 and "normalize" not in recipe.model_kwargs
    env = recipe.make_env(seed=0)
    assert env.num_envs == 2
    assert isinstance(env, VecFrameStack) and isinstance(env.venv, VecNormalize)
    assert isinstance(env.venv.venv.envs[0], TimeFeatureWrapper)
    assert env.observation_space.shape == (2 * (4 + 1),)  # 4 CartPole features + time, 2 frames
    eval_env = recipe.make_env(seed=1, n_envs=1, eval_env=True)
    assert eval_env.num_envs == 1 and eval_env.venv.training is False and eval_env.venv.norm_reward is False


def test_python_config_file(tmp_path):
    config = tmp_path / "students.py"
    config.write_text(
        f"hyperparams = {{'CartPole-v1': dict(teacher={str(SHIPPED_TEACHER)!r}, n_timesteps=500, "
        "policy='MlpPolicy', policy_kwargs=dict(net_arch=[16]), alpha=0.25)}\n"
    )
    recipe = make_recipe("CartPole-v1", conf_file=config)
    assert recipe.n_timesteps == 500
    assert (recipe.model_kwargs["alpha"], recipe.net_arch) == (0.25, [16])


def test_env_without_entry_uses_default_and_overrides(tmp_path):
    recipe = make_recipe("CartPole-v0", teacher=SHIPPED_TEACHER, hyperparams={"learning_starts": 7}, n_timesteps=300)
    assert recipe.entry_key == "default"
    assert recipe.n_timesteps == 300 and recipe.model_kwargs["learning_starts"] == 7
    assert recipe.teacher == str(SHIPPED_TEACHER)
    config = write_config(tmp_path / "c.yml", {"default": {"policy": "MlpPolicy"}})
    with pytest.raises(ValueError, match=r"Entry 'default' of .*c\.yml' has no n_timesteps"):
        make_recipe("CartPole-v1", "dqn", conf_file=config)
    assert make_recipe("CartPole-v1", "dqn", conf_file=config, n_timesteps=10).n_timesteps == 10


def test_config_without_entry_or_default_is_refused(tmp_path):
    config = write_config(tmp_path / "c.yml", {"Acrobot-v1": {"policy": "MlpPolicy", "n_timesteps": 10}})
    with pytest.raises(ValueError, match="has no entry for 'CartPole-v1' and no 'default' entry"):
        make_recipe("CartPole-v1", "dqn", conf_file=config)
    with pytest.raises(FileNotFoundError, match=r"missing\.yml"):
        make_recipe("CartPole-v1", conf_file=tmp_path / "missing.yml")
    with pytest.raises(ValueError, match=r"algo='ddqn' is not a known algorithm: choose one of \[.*'distilled_sac'"):
        make_recipe("CartPole-v1", "ddqn")


def test_a_teacher_algorithm_without_a_project_config_reads_the_zoos_own():
    # The project tunes dqn and sac teachers (zoo_configs/); ppo's settings come from rl_zoo3's hyperparams/ppo.yml
    recipe = make_recipe("CartPole-v1", "ppo")
    assert recipe.config_file.parts[-2:] == ("hyperparams", "ppo.yml") and "rl_zoo3" in recipe.config_file.parts
    assert recipe.model_kwargs["n_steps"] == 32 and recipe.n_envs == 8
    assert make_recipe("Pendulum-v1", "sac").config_file.name == "sac.yml"


def test_relative_teacher_from_the_caller_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "teachers").mkdir()
    (tmp_path / "teachers" / "t.zip").write_bytes(SHIPPED_TEACHER.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert make_recipe("CartPole-v1", teacher="teachers/t.zip").teacher == str(tmp_path / "teachers" / "t.zip")
    with pytest.raises(FileNotFoundError, match=r"'teachers/none\.zip'"):
        make_recipe("CartPole-v1", teacher="teachers/none.zip")


def test_unknown_env_id_suggests_close_ids():
    with pytest.raises(ValueError, match=r"Unknown env id 'CartPole-v2': did you mean 'CartPole-v1'"):
        check_env_id("CartPole-v2")
    with pytest.raises(ValueError, match="Unknown env id 'Acrobat-v1': did you mean 'Acrobot-v1'"):
        make_recipe("Acrobat-v1")
    check_env_id("PongNoFrameskip-v4")  # Atari ids are registered by the Zoo's imports


def test_next_run_dir_numbers_after_existing_runs(tmp_path):
    first = next_run_dir(tmp_path, "ALE/Pong-v5")
    (tmp_path / "ALE-Pong-v5_7").mkdir()
    assert first.name == "ALE-Pong-v5_1" and next_run_dir(tmp_path, "ALE/Pong-v5").name == "ALE-Pong-v5_8"
