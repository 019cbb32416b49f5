import json
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import TD3
from stable_baselines3.common.logger import configure

from sb3_distill.td3 import DistilledTD3
from tests.test_distilled_sac import ENV_ID, STUDENT_KWARGS, logged_rows, parameters_of, train_teachers


@pytest.fixture(scope="module")
def teacher_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_teachers(tmp_path_factory.mktemp("continuous_teachers"))


def make_student(teacher, alpha=0.5, seed=0, env=ENV_ID, **kwargs) -> DistilledTD3:
    return DistilledTD3("MlpPolicy", env, teacher=teacher, alpha=alpha, seed=seed, **{**STUDENT_KWARGS, **kwargs})


def student_action_gap(student: DistilledTD3, observations: th.Tensor) -> float:
    """Mean squared distance between the student's actions and the teacher's mean actions, in the scaled space."""
    with th.no_grad():
        return (student.actor(observations) - student.teacher.scaled_mean_actions(observations)).square().mean().item()


@pytest.mark.parametrize("teacher_name", ["SAC", "TQC", "TD3", "PPO"])
def test_learns_from_each_teacher_kind_and_logs_the_terms(tmp_path, teacher_paths, teacher_name):
    student = make_student(teacher_paths[teacher_name], alpha=0.3)
    assert student.distill_term == "mse"
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(200, log_interval=1)
    rows = logged_rows(tmp_path, "train/distill_loss")
    assert len(rows) > 0
    assert (rows["train/alpha"] == 0.3).all()
    # Both actions lie in [-1, 1]: their squared distance in [0, 4]
    assert ((rows["train/distill_loss"] >= 0) & (rows["train/distill_loss"] <= 4)).all()
    assert ((rows["train/teacher_action_gap"] >= 0) & (rows["train/teacher_action_gap"] <= 2)).all()
    assert rows["train/critic_loss"].notna().all()
    # train/loss is the mean of the actor's (1 - alpha) * TD3 loss + alpha * term over the delayed actor updates
    np.testing.assert_allclose(
        rows["train/loss"], 0.7 * rows["train/actor_loss"] + 0.3 * rows["train/distill_loss"], rtol=1e-5
    )


def test_without_teacher_and_alpha_0_it_is_plain_td3():
    student = make_student(None, alpha=0.0)
    student.learn(200)
    student_parameters = parameters_of(student.policy)
    # Constructed after the student has trained: SB3 seeds the global generators in the constructor
    plain = TD3("MlpPolicy", ENV_ID, seed=0, **{**STUDENT_KWARGS, "policy_kwargs": dict(net_arch=[8])})
    plain.learn(200)
    assert student._n_updates == plain._n_updates == 50
    for student_parameter, plain_parameter in zip(student_parameters, parameters_of(plain.policy), strict=True):
        assert th.equal(student_parameter, plain_parameter)


def test_the_mse_term_alone_brings_the_student_to_the_teachers_actions(teacher_paths):
    student = make_student(teacher_paths["SAC"], alpha=1.0, learning_starts=200, learning_rate=3e-3, policy_delay=1)
    student.learn(200)
    observations = th.as_tensor(student.replay_buffer.observations[:200, 0])
    gap_before = student_action_gap(student, observations)
    student.train(gradient_steps=200, batch_size=32)
    assert student_action_gap(student, observations) < gap_before / 10


def test_the_critic_term_is_logged_and_changes_the_critics_update(tmp_path, teacher_paths):
    critics = []
    for critic_term in (False, True):
        student = make_student(teacher_paths["TD3"], critic_term=critic_term)
        student.set_logger(configure(str(tmp_path / str(critic_term)), ["csv"]))
        student.learn(200, log_interval=1)
        critics.append(parameters_of(student.critic))
    rows = logged_rows(tmp_path / "True", "train/critic_distill_loss")
    assert len(rows) > 0 and (rows["train/critic_distill_loss"] > 0).all()
    assert any(not th.equal(without, with_term) for without, with_term in zip(*critics, strict=True))


def test_the_critic_term_needs_a_teacher_critic(teacher_paths):
    with pytest.raises(ValueError, match=r"critic_term=True needs a teacher with a Q critic.*ppo_teacher\.zip"):
        make_student(teacher_paths["PPO"], critic_term=True)


def test_offline_phase_stores_the_teachers_actions(teacher_paths):
    student = make_student(teacher_paths["TD3"], offline_transitions=100, offline_gradient_steps=50, offline_epsilon=0.0)
    student.run_offline_phase()
    assert student.replay_buffer.pos == 100 and student.teacher_transitions == 100 and student.offline_done
    assert student._n_updates == 50 and student.num_timesteps == 0
    stored_actions = th.as_tensor(student.replay_buffer.actions[:100, 0])
    observations = th.as_tensor(student.replay_buffer.observations[:100, 0])
    assert stored_actions.abs().max() <= 1.0
    th.testing.assert_close(stored_actions, student.teacher.scaled_mean_actions(observations), rtol=1e-5, atol=1e-6)


def test_saved_student_loads_with_plain_td3_and_resumes_with_a_teacher(tmp_path, teacher_paths):
    student = make_student(teacher_paths["TQC"], alpha=0.7, critic_term=True)
    student.learn(200)
    student.save(tmp_path / "student.zip")
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        data = json.loads(archive.read("data"))
    assert "teacher" not in data and "distill_term" not in data

    observations = np.stack([student.observation_space.sample() for _ in range(10)])
    deployed = TD3.load(tmp_path / "student.zip")
    np.testing.assert_array_equal(
        deployed.predict(observations, deterministic=True)[0], student.predict(observations, deterministic=True)[0]
    )

    resumed = DistilledTD3.load(tmp_path / "student.zip", env=gym.make(ENV_ID), teacher=teacher_paths["TQC"])
    assert (resumed.alpha, resumed.critic_term, resumed.distill_term) == (0.7, True, "mse")
    updates = resumed._n_updates
    resumed.learn(50, reset_num_timesteps=False)
    assert resumed._n_updates == updates + 50


@pytest.mark.parametrize("distill_loss", ["kl", "reverse_kl"])
def test_a_kl_is_refused_for_a_deterministic_student(teacher_paths, distill_loss):
    with pytest.raises(ValueError, match=rf"distill_loss='{distill_loss}'.*TD3 student's policy is deterministic.*\['mse'\]"):
        make_student(teacher_paths["SAC"], distill_loss=distill_loss)
