"""DistilledPPO: the teacher values of a rollout, the terms, plain PPO at alpha 0, learning, saving, teacher_acts, errors."""

import json
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch as th
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import CategoricalDistribution, DiagGaussianDistribution
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize
from torch.distributions import Categorical, Normal, kl_divergence

from sb3_distill.common.rollout_buffers import (
    TeacherValuesDictRolloutBuffer,
    TeacherValuesRolloutBuffer,
    use_teacher_values_rollout_buffer,
)
from sb3_distill.ppo import DistilledPPO
from sb3_distill.ppo.terms import (
    categorical_policy_term,
    gaussian_policy_term,
    student_scaled_mean_actions,
    teacher_rollout_actions,
)

CARTPOLE, PENDULUM = "CartPole-v1", "Pendulum-v1"
TINY_PPO_KWARGS = dict(n_steps=64, batch_size=32, n_epochs=2)
STUDENT_KWARGS = dict(policy_kwargs=dict(net_arch=[8]), **TINY_PPO_KWARGS)


def make_student(teacher, env=CARTPOLE, seed=0, **kwargs) -> DistilledPPO:
    return DistilledPPO("MlpPolicy", env, teacher=teacher, seed=seed, **{**STUDENT_KWARGS, **kwargs})


def parameters_of(model) -> list[th.Tensor]:
    return [parameter.detach().clone() for parameter in model.policy.parameters()]


def sharpen(teacher: PPO) -> None:
    """
    Make a tiny PPO teacher's policy confident and state-dependent, as a trained one is (256 steps leave it near its
    initial, almost uniform one): larger action-layer weights, a smaller standard deviation for Box actions.
    """
    with th.no_grad():
        teacher.policy.action_net.weight.mul_(100.0)
        if isinstance(teacher.action_space, gym.spaces.Box):
            teacher.policy.log_std.fill_(-1.0)


@pytest.fixture(scope="module")
def teachers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ppo_teachers")


@pytest.fixture(scope="module")
def cartpole_ppo_teacher_path(teachers_dir: Path) -> Path:
    """A PPO teacher on CartPole-v1 (Discrete: its logits), [16] net, 256 steps."""
    teacher = PPO("MlpPolicy", CARTPOLE, policy_kwargs=dict(net_arch=[16]), seed=1, **TINY_PPO_KWARGS)
    teacher.learn(256)
    sharpen(teacher)
    teacher.save(teachers_dir / "cartpole_ppo.zip")
    return teachers_dir / "cartpole_ppo.zip"


@pytest.fixture(scope="module")
def pendulum_ppo_teacher_path(teachers_dir: Path) -> Path:
    """A PPO teacher on Pendulum-v1 (Box: a Gaussian), [16] net, 256 steps."""
    teacher = PPO("MlpPolicy", PENDULUM, policy_kwargs=dict(net_arch=[16]), seed=1, **TINY_PPO_KWARGS)
    teacher.learn(256)
    sharpen(teacher)
    teacher.save(teachers_dir / "pendulum_ppo.zip")
    return teachers_dir / "pendulum_ppo.zip"


@pytest.fixture(scope="module")
def pendulum_sac_teacher_path(teachers_dir: Path) -> Path:
    """A SAC teacher on Pendulum-v1 (a squashed Gaussian), [16] net, 200 steps."""
    teacher = SAC(
        "MlpPolicy", PENDULUM, policy_kwargs=dict(net_arch=[16]), learning_starts=50, buffer_size=1_000, batch_size=32, seed=1
    )
    teacher.learn(200)
    teacher.save(teachers_dir / "pendulum_sac.zip")
    return teachers_dir / "pendulum_sac.zip"


def count_teacher_calls(student: DistilledPPO) -> list[int]:
    """Count the student's teacher's ``values`` calls (and the observations they saw), from now on."""
    assert student.teacher is not None
    calls: list[int] = []
    values = student.teacher.values

    def counting_values(observations):
        calls.append(len(next(iter(observations.values())) if isinstance(observations, dict) else observations))
        return values(observations)

    student.teacher.values = counting_values  # type: ignore[method-assign]
    return calls


