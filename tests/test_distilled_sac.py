import json
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch as th
from sb3_contrib import TQC
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch.distributions import Normal, kl_divergence

from sb3_distill.common.actor_terms import (
    critic_distillation_loss,
    mean_action_mse_term,
    squashed_gaussian_kl_term,
    teacher_action_gap,
)
from sb3_distill.sac import DistilledSAC

ENV_ID = "Pendulum-v1"
OFF_POLICY_TEACHER_KWARGS = dict(learning_starts=50, buffer_size=1_000, batch_size=32, policy_kwargs=dict(net_arch=[16]))
#: Tiny teachers of each continuous kind, trained by the tests themselves: (class, constructor kwargs, steps)
TEACHERS = {
    "SAC": (SAC, OFF_POLICY_TEACHER_KWARGS, 150),
    "TQC": (TQC, {**OFF_POLICY_TEACHER_KWARGS, "policy_kwargs": dict(net_arch=[16], n_quantiles=5)}, 150),
    "TD3": (TD3, OFF_POLICY_TEACHER_KWARGS, 150),
    "PPO": (PPO, dict(n_steps=64, batch_size=32, n_epochs=2, policy_kwargs=dict(net_arch=[16])), 128),
}
# 50 updates before the logs of the first episode (200 steps) are written
STUDENT_KWARGS = dict(policy_kwargs=dict(net_arch=[8]), learning_starts=150, buffer_size=1_000, batch_size=32)


def train_teachers(directory: Path) -> dict[str, Path]:
    """Train each teacher of :data:`TEACHERS` on Pendulum and save it in ``directory``: its zip's path by name."""
    paths = {}
    for name, (algorithm, kwargs, steps) in TEACHERS.items():
        # SB3 adds its own keys to policy_kwargs: each teacher gets a copy
        teacher = algorithm("MlpPolicy", ENV_ID, seed=0, **{**kwargs, "policy_kwargs": dict(kwargs["policy_kwargs"])})
        teacher.learn(steps)
        paths[name] = directory / f"{name.lower()}_teacher.zip"
        teacher.save(paths[name])
    return paths


def parameters_of(module: th.nn.Module) -> list[th.Tensor]:
    return [parameter.detach().clone() for parameter in module.parameters()]


def logged_rows(tmp_path: Path, key: str) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "progress.csv").dropna(subset=[key])


@pytest.fixture(scope="module")
def teacher_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_teachers(tmp_path_factory.mktemp("continuous_teachers"))


def make_student(teacher, alpha=0.5, seed=0, env=ENV_ID, **kwargs) -> DistilledSAC:
    return DistilledSAC("MlpPolicy", env, teacher=teacher, alpha=alpha, seed=seed, **{**STUDENT_KWARGS, **kwargs})


def student_kl_to_teacher(student: DistilledSAC, observations: th.Tensor) -> float:
    """Mean KL(teacher || student) between the pre-tanh Gaussians on ``observations``."""
    with th.no_grad():
        mean, log_std, _ = student.actor.get_action_dist_params(observations)
        teacher = student.teacher.action_distribution(observations)
        return squashed_gaussian_kl_term(mean, log_std, teacher.mean, teacher.log_std).item()


# The pure terms


def test_kl_term_is_the_closed_form_of_torch_distributions():
    generator = th.Generator().manual_seed(0)
    student_mean, teacher_mean = th.randn(5, 3, generator=generator), th.randn(5, 3, generator=generator)
    student_log_std, teacher_log_std = th.randn(5, 3, generator=generator) / 2, th.randn(5, 3, generator=generator) / 2
    student, teacher = Normal(student_mean, student_log_std.exp()), Normal(teacher_mean, teacher_log_std.exp())
    forward = kl_divergence(teacher, student).sum(dim=-1).mean()
    reverse = kl_divergence(student, teacher).sum(dim=-1).mean()
    assert squashed_gaussian_kl_term(student_mean, student_log_std, teacher_mean, teacher_log_std).item() == pytest.approx(
        forward.item(), rel=1e-5
    )
    reverse_term = squashed_gaussian_kl_term(student_mean, student_log_std, teacher_mean, teacher_log_std, reverse=True)
    assert reverse_term.item() == pytest.approx(reverse.item(), rel=1e-5)
    assert forward.item() != pytest.approx(reverse.item(), rel=1e-2)
    # A worked value: N(0, 1) against N(1, e^0.5) in one dimension: log(e^0.5) + (1 + 1) / (2 e) - 1/2
    one = th.zeros(1, 1)
    assert squashed_gaussian_kl_term(one + 1, one + 0.5, one, one).item() == pytest.approx(0.5 + 1 / np.e - 0.5, rel=1e-6)


