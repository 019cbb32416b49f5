"""The teacher's values kept in the replay buffer (teacher_cache=True) against evaluating the teacher per batch."""

import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.vec_env import VecNormalize

from sb3_distill import DistilledDQN, distillation_loss
from sb3_distill.buffers import (
    TeacherValuesDictReplayBuffer,
    TeacherValuesNStepReplayBuffer,
    TeacherValuesReplayBuffer,
)
from tests.conftest import TINY_DQN_KWARGS

STUDENT_KWARGS = dict(policy_kwargs=dict(net_arch=[8]), **TINY_DQN_KWARGS)


class CountingNetwork(th.nn.Module):
    """Wraps the teacher's network and counts the observations it is asked to evaluate."""

    def __init__(self, network: th.nn.Module):
        super().__init__()
        self.network = network
        self.n_observations = 0

    def forward(self, observations):
        batch = next(iter(observations.values())) if isinstance(observations, dict) else observations
        self.n_observations += len(batch)
        return self.network(observations)


def assert_cached_values_match_the_teacher(student: DistilledDQN, batch_size: int = 64) -> None:
    student.replay_buffer.update_teacher_values(student.teacher)
    batch = student.replay_buffer.sample(batch_size)
    assert batch.teacher_q_values is not None
    fresh = student.teacher.q_values(batch.observations)
    th.testing.assert_close(batch.teacher_q_values, fresh, rtol=1e-5, atol=1e-5)
    # ... hence the same loss on the same batch, cached or not
    student_q_values = student.q_net(batch.observations)
    th.testing.assert_close(
        distillation_loss(student_q_values, batch.teacher_q_values, 0.5),
        distillation_loss(student_q_values, fresh, 0.5),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "env, kwargs, buffer_class",
    [
        ("CartPole-v1", {}, TeacherValuesReplayBuffer),
        (make_vec_env("CartPole-v1", n_envs=3, seed=0), {}, TeacherValuesReplayBuffer),
        ("CartPole-v1", {"n_steps": 3}, TeacherValuesNStepReplayBuffer),
        (make_vec_env("CartPole-v1", n_envs=2, seed=0), {"n_steps": 2}, TeacherValuesNStepReplayBuffer),
        ("CartPole-v1", {"optimize_memory_usage": True, "replay_buffer_kwargs": {"handle_timeout_termination": False}},
         TeacherValuesReplayBuffer),
    ],
)  # fmt: skip
def test_cached_values_line_up_with_the_sampled_observations(cartpole_teacher_path, env, kwargs, buffer_class):
    student = DistilledDQN("MlpPolicy", env, teacher=cartpole_teacher_path, seed=0, **{**STUDENT_KWARGS, **kwargs})
    assert type(student.replay_buffer) is buffer_class
    student.learn(300)
    assert_cached_values_match_the_teacher(student)


def test_dict_observations(tmp_path):
    DQN("MultiInputPolicy", SimpleMultiObsEnv(), seed=0, **STUDENT_KWARGS).save(tmp_path / "dict_teacher.zip")
    student = DistilledDQN(
        "MultiInputPolicy", SimpleMultiObsEnv(), teacher=tmp_path / "dict_teacher.zip", seed=0, **STUDENT_KWARGS
    )
    assert type(student.replay_buffer) is TeacherValuesDictReplayBuffer
    student.learn(200)
    assert_cached_values_match_the_teacher(student)


def test_values_wrap_around_a_full_buffer(cartpole_teacher_path):
    student = DistilledDQN(
        "MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, seed=0, **{**STUDENT_KWARGS, "buffer_size": 150}
    )
    student.learn(400)
    assert student.replay_buffer.full
    assert_cached_values_match_the_teacher(student)


def test_teacher_sees_each_stored_observation_once(cartpole_teacher_path):
    runs = {}
    for teacher_cache in (True, False):
        student = DistilledDQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), teacher=cartpole_teacher_path,
                               teacher_cache=teacher_cache, seed=0, **{**STUDENT_KWARGS, "gradient_steps": 4})  # fmt: skip
        counter = CountingNetwork(student.teacher.network)
        student.teacher.network = counter
        student.learn(400)
        runs[teacher_cache] = (counter.n_observations, student)
    n_cached, _ = runs[True]
    n_uncached, uncached_student = runs[False]
    # Stored transitions: at most the 400 steps (200 calls x 2 envs); per batch: every sampled observation
    assert n_cached <= 400
    assert n_uncached == uncached_student._n_updates * uncached_student.batch_size
    assert n_uncached > 4 * n_cached


def test_cache_on_and_off_train_alike(cartpole_teacher_path):
    parameters = []
    for teacher_cache in (True, False):
        student = DistilledDQN("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, teacher_cache=teacher_cache, seed=4,
                               **STUDENT_KWARGS)  # fmt: skip
        student.learn(300)
        parameters.append([parameter.detach().clone() for parameter in student.policy.parameters()])
    for cached, uncached in zip(*parameters, strict=True):
        th.testing.assert_close(cached, uncached, rtol=1e-4, atol=1e-5)


def test_samples_carry_no_values_until_they_are_computed(cartpole_teacher_path, cartpole_teacher):
    student = DistilledDQN(
        "MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, seed=0, **{**STUDENT_KWARGS, "learning_starts": 500}
    )
    student.learn(100)
    assert student.replay_buffer.n_uncached == 100
    assert student.replay_buffer.sample(8).teacher_q_values is None
    assert student.replay_buffer.update_teacher_values(student.teacher) == 100
    assert student.replay_buffer.sample(8).teacher_q_values is not None
    # A new teacher makes every stored value stale
    student.set_teacher(cartpole_teacher)
    assert student.replay_buffer.n_uncached == 100
    assert student.replay_buffer.sample(8).teacher_q_values is None


def test_memory_is_n_actions_floats_per_transition(cartpole_teacher_path):
    student = DistilledDQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), teacher=cartpole_teacher_path, **STUDENT_KWARGS)
    # SB3 splits buffer_size=1000 over the 2 envs
    assert student.replay_buffer.teacher_q_values.shape == (500, 2, 2)
    assert student.replay_buffer.teacher_q_values.dtype == np.float32


def test_cache_off_keeps_sb3_buffer(cartpole_teacher_path):
    student = DistilledDQN("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, teacher_cache=False, **STUDENT_KWARGS)
    assert type(student.replay_buffer) is ReplayBuffer
    assert not student._uses_teacher_values()


def test_vec_normalize_evaluates_the_teacher_per_batch(cartpole_teacher_path):
    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=1, seed=0))
    student = DistilledDQN("MlpPolicy", env, teacher=cartpole_teacher_path, seed=0, **STUDENT_KWARGS)
    assert not student._uses_teacher_values()
    student.learn(200)
    assert student._n_updates > 0


def test_replay_buffer_saved_by_dqn_gains_values(tmp_path, cartpole_teacher_path):
    dqn = DQN("MlpPolicy", "CartPole-v1", seed=0, **STUDENT_KWARGS)
    dqn.learn(200)
    dqn.save_replay_buffer(tmp_path / "buffer.pkl")
    student = DistilledDQN("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, seed=0, **STUDENT_KWARGS)
    student.load_replay_buffer(tmp_path / "buffer.pkl")
    assert type(student.replay_buffer) is TeacherValuesReplayBuffer
    assert student.replay_buffer.n_uncached == 200
    assert_cached_values_match_the_teacher(student)