# The rollout buffer


@pytest.mark.parametrize("n_epochs", [1, 4])
def test_the_teacher_is_evaluated_once_per_rollout(cartpole_teacher_path, n_epochs):
    student = make_student(cartpole_teacher_path, n_epochs=n_epochs, n_steps=32)
    calls = count_teacher_calls(student)
    student.learn(96)
    # Three rollouts of 32 observations, one batched pass each, whatever the number of epochs over them
    assert calls == [32, 32, 32]
    assert student._n_updates == 3 * n_epochs


def test_minibatches_carry_the_teacher_values_of_their_observations(pendulum_ppo_teacher_path):
    env = DummyVecEnv([lambda: gym.make(PENDULUM)] * 2)
    student = make_student(pendulum_ppo_teacher_path, env=env)
    student.learn(128)
    buffer = student.rollout_buffer
    assert isinstance(buffer, TeacherValuesRolloutBuffer) and buffer.teacher_values_ready
    batches = list(buffer.get(32))
    assert len(batches) == 4
    for batch in batches:
        assert batch.teacher_values.shape == (32, 2)
        # Shuffled with the observations: each row is the teacher's mean and log-std of its own observation
        th.testing.assert_close(batch.teacher_values, student.teacher.values(batch.observations))
        assert batch._fields == (*RolloutBufferSamples._fields, "teacher_values")


def test_the_rollout_buffer_class_is_sb3s_in_the_model_and_extended_in_the_buffer(cartpole_teacher_path):
    student = make_student(cartpole_teacher_path)
    assert student.rollout_buffer_class is RolloutBuffer
    assert type(student.rollout_buffer) is TeacherValuesRolloutBuffer
    assert use_teacher_values_rollout_buffer(None, SimpleMultiObsEnv().observation_space) == (
        TeacherValuesDictRolloutBuffer,
        DictRolloutBuffer,
    )
    with pytest.raises(
        ValueError, match=r"rollout_buffer_class=MyBuffer is not supported.*RolloutBuffer or DictRolloutBuffer"
    ):
        make_student(cartpole_teacher_path, rollout_buffer_class=type("MyBuffer", (RolloutBuffer,), {}))


def test_dict_observations(tmp_path):
    PPO("MultiInputPolicy", SimpleMultiObsEnv(), seed=0, **STUDENT_KWARGS).save(tmp_path / "dict_teacher.zip")
    student = DistilledPPO(
        "MultiInputPolicy", SimpleMultiObsEnv(), teacher=tmp_path / "dict_teacher.zip", seed=0, **STUDENT_KWARGS
    )
    calls = count_teacher_calls(student)
    student.learn(64)
    assert type(student.rollout_buffer) is TeacherValuesDictRolloutBuffer and calls == [64]
    batch = next(student.rollout_buffer.get(16))
    th.testing.assert_close(batch.teacher_values, student.teacher.values(batch.observations))


def test_behind_vec_normalize_the_teacher_sees_the_raw_observations(pendulum_ppo_teacher_path):
    env = VecNormalize(DummyVecEnv([lambda: gym.make(PENDULUM)]), norm_reward=False, clip_obs=100.0)
    # Frozen, far-off statistics: the normalized observations are an exact, very different function of the raw ones
    env.obs_rms.mean, env.obs_rms.var = np.array([1.0, -1.0, 2.0]), np.array([4.0, 0.25, 9.0])
    env.training = False
    student = make_student(pendulum_ppo_teacher_path, env=env)
    student.learn(64)
    buffer = student.rollout_buffer
    raw, normalized = buffer.teacher_observations, buffer.observations
    np.testing.assert_allclose(raw, env.unnormalize_obs(normalized), rtol=1e-5, atol=1e-5)
    assert np.abs(raw - normalized).max() > 0.5
    th.testing.assert_close(th.as_tensor(buffer.teacher_values), student.teacher.values(th.as_tensor(raw)))


