"""The default entry's recipe from the teacher (#25 items 2 and 4): settings from its zip, a student sized from it."""

import pytest
from stable_baselines3 import DQN, PPO

from sb3_distill.config import zoo_configs_dir
from sb3_distill.recipe import make_recipe
from sb3_distill.teacher_recipe import (
    mlp_q_parameters,
    recorded_train_freq,
    sized_net_arch,
    teacher_training_settings,
)

SHIPPED = str(zoo_configs_dir() / "teachers" / "CartPole-v1_dqn.zip")


def test_the_shipped_teachers_recorded_settings_are_read_without_unpickling():
    settings, steps, algorithm = teacher_training_settings(SHIPPED)
    # zoo_configs/teachers/CartPole-v1_dqn.json records how it was trained (zoo_configs/dqn.yml)
    assert algorithm == "DQN" and steps == 50_176
    assert settings == {
        "gamma": 0.99, "learning_rate": 0.0023, "batch_size": 64, "buffer_size": 100_000, "target_update_interval": 10,
        "train_freq": 256, "gradient_steps": 128, "exploration_fraction": 0.16, "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.04,
    }  # fmt: skip


def test_a_train_freq_in_episodes_is_read_from_the_pickle(tmp_path):
    DQN("MlpPolicy", "CartPole-v1", train_freq=(3, "episode")).save(tmp_path / "episodes.zip")
    settings, _, _ = teacher_training_settings(str(tmp_path / "episodes.zip"))
    assert settings["train_freq"] == [3, "episode"]
    assert recorded_train_freq({":serialized:": "not base64 pickle"}) is None


def test_the_student_is_the_widest_of_the_teachers_depth_under_the_share():
    assert mlp_q_parameters(4, [54, 54], 2) == 3_350
    assert sized_net_arch(0.05, 67_586, 4, 2, depth=2) == [54, 54]
    assert mlp_q_parameters(4, [55, 55], 2) > 0.05 * 67_586
    # One layer of w units: 4w + w + 2w + 2 = 7w + 2 <= 675.86
    assert sized_net_arch(0.01, 67_586, 4, 2, depth=1) == [96]


def test_the_default_entry_takes_the_teachers_settings_and_sizes_the_student():
    recipe = make_recipe("CartPole-v0", teacher=SHIPPED)
    assert recipe.entry_key == "default"
    kwargs = recipe.model_kwargs
    assert (recipe.hyperparams["learning_rate"], kwargs["batch_size"], kwargs["gradient_steps"]) == (0.0023, 64, 128)
    assert kwargs["learning_rate"](1.0) == 0.0023 and kwargs["train_freq"] == 256
    assert kwargs["alpha"] == 0.9 and kwargs["learning_starts"] == 0
    assert recipe.n_timesteps == 10_000  # 0.2 of the teacher's 50,176 steps, rounded
    assert kwargs["policy_kwargs"]["net_arch"] == [54, 54]
    assert any("4.96% of the teacher's 67,586" in note for note in recipe.notes)
    # What config.yml records: the values, not the options
    assert "teacher_settings" not in recipe.hyperparams and recipe.hyperparams["batch_size"] == 64


def test_params_win_over_the_teacher_and_a_ppo_teacher_leaves_sb3s_defaults(tmp_path):
    recipe = make_recipe("CartPole-v0", teacher=SHIPPED, hyperparams={"batch_size": 32, "policy_kwargs": "dict(net_arch=[8])"})
    assert recipe.model_kwargs["batch_size"] == 32 and recipe.model_kwargs["policy_kwargs"]["net_arch"] == [8]
    PPO("MlpPolicy", "CartPole-v1", n_steps=64, policy_kwargs=dict(net_arch=[64, 64])).learn(64).save(tmp_path / "ppo.zip")
    recipe = make_recipe("CartPole-v0", teacher=tmp_path / "ppo.zip")
    assert "learning_rate" not in recipe.hyperparams  # SB3's default, not PPO's 3e-4
    assert any("records no DQN settings" in note for note in recipe.notes)
    assert recipe.n_timesteps == 10_000  # the minimum: 0.2 of the teacher's 64 steps is less


def test_the_recipe_options_are_checked():
    with pytest.raises(ValueError, match=r"student_share=2: expected a share in \(0, 1\]"):
        make_recipe("CartPole-v0", teacher=SHIPPED, hyperparams={"student_share": 2})


def test_a_constant_learning_rate_schedule_is_read_from_the_pickle(tmp_path):
    from stable_baselines3.common.utils import ConstantSchedule

    DQN("MlpPolicy", "CartPole-v1", learning_rate=ConstantSchedule(5e-4)).save(tmp_path / "schedule.zip")
    settings, _, _ = teacher_training_settings(str(tmp_path / "schedule.zip"))
    assert settings["learning_rate"] == 5e-4
