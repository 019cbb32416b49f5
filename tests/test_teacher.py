import zipfile

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.wrappers import TimeAwareObservation
from sb3_contrib import QRDQN
from stable_baselines3 import PPO

from sb3_distill.teacher import Teacher, load_teacher

CARTPOLE_OBS = gym.make("CartPole-v1").observation_space
CARTPOLE_ACTIONS = spaces.Discrete(2)


def test_load_from_path_gives_frozen_values_equal_to_the_teacher(cartpole_teacher_path, cartpole_teacher):
    teacher = load_teacher(cartpole_teacher_path, CARTPOLE_OBS, CARTPOLE_ACTIONS)
    observations = th.as_tensor(np.stack([CARTPOLE_OBS.sample() for _ in range(5)]))
    values = teacher.q_values(observations)
    assert values.shape == (5, 2)
    assert not values.requires_grad
    with th.no_grad():
        expected = cartpole_teacher.q_net(observations)
    assert th.allclose(values, expected)
    assert not teacher.network.training
    assert all(not parameter.requires_grad for parameter in teacher.network.parameters())
    # [32, 32] MLP on 4 inputs and 2 outputs
    assert teacher.num_parameters() == (4 * 32 + 32) + (32 * 32 + 32) + (32 * 2 + 2)


def test_zip_suffix_may_be_omitted(cartpole_teacher_path):
    teacher = load_teacher(str(cartpole_teacher_path.with_suffix("")), CARTPOLE_OBS, CARTPOLE_ACTIONS)
    assert teacher.algorithm == "DQN"


def test_loaded_model_is_copied_not_mutated(cartpole_teacher):
    teacher = load_teacher(cartpole_teacher, CARTPOLE_OBS, CARTPOLE_ACTIONS)
    assert teacher.network is not cartpole_teacher.q_net
    assert all(parameter.requires_grad for parameter in cartpole_teacher.q_net.parameters())


def test_loading_does_not_touch_the_global_random_state(cartpole_teacher_path):
    np.random.seed(123)
    th.manual_seed(123)
    expected = (np.random.rand(), th.rand(1).item())
    np.random.seed(123)
    th.manual_seed(123)
    load_teacher(cartpole_teacher_path, CARTPOLE_OBS, CARTPOLE_ACTIONS)
    assert (np.random.rand(), th.rand(1).item()) == expected


def test_qrdqn_teacher_gives_the_mean_over_quantiles(tmp_path):
    model = QRDQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8], n_quantiles=5), seed=0)
    model.save(tmp_path / "qrdqn.zip")
    teacher = load_teacher(tmp_path / "qrdqn.zip", CARTPOLE_OBS, CARTPOLE_ACTIONS)
    observations = th.as_tensor(np.stack([CARTPOLE_OBS.sample() for _ in range(3)]))
    with th.no_grad():
        expected = model.quantile_net(observations).mean(dim=1)
    assert teacher.algorithm == "QRDQN"
    assert th.allclose(teacher.q_values(observations), expected, atol=1e-6)


def test_missing_file_is_file_not_found(tmp_path):
    missing = tmp_path / "no_such_teacher.zip"
    with pytest.raises(FileNotFoundError, match=r"no_such_teacher\.zip"):
        load_teacher(missing, CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_file_that_is_not_a_zip(tmp_path):
    not_a_zip = tmp_path / "teacher.zip"
    not_a_zip.write_text("hello")
    with pytest.raises(ValueError, match=r"teacher\.zip.*not an SB3 model zip"):
        load_teacher(not_a_zip, CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_zip_that_is_not_an_sb3_model(tmp_path):
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ValueError, match=r"other\.zip.*not an SB3 model zip"):
        load_teacher(other_zip, CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_action_space_mismatch_names_both_spaces(cartpole_teacher_path):
    mountain_car = gym.make("MountainCar-v0")
    with pytest.raises(ValueError, match=r"Discrete\(2\).*Discrete\(3\)"):
        load_teacher(cartpole_teacher_path, mountain_car.observation_space, mountain_car.action_space)


def test_observation_space_mismatch_names_both_spaces(cartpole_teacher_path):
    time_aware = TimeAwareObservation(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match=r"(?s)observation space Box\(.*\(4,\).*observation space Box\(.*\(5,\)"):
        load_teacher(cartpole_teacher_path, time_aware.observation_space, time_aware.action_space)


def test_continuous_action_teacher_is_refused(tmp_path):
    PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64).save(tmp_path / "pendulum_ppo.zip")
    with pytest.raises(ValueError, match=r"pendulum_ppo\.zip.*Box\(.*Discrete action space"):
        load_teacher(tmp_path / "pendulum_ppo.zip", CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_unsupported_discrete_teacher_names_its_policy(tmp_path):
    PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64).save(tmp_path / "cartpole_ppo.zip")
    with pytest.raises(ValueError, match=r"cartpole_ppo\.zip.*ActorCriticPolicy.*supported teachers are DQN"):
        load_teacher(tmp_path / "cartpole_ppo.zip", CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_wrong_teacher_type_is_a_type_error():
    with pytest.raises(TypeError, match="teacher=42"):
        load_teacher(42, CARTPOLE_OBS, CARTPOLE_ACTIONS)  # type: ignore[arg-type]


def test_teacher_is_reused_and_moved(cartpole_teacher):
    teacher = Teacher(cartpole_teacher, source="test")
    assert load_teacher(teacher, CARTPOLE_OBS, CARTPOLE_ACTIONS, device="cpu") is teacher
    assert teacher.device == th.device("cpu")
    assert "DQN" in repr(teacher)