def test_a_new_teacher_gets_new_values(cartpole_teacher_path, cartpole_ppo_teacher_path):
    student = make_student(cartpole_teacher_path)
    student.learn(64)
    assert student.rollout_buffer.teacher_values_ready
    student.set_teacher(cartpole_ppo_teacher_path)
    assert not student.rollout_buffer.teacher_values_ready
    calls = count_teacher_calls(student)
    # Another update on the same (already flattened) rollout evaluates the new teacher on it
    student.train()
    assert calls == [64]
    batch = next(student.rollout_buffer.get(64))
    th.testing.assert_close(batch.teacher_values, student.teacher.values(batch.observations))


# The terms, on known tensors


def test_categorical_terms_are_the_kl_divergences():
    generator = th.Generator().manual_seed(0)
    teacher_values, student_logits = th.randn(5, 3, generator=generator), th.randn(5, 3, generator=generator)
    temperature, ratio, clip_range = 0.5, th.tensor([0.5, 0.9, 1.0, 1.3, 2.0]), 0.2
    teacher = Categorical(logits=teacher_values / temperature)
    student = Categorical(logits=student_logits / temperature)
    forward = temperature**2 * kl_divergence(teacher, student)
    reverse = temperature**2 * kl_divergence(student, teacher)

    def term(name, ratio=ratio):
        return categorical_policy_term(name, teacher_values, student_logits, temperature, ratio, clip_range)

    th.testing.assert_close(term("kl"), forward.mean())
    th.testing.assert_close(term("reverse_kl"), reverse.mean())
    # PPD: each sample's forward KL weighted by max(r, 1 - eps) = (0.8, 0.9, 1.0, 1.3, 2.0)
    th.testing.assert_close(term("ppd"), (th.tensor([0.8, 0.9, 1.0, 1.3, 2.0]) * forward).mean())
    th.testing.assert_close(term("ppd", ratio=th.ones(5)), term("kl"))
    with pytest.raises(ValueError, match=r"term='mse' is not a KL term"):
        term("mse")


def test_the_worked_check_of_the_design_notes():
    # p_T = (0.8, 0.2), p_S = (0.7, 0.3): KL = 0.0257 nats
    teacher_values, student_logits = th.tensor([[0.8, 0.2]]).log(), th.tensor([[0.7, 0.3]]).log()
    kl = categorical_policy_term("kl", teacher_values, student_logits, 1.0, th.ones(1), 0.2)
    assert kl.item() == pytest.approx(0.0257, abs=1e-4)


def test_gaussian_terms_are_the_kl_divergences():
    generator = th.Generator().manual_seed(1)
    teacher_mean, student_mean = th.randn(4, 2, generator=generator), th.randn(4, 2, generator=generator)
    teacher_log_std, student_log_std = 0.3 * th.randn(4, 2, generator=generator), 0.3 * th.randn(4, 2, generator=generator)
    ratio, clip_range = th.tensor([0.5, 1.0, 1.1, 3.0]), 0.3
    teacher = Normal(teacher_mean, teacher_log_std.exp())
    student = Normal(student_mean, student_log_std.exp())
    # Summed over the action dimensions
    forward, reverse = kl_divergence(teacher, student).sum(-1), kl_divergence(student, teacher).sum(-1)

    def term(name, ratio=ratio):
        return gaussian_policy_term(name, teacher_mean, teacher_log_std, student_mean, student_log_std, ratio, clip_range)

    th.testing.assert_close(term("kl"), forward.mean())
    th.testing.assert_close(term("reverse_kl"), reverse.mean())
    th.testing.assert_close(term("ppd"), (th.tensor([0.7, 1.0, 1.1, 3.0]) * forward).mean())
    th.testing.assert_close(term("ppd", ratio=th.ones(4)), term("kl"))