def test_kl_term_moves_only_the_student():
    student_mean = th.zeros(4, 2, requires_grad=True)
    teacher_mean = th.ones(4, 2, requires_grad=True)
    squashed_gaussian_kl_term(student_mean, th.zeros(4, 2), teacher_mean, th.zeros(4, 2)).backward()
    assert student_mean.grad is not None and teacher_mean.grad is None
    # d/dmu_S of mean_batch sum_d (mu_S - mu_T)^2 / 2 = (mu_S - mu_T) / batch
    assert th.allclose(student_mean.grad, th.full((4, 2), -0.25))


def test_mse_critic_and_gap_terms_on_known_values():
    student_actions = th.tensor([[0.5, -0.5], [1.0, 0.0]])
    teacher_actions = th.tensor([[0.0, 0.5], [1.0, -1.0]])
    # ((0.25 + 1) / 2 + (0 + 1) / 2) / 2
    assert mean_action_mse_term(student_actions, teacher_actions).item() == pytest.approx(0.5625)
    # (0.5 + 1 + 0 + 1) / 4
    assert teacher_action_gap(student_actions, teacher_actions).item() == pytest.approx(0.625)
    teacher_q_values = th.tensor([[1.0], [2.0]])
    # Critic 1 is off by (1, 1): MSE 1; critic 2 by (0, 2): MSE 2; the mean over critics is 1.5
    student_q_values = (th.tensor([[2.0], [3.0]]), th.tensor([[1.0], [4.0]]))
    assert critic_distillation_loss(student_q_values, teacher_q_values).item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match=r"shape \(2,\).*\(2, 1\)"):
        critic_distillation_loss((th.ones(2),), teacher_q_values)


# The student


@pytest.mark.parametrize(
    ("teacher_name", "distill_loss", "expected_term"),
    [
        ("SAC", None, "kl"),
        ("SAC", "reverse_kl", "reverse_kl"),
        ("SAC", "mse", "mse"),
        ("TQC", None, "kl"),
        ("TD3", None, "mse"),
        ("PPO", None, "mse"),
    ],
)
def test_learns_from_each_teacher_kind_and_logs_the_terms(tmp_path, teacher_paths, teacher_name, distill_loss, expected_term):
    student = make_student(teacher_paths[teacher_name], alpha=0.3, distill_loss=distill_loss)
    assert student.distill_term == expected_term
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(200, log_interval=1)
    rows = logged_rows(tmp_path, "train/distill_loss")
    assert len(rows) > 0
    assert (rows["train/alpha"] == 0.3).all()
    assert (rows["train/distill_loss"] >= 0).all()
    assert ((rows["train/teacher_action_gap"] >= 0) & (rows["train/teacher_action_gap"] <= 2)).all()
    # SAC's own logs are kept, its entropy coefficient apart from the distillation weight
    assert rows["train/ent_coef"].notna().all() and (rows["train/ent_coef"] != 0.3).all()
    assert "train/critic_distill_loss" not in rows
    # train/loss is the mean of the actor's (1 - alpha) * SAC loss + alpha * term, which is linear in the means
    np.testing.assert_allclose(
        rows["train/loss"], 0.7 * rows["train/actor_loss"] + 0.3 * rows["train/distill_loss"], rtol=1e-5
    )


def test_without_teacher_and_alpha_0_it_is_plain_sac():
    student = make_student(None, alpha=0.0)
    student.learn(200)
    student_parameters = parameters_of(student.policy)
    # Constructed after the student has trained: SB3 seeds the global generators in the constructor
    plain = SAC("MlpPolicy", ENV_ID, seed=0, **{**STUDENT_KWARGS, "policy_kwargs": dict(net_arch=[8])})
    plain.learn(200)
    assert student._n_updates == plain._n_updates == 50
    for student_parameter, plain_parameter in zip(student_parameters, parameters_of(plain.policy), strict=True):
        assert th.equal(student_parameter, plain_parameter)
    assert th.equal(student.log_ent_coef, plain.log_ent_coef)


