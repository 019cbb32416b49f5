"""QDagger's offline phase: the teacher fills the replay buffer before the student's own steps."""

import numpy as np
import pandas as pd
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from sb3_distill import DistilledDQN
from sb3_distill.common.buffers import TeacherValuesNStepReplayBuffer
from tests.conftest import TINY_DQN_KWARGS

STUDENT_KWARGS = dict(policy_kwargs=dict(net_arch=[8]), **TINY_DQN_KWARGS)


def offline_student(teacher, env="CartPole-v1", **kwargs) -> DistilledDQN:
    settings = dict(alpha=0.5, offline_transitions=300, offline_gradient_steps=20, offline_epsilon=0.0, seed=0)
    return DistilledDQN("MlpPolicy", env, teacher=teacher, **{**STUDENT_KWARGS, **settings, **kwargs})


def stored_greedy_share(student: DistilledDQN, positions: slice, env_index: int = 0) -> float:
    """Share of the stored actions at ``positions`` that are the teacher's greedy actions on the stored observations."""
    buffer = student.replay_buffer
    observations = th.as_tensor(buffer.observations[positions, env_index])
    greedy = student.teacher.q_values(observations).argmax(dim=1).numpy()
    return float(np.mean(buffer.actions[positions, env_index, 0] == greedy))


def parameters_of(model) -> list[th.Tensor]:
    return [parameter.detach().clone() for parameter in model.q_net.parameters()]


def test_teacher_transitions_come_first_and_are_not_student_steps(cartpole_teacher_path):
    student = offline_student(cartpole_teacher_path)
    student.learn(200)
    assert student.teacher_transitions == 300 and student.offline_done
    assert student.num_timesteps == 200
    assert student.replay_buffer.pos == 300 + 200
    # With epsilon = 0 every stored action of the phase is the teacher's greedy one; the student's are not all
    assert stored_greedy_share(student, slice(0, 300)) == 1.0
    assert stored_greedy_share(student, slice(300, 500)) < 1.0
    # The phase ends as a timeout (bootstrapped), and the student starts a fresh episode
    assert student.replay_buffer.dones[299, 0] and student.replay_buffer.timeouts[299, 0]
    # The teacher's episodes are not the student's
    assert sum(info["l"] for info in student.ep_info_buffer) <= 200


def test_epsilon_replaces_about_that_share_of_the_teachers_actions(cartpole_teacher_path):
    student = offline_student(cartpole_teacher_path, offline_transitions=600, offline_gradient_steps=0, offline_epsilon=0.4)
    student.run_offline_phase()
    # A random action is the greedy one half the time (two actions): about 20% differ
    assert 0.7 < stored_greedy_share(student, slice(0, 600)) < 0.9


def test_the_student_trains_in_the_phase_and_only_once(tmp_path, cartpole_teacher_path):
    student = offline_student(cartpole_teacher_path, target_update_interval=8)
    before = parameters_of(student)
    student.run_offline_phase()
    assert student._n_updates == 20 and student.num_timesteps == 0
    after = parameters_of(student)
    assert not any(th.equal(old, new) for old, new in zip(before, after, strict=True))
    # The target network is updated at the end of the phase (tau = 1: a copy)
    for online, target in zip(student.q_net.parameters(), student.q_net_target.parameters(), strict=True):
        assert th.equal(online, target)
    # learn() does not repeat it, nor does a later learn()
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(100)
    student.learn(100, reset_num_timesteps=False)
    assert student.teacher_transitions == 300
    assert student.replay_buffer.pos == 300 + 200
    assert student.num_timesteps == 200
    assert "offline/teacher_transitions" not in pd.read_csv(tmp_path / "progress.csv").columns


def test_learning_starts_and_exploration_count_the_students_steps(cartpole_teacher_path):
    student = offline_student(cartpole_teacher_path, learning_starts=50)
    student.learn(40)
    # No online update before the student's 50th step: only the phase's
    assert student._n_updates == 20
    # The exploration schedule has run 40 of the 40 steps from its start, not 340
    assert student.exploration_rate == pytest.approx(student.exploration_schedule(1.0 - 40 / 40))
    assert student._n_calls == 40


def test_phase_is_logged(tmp_path, cartpole_teacher_path):
    student = offline_student(cartpole_teacher_path)
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(100)
    logged = pd.read_csv(tmp_path / "progress.csv").dropna(subset=["offline/teacher_transitions"])
    assert logged["offline/teacher_transitions"].tolist() == [300]
    assert logged["offline/gradient_steps"].tolist() == [20]


def test_several_envs_n_step_buffer_and_teacher_cache(cartpole_teacher_path):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    student = offline_student(cartpole_teacher_path, env=env, n_steps=3, offline_transitions=301)
    student.learn(100)
    buffer = student.replay_buffer
    assert type(buffer) is TeacherValuesNStepReplayBuffer
    # 301 rounded up to 151 steps of 2 envs
    assert student.teacher_transitions == 302
    # The student's steps, rounded up to whole rollouts of train_freq=4 steps of 2 envs, come after them
    assert student.num_timesteps == 104 and buffer.pos == 151 + 104 // 2
    for env_index in range(2):
        assert stored_greedy_share(student, slice(0, 151), env_index) == 1.0
        assert buffer.dones[150, env_index] and buffer.timeouts[150, env_index]
        # The cache holds the teacher's values of the teacher's transitions too
        values = student.teacher.q_values(th.as_tensor(buffer.observations[:151, env_index])).numpy()
        np.testing.assert_allclose(buffer.teacher_q_values[:151, env_index], values, rtol=1e-6)
    # n-step returns (discount gamma^k after k steps) of the phase's last transitions stop at its end: k <= 2, then 1
    samples = buffer._get_samples(np.array([149, 150]))
    assert samples.discounts[0].item() >= student.gamma**2 - 1e-6
    assert samples.discounts[1].item() == pytest.approx(student.gamma)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(offline_transitions=-1), r"offline_transitions=-1 must be an int >= 0"),
        (dict(offline_transitions=1.5), r"offline_transitions=1\.5"),
        (dict(offline_gradient_steps=-2), r"offline_gradient_steps=-2 must be an int >= 0"),
        (dict(offline_transitions=0, offline_gradient_steps=5), r"offline_gradient_steps=5 needs teacher transitions"),
        (dict(offline_epsilon=1.5), r"offline_epsilon=1\.5 must be a float in \[0, 1\]"),
    ],
)
def test_bad_settings_fail_at_construction(cartpole_teacher_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        offline_student(cartpole_teacher_path, **kwargs)


def test_offline_phase_needs_a_teacher():
    with pytest.raises(ValueError, match=r"offline_transitions=300 needs a teacher"):
        offline_student(None, alpha=0.0)