def test_ppd_keeps_the_gradient_of_the_ratio():
    log_prob = th.tensor([0.1, -0.5], requires_grad=True)
    ratio = log_prob.exp()
    term = categorical_policy_term("ppd", th.tensor([[1.0, 0.0]] * 2), th.zeros(2, 2), 1.0, ratio, 0.2)
    term.backward()
    # The first sample's ratio (1.105) is above 1 - eps and carries a gradient; the second's (0.61) is clipped
    assert log_prob.grad is not None and log_prob.grad[0] > 0 and log_prob.grad[1] == 0


def test_student_scaled_mean_actions_clip_with_a_straight_through_gradient():
    action_space = gym.spaces.Box(low=np.array([-2.0, 0.0], np.float32), high=np.array([2.0, 1.0], np.float32))
    mean_actions = th.tensor([[1.0, 0.25], [-3.0, 5.0]], requires_grad=True)
    scaled = student_scaled_mean_actions(mean_actions, action_space)
    th.testing.assert_close(scaled, th.tensor([[0.5, -0.5], [-1.0, 1.0]]))
    scaled.sum().backward()
    # d scaled / d mean = 2 / (high - low), also beyond the bounds
    th.testing.assert_close(mean_actions.grad, th.tensor([[0.5, 2.0], [0.5, 2.0]]))


def student_distribution_of(student, mean_or_logits: th.Tensor, log_std: th.Tensor | None = None):
    if log_std is None:
        return CategoricalDistribution(mean_or_logits.shape[1]).proba_distribution(mean_or_logits)
    return DiagGaussianDistribution(mean_or_logits.shape[1]).proba_distribution(mean_or_logits, log_std)


@pytest.mark.parametrize("term", ["kl", "reverse_kl", "ppd", "mse"])
def test_the_students_term_with_a_gaussian_teacher(pendulum_ppo_teacher_path, term):
    student = make_student(pendulum_ppo_teacher_path, env=PENDULUM, distill_loss=term)
    assert student.distill_term == term
    # Teacher values: (mean, log_std) per sample, in env units (Pendulum's torque is in [-2, 2])
    teacher_values = th.tensor([[1.0, -0.5], [-3.0, 0.2], [0.5, 0.0]])
    student_mean, student_log_std = th.tensor([[0.0], [-1.0], [2.5]]), th.tensor([0.1])
    distribution = student_distribution_of(student, student_mean, student_log_std)
    ratio = th.tensor([0.5, 1.0, 1.5])
    value = student._distillation_term(distribution, teacher_values, ratio, clip_range=0.2)
    teacher = Normal(teacher_values[:, :1], teacher_values[:, 1:].exp())
    student_normal = Normal(student_mean, student_log_std.exp().expand_as(student_mean))
    forward = kl_divergence(teacher, student_normal).sum(-1)
    expected = {
        "kl": forward.mean(),
        "reverse_kl": kl_divergence(student_normal, teacher).sum(-1).mean(),
        "ppd": (th.tensor([0.8, 1.0, 1.5]) * forward).mean(),
        # Scaled to [-1, 1] after clipping to [-2, 2]: teacher (0.5, -1, 0.25), student (0, -0.5, 1)
        "mse": ((th.tensor([0.5, -1.0, 0.25]) - th.tensor([0.0, -0.5, 1.0])) ** 2).mean(),
    }[term]
    th.testing.assert_close(value, expected)