def test_the_kl_term_alone_brings_the_student_to_the_teachers_distribution(teacher_paths):
    student = make_student(teacher_paths["SAC"], alpha=1.0, learning_starts=200, learning_rate=3e-3)
    # Fill the replay buffer without training (updates start after learning_starts steps)
    student.learn(200)
    assert student._n_updates == 0
    observations = th.as_tensor(student.replay_buffer.observations[:200, 0])
    kl_before = student_kl_to_teacher(student, observations)
    student.train(gradient_steps=200, batch_size=32)
    kl_after = student_kl_to_teacher(student, observations)
    assert kl_after < kl_before / 10, (kl_before, kl_after)


def test_the_critic_term_is_logged_and_changes_the_critics_update(tmp_path, teacher_paths):
    critics = []
    for critic_term in (False, True):
        student = make_student(teacher_paths["SAC"], critic_term=critic_term)
        student.set_logger(configure(str(tmp_path / str(critic_term)), ["csv"]))
        student.learn(200, log_interval=1)
        critics.append(parameters_of(student.critic))
    rows = logged_rows(tmp_path / "True", "train/critic_distill_loss")
    assert len(rows) > 0 and (rows["train/critic_distill_loss"] > 0).all()
    assert "train/critic_distill_loss" not in pd.read_csv(tmp_path / "False" / "progress.csv")
    assert any(not th.equal(without, with_term) for without, with_term in zip(*critics, strict=True))


def test_the_critic_term_with_alpha_1_fits_the_teachers_critic(teacher_paths):
    student = make_student(teacher_paths["TQC"], alpha=1.0, critic_term=True, learning_starts=200, learning_rate=3e-3)
    student.learn(200)
    replay_data = student.replay_buffer.sample(200)

    def critic_gap() -> float:
        with th.no_grad():
            teacher_q_values = student.teacher.critic_values(replay_data.observations, replay_data.actions)
            return critic_distillation_loss(
                student.critic(replay_data.observations, replay_data.actions), teacher_q_values
            ).item()

    gap_before = critic_gap()
    student.train(gradient_steps=200, batch_size=32)
    assert critic_gap() < gap_before / 10


def test_the_critic_term_needs_a_teacher_critic(teacher_paths):
    with pytest.raises(ValueError, match=r"critic_term=True needs a teacher with a Q critic.*ppo_teacher\.zip.*PPO"):
        make_student(teacher_paths["PPO"], critic_term=True)


def test_the_critic_term_is_refused_with_vec_normalize(teacher_paths):
    env = VecNormalize(DummyVecEnv([lambda: gym.make(ENV_ID)]))
    with pytest.raises(ValueError, match=r"critic_term=True is not supported with a VecNormalize env"):
        make_student(teacher_paths["SAC"], env=env, critic_term=True)
    # The actor term alone sees the raw observations through the cache
    make_student(teacher_paths["SAC"], env=env).learn(160)


def test_offline_phase_stores_the_teachers_actions(teacher_paths):
    student = make_student(teacher_paths["SAC"], offline_transitions=100, offline_gradient_steps=50, offline_epsilon=0.0)
    student.run_offline_phase()
    assert student.replay_buffer.pos == 100 and student.teacher_transitions == 100 and student.offline_done
    assert student._n_updates == 50 and student.num_timesteps == 0
    stored_actions = th.as_tensor(student.replay_buffer.actions[:100, 0])
    observations = th.as_tensor(student.replay_buffer.observations[:100, 0])
    assert stored_actions.abs().max() <= 1.0
    th.testing.assert_close(stored_actions, student.teacher.scaled_mean_actions(observations), rtol=1e-5, atol=1e-6)