def test_the_students_term_with_a_squashed_teacher_is_the_mse_of_scaled_mean_actions(pendulum_sac_teacher_path):
    student = make_student(pendulum_sac_teacher_path, env=PENDULUM)
    assert student.distill_term == "mse"
    # A SAC teacher's values: its pre-tanh mean and log-std; its mean action is tanh(mean)
    teacher_values = th.tensor([[0.5, -1.0], [-2.0, 0.0]])
    distribution = student_distribution_of(student, th.tensor([[1.0], [-4.0]]), th.tensor([0.0]))
    value = student._distillation_term(distribution, teacher_values, th.ones(2), clip_range=0.2)
    expected = ((th.tanh(th.tensor([0.5, -2.0])) - th.tensor([0.5, -1.0])) ** 2).mean()
    th.testing.assert_close(value, expected)


@pytest.mark.parametrize("term", ["kl", "reverse_kl", "ppd"])
def test_the_students_term_with_a_discrete_teacher(cartpole_teacher_path, term):
    student = make_student(cartpole_teacher_path, distill_loss=term, temperature=0.5)
    teacher_values, student_logits = th.tensor([[1.0, 0.0], [0.3, 0.9]]), th.tensor([[0.2, 0.1], [-1.0, 1.0]])
    distribution = student_distribution_of(student, student_logits)
    ratio = th.tensor([0.5, 1.5])
    value = student._distillation_term(distribution, teacher_values, ratio, clip_range=0.2)
    th.testing.assert_close(value, categorical_policy_term(term, teacher_values, student_logits, 0.5, ratio, 0.2))


# Training


@pytest.mark.parametrize("env_id", [CARTPOLE, PENDULUM])
def test_alpha_zero_without_teacher_is_exactly_ppo(env_id):
    ppo = PPO("MlpPolicy", env_id, seed=0, **STUDENT_KWARGS)
    ppo.learn(128)
    student = DistilledPPO("MlpPolicy", env_id, teacher=None, alpha=0.0, seed=0, **STUDENT_KWARGS)
    student.learn(128)
    for ppo_parameter, student_parameter in zip(parameters_of(ppo), parameters_of(student), strict=True):
        assert th.equal(ppo_parameter, student_parameter)


def test_the_loss_mixes_ppos_and_the_term(cartpole_teacher_path):
    student = make_student(cartpole_teacher_path, alpha=0.3)
    distribution = student_distribution_of(student, th.tensor([[0.2, 0.1], [-1.0, 1.0]]))
    rollout_data = type("Batch", (), {"teacher_values": th.tensor([[1.0, 0.0], [0.3, 0.9]])})()
    loss, loss_value, distill_value = student._mixed_loss(th.tensor(2.0), distribution, rollout_data, th.ones(2), 0.2, 0.3)
    term = categorical_policy_term("kl", rollout_data.teacher_values, distribution.distribution.logits, 1.0, th.ones(2), 0.2)
    assert distill_value == pytest.approx(term.item())
    assert loss_value == pytest.approx(0.7 * 2.0 + 0.3 * term.item()) and loss.item() == pytest.approx(loss_value)


def test_learn_logs_the_terms(tmp_path, cartpole_teacher_path, pendulum_ppo_teacher_path):
    for name, teacher, env, key in (
        ("discrete", cartpole_teacher_path, CARTPOLE, "train/teacher_agreement"),
        ("continuous", pendulum_ppo_teacher_path, PENDULUM, "train/teacher_action_gap"),
    ):
        student = make_student(teacher, env=env, alpha=0.3)
        student.set_logger(configure(str(tmp_path / name), ["csv"]))
        student.learn(256)
        progress = pd.read_csv(tmp_path / name / "progress.csv")
        rows = progress.dropna(subset=["train/distill_loss"])
        assert len(rows) == 3  # logged before each update after the first
        assert (rows["train/alpha"] == 0.3).all() and (rows["train/distill_loss"] >= 0).all()
        for ppo_key in (
            "train/loss",
            "train/policy_gradient_loss",
            "train/value_loss",
            "train/entropy_loss",
            "train/approx_kl",
        ):
            assert rows[ppo_key].notna().all()
        assert rows[key].between(0, 2 if key.endswith("gap") else 1).all()


def test_a_non_finite_loss_stops_before_the_update(cartpole_teacher_path):
    student = make_student(cartpole_teacher_path)
    student._distillation_term = lambda *args: th.tensor(float("inf"))  # type: ignore[method-assign]
    before = parameters_of(student)
    with pytest.raises(ValueError, match=r"Non-finite policy loss .*distill_loss=inf, alpha=0\.5; the policy was not updated"):
        student.learn(64)
    assert all(th.equal(old, new) for old, new in zip(before, parameters_of(student), strict=True))


def fixed_observations(env_id: str, n: int = 256) -> th.Tensor:
    """Observations of episodes of random actions (those a fresh student meets)."""
    env = gym.make(env_id)
    env.action_space.seed(0)
    observations = [env.reset(seed=0)[0]]
    while len(observations) < n:
        observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(env.reset()[0] if terminated or truncated else observation)
    return th.as_tensor(np.stack(observations))


def distill_loss_on(student: DistilledPPO, observations: th.Tensor) -> float:
    with th.no_grad():
        distribution, _ = student._student_distribution(observations)
        teacher_values = student.teacher.values(observations)
        return student._distillation_term(distribution, teacher_values, th.ones(len(observations)), 0.2).item()


@pytest.mark.parametrize(
    "teacher_fixture, env_id, temperature, learning_rate",
    [
        # The tiny DQN teacher's Q-values are close together: sharpened at T = 0.1
        ("cartpole_teacher_path", CARTPOLE, 0.1, 3e-3),
        ("cartpole_ppo_teacher_path", CARTPOLE, 1.0, 3e-3),
        # The student's log-std moves from 0 to the teacher's -1 in a few hundred steps only at a larger rate
        ("pendulum_ppo_teacher_path", PENDULUM, 1.0, 1e-2),
    ],
)
def test_distillation_moves_the_student_towards_the_teacher(request, teacher_fixture, env_id, temperature, learning_rate):
    teacher = request.getfixturevalue(teacher_fixture)
    student = make_student(
        teacher, env=env_id, alpha=1.0, distill_loss="kl", temperature=temperature, learning_rate=learning_rate, n_epochs=10
    )
    observations = fixed_observations(env_id)
    before = distill_loss_on(student, observations)
    student.learn(256)
    after = distill_loss_on(student, observations)
    assert after < before / 5, (before, after)


def test_gsde_students_compare_their_state_dependent_gaussian(pendulum_ppo_teacher_path):
    student = make_student(pendulum_ppo_teacher_path, env=PENDULUM, use_sde=True, alpha=1.0, learning_rate=3e-2, n_epochs=10)
    observations = fixed_observations(PENDULUM)
    before = distill_loss_on(student, observations)
    student.learn(256)
    assert distill_loss_on(student, observations) < before / 5
    with pytest.raises(ValueError, match=r"squash_output=True .*pendulum_ppo\.zip"):
        make_student(
            pendulum_ppo_teacher_path, env=PENDULUM, use_sde=True, policy_kwargs=dict(net_arch=[8], squash_output=True)
        )


def test_performance_based_alpha(tmp_path, cartpole_teacher_path):
    student = make_student(cartpole_teacher_path, alpha="performance", alpha_0=0.8, teacher_return=500.0, random_return=20.0)
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(256)
    progress = pd.read_csv(tmp_path / "progress.csv").dropna(subset=["train/alpha"])
    # Short episodes of a fresh student: a low score, a weight near alpha_0
    assert len(progress) == 3 and progress["train/alpha"].between(0.7, 0.8).all()
    assert progress["train/student_score"].lt(0.2).all()


# Saving and loading