def test_saved_student_loads_with_plain_sac_and_resumes_with_a_teacher(tmp_path, teacher_paths):
    student = make_student(teacher_paths["SAC"], alpha=0.7, critic_term=True, distill_loss="reverse_kl")
    student.learn(200)
    student.save(tmp_path / "student.zip")
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        data = json.loads(archive.read("data"))
    assert "teacher" not in data and "distill_term" not in data and "_action_gap_batch" not in data

    observations = np.stack([student.observation_space.sample() for _ in range(10)])
    deployed = SAC.load(tmp_path / "student.zip")
    np.testing.assert_array_equal(
        deployed.predict(observations, deterministic=True)[0], student.predict(observations, deterministic=True)[0]
    )

    resumed = DistilledSAC.load(tmp_path / "student.zip", env=gym.make(ENV_ID), teacher=teacher_paths["SAC"])
    assert (resumed.alpha, resumed.critic_term, resumed.distill_term) == (0.7, True, "reverse_kl")
    updates = resumed._n_updates
    resumed.learn(50, reset_num_timesteps=False)
    assert resumed._n_updates == updates + 50

    loaded = DistilledSAC.load(tmp_path / "student.zip", env=gym.make(ENV_ID))
    assert loaded.teacher is None
    with pytest.raises(ValueError, match=r"alpha=0\.7 but no teacher"):
        loaded.learn(10)


def test_a_student_with_gsde_takes_the_kl_with_each_samples_spread(teacher_paths):
    student = make_student(teacher_paths["SAC"], use_sde=True)
    student.learn(200)
    replay_data = student.replay_buffer.sample(32)
    with th.no_grad():
        mean, log_std, kwargs = student.actor.get_action_dist_params(replay_data.observations)
        # gSDE's spread of each sample: sqrt((latent^2) @ std^2 + epsilon), as its distribution builds it
        std = student.actor.action_dist.proba_distribution(mean, log_std, **kwargs).distribution.stddev
        teacher = student.teacher.action_distribution(replay_data.observations)
        expected = kl_divergence(Normal(teacher.mean, teacher.log_std.exp()), Normal(mean, std)).sum(dim=-1).mean()
        term = student._actor_distillation_term(replay_data, mean, log_std, kwargs)
    assert term.item() == pytest.approx(expected.item(), rel=1e-4)


def test_a_non_finite_loss_stops_before_the_update(teacher_paths):
    env = gym.wrappers.TransformReward(gym.make(ENV_ID), lambda reward: float("nan"))
    student = make_student(teacher_paths["SAC"], env=env)
    critic_parameters = parameters_of(student.critic)
    with pytest.raises(ValueError, match=r"Non-finite critic loss at update 1 .*the critic was not updated"):
        student.learn(200)
    assert all(th.equal(before, after) for before, after in zip(critic_parameters, parameters_of(student.critic), strict=True))


# Refused teachers


def test_a_kl_from_a_deterministic_teacher_is_refused(teacher_paths):
    with pytest.raises(ValueError, match=r"distill_loss='kl'.*TD3 teacher.*td3_teacher\.zip.*SAC student.*\['mse'\]"):
        make_student(teacher_paths["TD3"], distill_loss="kl")


def test_a_discrete_teacher_is_refused(cartpole_teacher_path):
    with pytest.raises(ValueError, match=r"cartpole_teacher\.zip(.|\n)*Discrete\(2\)(.|\n)*Box\(-2\.0, 2\.0"):
        make_student(cartpole_teacher_path)


def test_a_teacher_with_other_action_bounds_is_refused(teacher_paths):
    # Pendulum's torque in [-1, 1] rather than [-2, 2]: the same shape, but the teacher's actions would mean other torques
    env = gym.wrappers.RescaleAction(gym.make(ENV_ID), np.float32(-1.0), np.float32(1.0))
    with pytest.raises(ValueError, match=r"sac_teacher\.zip.*Box\(-2\.0, 2\.0.*Box\(-1\.0, 1\.0.*other bounds"):
        make_student(teacher_paths["SAC"], env=env)


def test_an_unknown_term_is_refused_before_any_teacher_is_loaded(tmp_path):
    with pytest.raises(ValueError, match=r"distill_loss='nll' is not a distillation term of a SAC student"):
        make_student(tmp_path / "not_read.zip", distill_loss="nll")
    with pytest.raises(ValueError, match=r"critic_term='yes' must be True or False"):
        make_student(tmp_path / "not_read.zip", critic_term="yes")