def test_the_saved_student_loads_with_plain_ppo_and_resumes_with_its_teacher(tmp_path, cartpole_teacher_path):
    student = make_student(cartpole_teacher_path, alpha=0.7, temperature=0.5, distill_loss="ppd")
    student.learn(128)
    student.save(tmp_path / "student.zip")
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        data = json.loads(archive.read("data"))
    assert "teacher" not in data and "distill_term" not in data and "_log_batch" not in data
    observations = fixed_observations(CARTPOLE, 10).numpy()

    deployed = PPO.load(tmp_path / "student.zip")
    assert deployed.rollout_buffer_class is RolloutBuffer and type(deployed.rollout_buffer) is RolloutBuffer
    assert np.array_equal(
        deployed.predict(observations, deterministic=True)[0], student.predict(observations, deterministic=True)[0]
    )

    resumed = DistilledPPO.load(tmp_path / "student.zip", env=gym.make(CARTPOLE), teacher=cartpole_teacher_path)
    assert (resumed.alpha, resumed.temperature, resumed.distill_term) == (0.7, 0.5, "ppd")
    assert type(resumed.rollout_buffer) is TeacherValuesRolloutBuffer
    resumed.learn(64, reset_num_timesteps=False)
    assert resumed.num_timesteps == 192

    loaded = DistilledPPO.load(tmp_path / "student.zip", env=gym.make(CARTPOLE))
    with pytest.raises(ValueError, match=r"alpha=0\.7 but no teacher.*DistilledPPO\.load\(path, env=env, teacher="):
        loaded.learn(64)


# The teacher acts


class RolloutRecorder(BaseCallback):
    """Copies the rollout buffer, and the student's log-probabilities of its actions, before each update."""

    def __init__(self):
        super().__init__()
        self.rollouts: list[dict[str, np.ndarray]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        observations = th.as_tensor(buffer.observations.reshape(-1, *buffer.obs_shape))
        actions = th.as_tensor(buffer.actions.reshape(-1))
        with th.no_grad():
            _, log_probs, _ = self.model.policy.evaluate_actions(observations, actions)
        raw = buffer.teacher_observations
        self.rollouts.append(
            dict(
                observations=observations,
                teacher_observations=th.as_tensor(raw.reshape(observations.shape)) if raw is not None else observations,
                actions=actions,
                log_probs=buffer.log_probs.reshape(-1),
                student=log_probs.numpy(),
            )
        )


def test_teacher_acts_greedily_with_a_dqn_teacher(cartpole_teacher_path):
    student = make_student(cartpole_teacher_path, teacher_acts=True)
    recorder = RolloutRecorder()
    student.learn(128, callback=recorder)
    assert len(recorder.rollouts) == 2
    for rollout in recorder.rollouts:
        greedy = student.teacher.values(rollout["observations"]).argmax(dim=1)
        assert th.equal(rollout["actions"].long(), greedy)
        # The student's own log-probabilities of the teacher's actions, as it was when it collected them
        np.testing.assert_allclose(rollout["log_probs"], rollout["student"], rtol=1e-5, atol=1e-6)


def test_teacher_acts_on_the_raw_observations_behind_vec_normalize(tmp_path):
    # A hand-made linear DQN teacher that pushes the cart the way the pole falls: Q = (-pole velocity, +pole velocity)
    teacher = DQN("MlpPolicy", CARTPOLE, policy_kwargs=dict(net_arch=[]), seed=0)
    with th.no_grad():
        teacher.q_net.q_net[0].weight.copy_(th.tensor([[0.0, 0.0, 0.0, -1.0], [0.0, 0.0, 0.0, 1.0]]))
        teacher.q_net.q_net[0].bias.zero_()
    teacher.save(tmp_path / "pole_teacher.zip")
    env = VecNormalize(DummyVecEnv([lambda: gym.make(CARTPOLE)]), norm_reward=False)
    # Frozen, far-off statistics: the normalized pole velocity often has the other sign
    env.obs_rms.mean, env.obs_rms.var = np.array([0.0, 0.0, 0.0, 0.5]), np.array([1.0, 1.0, 1.0, 1.0])
    env.training = False
    student = make_student(tmp_path / "pole_teacher.zip", env=env, teacher_acts=True)
    recorder = RolloutRecorder()
    student.learn(64, callback=recorder)
    (rollout,) = recorder.rollouts
    raw_greedy = student.teacher.values(rollout["teacher_observations"]).argmax(dim=1)
    assert th.equal(rollout["actions"].long(), raw_greedy)
    assert not th.equal(raw_greedy, student.teacher.values(rollout["observations"]).argmax(dim=1))


def test_teacher_rollout_actions_of_each_kind(pendulum_ppo_teacher_path, pendulum_sac_teacher_path):
    box = gym.spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32)
    student = make_student(pendulum_sac_teacher_path, env=PENDULUM)
    th.manual_seed(0)
    # A squashed Gaussian with a tiny std: tanh of its mean, in env units
    actions = teacher_rollout_actions(student.teacher, th.tensor([[0.5, -20.0], [-3.0, -20.0]]), box)
    th.testing.assert_close(actions, 2.0 * th.tanh(th.tensor([[0.5], [-3.0]])))
    student = make_student(pendulum_ppo_teacher_path, env=PENDULUM)
    # A Gaussian over env actions, unclipped
    actions = teacher_rollout_actions(student.teacher, th.tensor([[3.0, -20.0]]), box)
    th.testing.assert_close(actions, th.tensor([[3.0]]))
    student.teacher_acts = True
    student.learn(64)
    assert np.isfinite(student.rollout_buffer.log_probs).all()


# Bad input


def test_a_term_the_pair_has_not_is_refused(cartpole_teacher_path, pendulum_sac_teacher_path):
    with pytest.raises(ValueError, match=r"distill_loss='mse' does not apply to a DQN teacher .*cartpole_teacher\.zip"):
        make_student(cartpole_teacher_path, distill_loss="mse")
    with pytest.raises(
        ValueError,
        match=r"distill_loss='kl' does not apply to a SAC teacher .*pendulum_sac\.zip.* PPO student: a squashed and an "
        r"unsquashed Gaussian have no common support.*\['mse'\]",
    ):
        make_student(pendulum_sac_teacher_path, env=PENDULUM, distill_loss="kl")
    with pytest.raises(ValueError, match=r"distill_loss='nll' is not a distillation term of a PPO student"):
        make_student(cartpole_teacher_path, distill_loss="nll")


def test_a_discrete_teacher_for_a_box_student_is_refused_naming_the_file_and_both_spaces(cartpole_teacher_path):
    with pytest.raises(ValueError, match=r"cartpole_teacher\.zip.* action space Discrete\(2\) .* action space Box\("):
        make_student(cartpole_teacher_path, env=PENDULUM)


def test_teacher_acts_needs_a_teacher():
    with pytest.raises(ValueError, match=r"teacher_acts=True needs a teacher"):
        make_student(None, alpha=0.0, teacher_acts=True)
    with pytest.raises(ValueError, match=r"teacher_acts='yes' must be True or False"):
        make_student(None, alpha=0.0, teacher_acts="yes")


def test_alpha_without_teacher_is_refused():
    with pytest.raises(ValueError, match=r"alpha=0\.5 needs a teacher.*or alpha=0\.0 for plain PPO"):
        make_student(None)


def test_vec_normalize_under_a_wrapper_that_changes_the_observations_is_refused(pendulum_ppo_teacher_path, tmp_path):
    PPO("MlpPolicy", VecFrameStack(DummyVecEnv([lambda: gym.make(PENDULUM)]), 2), **STUDENT_KWARGS).save(
        tmp_path / "stacked.zip"
    )
    env = VecFrameStack(VecNormalize(DummyVecEnv([lambda: gym.make(PENDULUM)])), 2)
    student = make_student(tmp_path / "stacked.zip", env=env)
    with pytest.raises(ValueError, match=r"raw observations for the teacher have shape \(1, 3\) .*\(1, 6\).*VecFrameStack"):
        student.learn(64)
