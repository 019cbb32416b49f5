import copy
import json
import math
import zipfile

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch as th
from gymnasium.wrappers import TransformReward
from sb3_contrib import QRDQN
from sb3_contrib.common.utils import quantile_huber_loss
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from torch.nn import functional as F

from sb3_distill.qrdqn import DistilledQRDQN, quantile_distillation_loss, quantile_matching_loss, teacher_quantiles
from tests.conftest import TINY_DQN_KWARGS


def student_kwargs(**kwargs) -> dict:
    """The tiny students' settings; a new policy_kwargs each time (QR-DQN adds its optimizer settings to the dict)."""
    return {"policy_kwargs": dict(net_arch=[8], n_quantiles=5), **TINY_DQN_KWARGS, **kwargs}


@pytest.fixture(scope="module")
def qrdqn_teacher_path(tmp_path_factory: pytest.TempPathFactory):
    """A QR-DQN teacher on CartPole-v1 with a [16] net and 7 quantiles (not the student's 5), trained for 300 steps."""
    teacher = QRDQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[16], n_quantiles=7), seed=0, **TINY_DQN_KWARGS)
    teacher.learn(300)
    path = tmp_path_factory.mktemp("qrdqn_teachers") / "qrdqn_teacher.zip"
    teacher.save(path)
    return path


@pytest.fixture(params=["dqn", "qrdqn"])
def teacher_path(request, cartpole_teacher_path, qrdqn_teacher_path):
    return {"dqn": cartpole_teacher_path, "qrdqn": qrdqn_teacher_path}[request.param]


def make_student(teacher, alpha=0.5, env="CartPole-v1", seed=0, **kwargs) -> DistilledQRDQN:
    return DistilledQRDQN("MlpPolicy", env, teacher=teacher, alpha=alpha, seed=seed, **student_kwargs(**kwargs))


def parameters_of(model) -> list[th.Tensor]:
    return [parameter.detach().clone() for parameter in model.policy.parameters()]


def test_learns_from_a_dqn_and_a_qrdqn_teacher(tmp_path, teacher_path):
    student = make_student(teacher_path, alpha=0.3, temperature=0.5)
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(300, log_interval=1)
    assert student._n_updates > 0
    progress = pd.read_csv(tmp_path / "progress.csv")
    rows = progress.dropna(subset=["train/distill_loss"])
    assert len(rows) > 0
    for key in ("train/loss", "train/qr_loss", "train/distill_loss", "train/alpha", "train/teacher_agreement"):
        assert np.isfinite(rows[key]).all(), key
    assert (rows["train/n_updates"] > 0).all()
    assert (rows["train/alpha"] == 0.3).all()
    assert ((rows["train/teacher_agreement"] >= 0) & (rows["train/teacher_agreement"] <= 1)).all()
    assert (rows["train/distill_loss"] >= 0).all()
    # train/loss is the mean of (1 - alpha) * qr + alpha * distill, which is linear in the means
    np.testing.assert_allclose(rows["train/loss"], 0.7 * rows["train/qr_loss"] + 0.3 * rows["train/distill_loss"], rtol=1e-5)


# Known tensors, one sample and two actions. The student's 2 quantiles (rows) of each action (columns): means (1, 2).
STUDENT_QUANTILES = th.tensor([[[0.0, 1.0], [2.0, 3.0]]])
# The teacher's values (2, 1), and its single quantile of each action (their means)
TEACHER_VALUES = th.tensor([[2.0, 1.0]])
TEACHER_QUANTILES = th.tensor([[[2.0, 1.0]]])
# KL(softmax(2, 1) || softmax(1, 2)) = (p - (1 - p)) * ln(p / (1 - p)) with p = e / (1 + e) and ln(p / (1 - p)) = 1
KL_BY_HAND = (math.e - 1) / (math.e + 1)
# Quantile Huber towards the teacher's quantile, taus (0.25, 0.75). Action 0: u = 2 - (0, 2) = (2, 0), Huber (1.5, 0),
# weights |tau - 1{u < 0}| = (0.25, 0.75): 0.375. Action 1: u = 1 - (1, 3) = (0, -2), Huber (0, 1.5), weights (0.75, 0.25):
# 0.375. Mean over the two actions: 0.375
QUANTILE_TERM_BY_HAND = 0.375


def test_the_distillation_term_by_hand():
    assert KL_BY_HAND == pytest.approx(0.46212, abs=1e-5)
    assert quantile_distillation_loss(STUDENT_QUANTILES, TEACHER_VALUES).item() == pytest.approx(KL_BY_HAND)
    assert quantile_matching_loss(STUDENT_QUANTILES, TEACHER_QUANTILES).item() == pytest.approx(QUANTILE_TERM_BY_HAND)
    with_quantiles = quantile_distillation_loss(STUDENT_QUANTILES, TEACHER_VALUES, teacher_quantiles=TEACHER_QUANTILES)
    assert with_quantiles.item() == pytest.approx(KL_BY_HAND + QUANTILE_TERM_BY_HAND)
    # The other terms on the mean quantiles (1, 2): MSE ((1 - 2)^2 + (2 - 1)^2) / 2; NLL of the teacher's action 0
    assert quantile_distillation_loss(STUDENT_QUANTILES, TEACHER_VALUES, "mse").item() == pytest.approx(1.0)
    nll = quantile_distillation_loss(STUDENT_QUANTILES, TEACHER_VALUES, "nll").item()
    assert nll == pytest.approx(math.log(1 + math.e))
    # Temperature 0.5: T^2 KL(softmax(4, 2) || softmax(2, 4)) = 0.25 * (p - (1 - p)) * 2 with ln(p / (1 - p)) = 2
    kl_at_half = quantile_distillation_loss(STUDENT_QUANTILES, TEACHER_VALUES, temperature=0.5).item()
    assert kl_at_half == pytest.approx(0.25 * 2 * (math.e**2 - 1) / (math.e**2 + 1))


def test_the_loss_of_one_batch_by_hand():
    # The QR loss of the taken action 0: quantiles (0, 2) towards the targets (1, 1): u = (1, -1), Huber (0.5, 0.5),
    # weights (0.25, 0.25): 0.25
    current_quantiles, target_quantiles = STUDENT_QUANTILES[:, :, 0], th.tensor([[1.0, 1.0]])
    qr_loss = quantile_huber_loss(current_quantiles, target_quantiles, sum_over_quantiles=True)
    assert qr_loss.item() == pytest.approx(0.25)
    alpha = 0.4
    student_quantiles = STUDENT_QUANTILES.clone().requires_grad_(True)
    distill = quantile_distillation_loss(student_quantiles, TEACHER_VALUES, teacher_quantiles=TEACHER_QUANTILES)
    loss = (1 - alpha) * qr_loss + alpha * distill
    assert loss.item() == pytest.approx(0.6 * 0.25 + 0.4 * (KL_BY_HAND + QUANTILE_TERM_BY_HAND))
    # Gradients flow to the student's quantiles only, through both terms
    distill.backward()
    assert student_quantiles.grad is not None and th.isfinite(student_quantiles.grad).all()
    assert (student_quantiles.grad != 0).any()


def test_quantile_matching_accepts_other_quantile_counts_and_checks_shapes():
    student = th.randn(4, 5, 3)
    assert quantile_matching_loss(student, th.randn(4, 7, 3)).shape == ()
    # A point mass is matched exactly by quantiles all at its value
    point_mass = th.randn(4, 1, 3)
    assert quantile_matching_loss(point_mass.expand(4, 5, 3), point_mass).item() == 0.0
    assert quantile_matching_loss(point_mass.expand(4, 5, 3) + 0.1, point_mass).item() > 0.0
    with pytest.raises(ValueError, match=r"\(4, 5, 3\).*\(4, 7, 2\)"):
        quantile_matching_loss(student, th.randn(4, 7, 2))


def test_teacher_quantiles_only_of_a_qrdqn_teacher(qrdqn_teacher_path, cartpole_teacher_path):
    student = make_student(qrdqn_teacher_path)
    observations = th.as_tensor(np.stack([student.observation_space.sample() for _ in range(6)]))
    quantiles = teacher_quantiles(student.teacher, observations)
    assert quantiles.shape == (6, 7, 2) and not quantiles.requires_grad
    th.testing.assert_close(quantiles.mean(dim=1), student.teacher.values(observations))
    dqn_student = make_student(cartpole_teacher_path)
    with pytest.raises(TypeError, match=r"cartpole_teacher\.zip.*no quantiles"):
        teacher_quantiles(dqn_student.teacher, observations)


@pytest.mark.parametrize("quantile_term", [True, False])
def test_an_update_equals_back_propagating_the_whole_loss(qrdqn_teacher_path, quantile_term):
    alpha, temperature = 0.6, 0.5
    student = make_student(qrdqn_teacher_path, alpha=alpha, temperature=temperature, quantile_term=quantile_term)
    student.learn(200)
    reference = copy.deepcopy(student.policy)
    np.random.seed(3)
    student.train(gradient_steps=1, batch_size=32)
    logged = student.logger.name_to_value
    np.random.seed(3)
    batch = student.replay_buffer.sample(32)
    # QR-DQN's loss, written out
    with th.no_grad():
        next_quantiles = reference.quantile_net_target(batch.next_observations)
        next_actions = next_quantiles.mean(dim=1).argmax(dim=1)
        next_quantiles = next_quantiles[th.arange(32), :, next_actions]
        target = batch.rewards + (1 - batch.dones) * student.gamma * next_quantiles
    all_quantiles = reference.quantile_net(batch.observations)
    qr_loss = quantile_huber_loss(all_quantiles[th.arange(32), :, batch.actions.flatten().long()], target)
    # T^2 KL on the mean quantiles, from F.kl_div
    teacher_values = student.teacher.values(batch.observations)
    kl = F.kl_div(
        F.log_softmax(all_quantiles.mean(dim=1) / temperature, dim=1),
        F.log_softmax(teacher_values / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    distill = temperature**2 * kl
    if quantile_term:
        # Quantile Huber of each (sample, action) towards the teacher's quantiles, averaged over them
        teacher_all = student.teacher.network.quantile_net(batch.observations)
        per_action = [quantile_huber_loss(all_quantiles[:, :, action], teacher_all[:, :, action]) for action in range(2)]
        distill = distill + sum(per_action) / 2
    loss = (1 - alpha) * qr_loss + alpha * distill
    assert logged["train/qr_loss"] == pytest.approx(qr_loss.item(), rel=1e-5)
    assert logged["train/distill_loss"] == pytest.approx(distill.item(), rel=1e-5)
    assert logged["train/loss"] == pytest.approx(loss.item(), rel=1e-5)
    reference.optimizer.zero_grad()
    loss.backward()
    reference.optimizer.step()
    for name, parameter in student.policy.named_parameters():
        expected = dict(reference.named_parameters())[name]
        if parameter.grad is not None or expected.grad is not None:
            th.testing.assert_close(parameter.grad, expected.grad, rtol=1e-5, atol=1e-7, msg=f"gradient of {name}")
        th.testing.assert_close(parameter, expected, rtol=1e-5, atol=1e-6, msg=f"{name} after the update")


@pytest.mark.parametrize(("with_teacher", "n_steps"), [(False, 1), (True, 1), (False, 3)])
def test_alpha_zero_is_exactly_qrdqn(cartpole_teacher_path, with_teacher, n_steps):
    # SB3 seeds the global RNGs at construction: build and train one model after the other
    # Small rewards: the errors stay in the Huber loss's quadratic part, where its gradient depends on the targets (and so on
    # the n-step discounts); beyond it the gradient is their sign only
    def small_reward_env():
        return TransformReward(gym.make("CartPole-v1"), lambda reward: 0.01 * reward)

    qrdqn = QRDQN("MlpPolicy", small_reward_env(), seed=3, **student_kwargs(n_steps=n_steps))
    qrdqn.learn(300)
    qrdqn_parameters = parameters_of(qrdqn)
    teacher = cartpole_teacher_path if with_teacher else None
    student = make_student(teacher, alpha=0.0, env=small_reward_env(), seed=3, n_steps=n_steps)
    student.learn(300)
    assert student._n_updates == qrdqn._n_updates > 0
    for qrdqn_parameter, student_parameter in zip(qrdqn_parameters, parameters_of(student), strict=True):
        assert th.equal(qrdqn_parameter, student_parameter)


def test_the_quantile_term_needs_a_qrdqn_teacher_and_can_be_dropped(qrdqn_teacher_path, cartpole_teacher_path):
    student = make_student(qrdqn_teacher_path, learning_starts=100)
    student.learn(100)
    batch = student.replay_buffer.sample(32)
    with th.no_grad():
        all_quantiles = student.quantile_net(batch.observations)
        teacher_values = student.teacher.values(batch.observations)
        kl_only = quantile_distillation_loss(all_quantiles, teacher_values)
        quantile_term = quantile_matching_loss(all_quantiles, teacher_quantiles(student.teacher, batch.observations))
        assert quantile_term.item() > 0
        assert student._distillation_term(all_quantiles, batch)[0].item() == pytest.approx((kl_only + quantile_term).item())
        student.quantile_term = False
        assert student._distillation_term(all_quantiles, batch)[0].item() == pytest.approx(kl_only.item())
        # A DQN teacher has no quantiles: only the term on the values, whatever quantile_term says
        student.set_teacher(cartpole_teacher_path)
        student.quantile_term = True
        assert not student._uses_quantile_term()
        kl_only = quantile_distillation_loss(all_quantiles, student.teacher.values(batch.observations))
        assert student._distillation_term(all_quantiles, batch)[0].item() == pytest.approx(kl_only.item())
    # Same seed, with and without the term: different students
    runs = [parameters_of(make_student(qrdqn_teacher_path, quantile_term=term, seed=2).learn(200)) for term in (True, False)]
    assert not all(th.equal(first, second) for first, second in zip(*runs, strict=True))


def test_saved_student_loads_with_plain_qrdqn_and_resumes_with_a_teacher(tmp_path, qrdqn_teacher_path):
    from tests.test_buffers import run_without_sb3_distill

    student = make_student(qrdqn_teacher_path, alpha=0.7, temperature=0.5)
    student.learn(200)
    student.save(tmp_path / "student.zip")
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        data = json.loads(archive.read("data"))
        policy_state = th.load(archive.open("policy.pth"), weights_only=True)
    assert "teacher" not in data and "_agreement_batch" not in data
    assert all(key.startswith(("quantile_net.", "quantile_net_target.")) for key in policy_state)
    # The teacher's hidden layer is 16 wide and it has 7 * 2 outputs, the student's 8 and 5 * 2: none of its tensors
    assert all(16 not in tensor.shape and 14 not in tensor.shape for tensor in policy_state.values())

    observations = np.stack([student.observation_space.sample() for _ in range(10)])
    deployed = QRDQN.load(tmp_path / "student.zip")
    assert np.array_equal(
        deployed.predict(observations, deterministic=True)[0], student.predict(observations, deterministic=True)[0]
    )
    # Deployment needs no plugin
    run_without_sb3_distill(
        f"from sb3_contrib import QRDQN\nmodel = QRDQN.load({str(tmp_path / 'student.zip')!r})\n"
        "assert model.quantile_term is True\nmodel.predict([0.0, 0.0, 0.0, 0.0])",
        cwd=tmp_path,
    )

    resumed = DistilledQRDQN.load(tmp_path / "student.zip", env=gym.make("CartPole-v1"), teacher=qrdqn_teacher_path)
    assert (resumed.alpha, resumed.temperature, resumed.quantile_term) == (0.7, 0.5, True)
    assert resumed.teacher is not None and resumed.teacher.kind == "quantiles"
    updates = resumed._n_updates
    resumed.learn(100, reset_num_timesteps=False)
    assert resumed._n_updates > updates and resumed.num_timesteps == 300
    # Without a teacher it predicts but refuses to train
    loaded = DistilledQRDQN.load(tmp_path / "student.zip", env=gym.make("CartPole-v1"))
    loaded.predict(observations[0], deterministic=True)
    with pytest.raises(ValueError, match=r"This DistilledQRDQN has alpha=0\.7 but no teacher"):
        loaded.learn(100)


def test_offline_phase_stores_teacher_transitions_and_trains(qrdqn_teacher_path):
    student = make_student(qrdqn_teacher_path, offline_transitions=120, offline_gradient_steps=7, target_update_interval=4)
    before = parameters_of(student)
    student.run_offline_phase()
    assert student.teacher_transitions == 120 and student.replay_buffer.pos == 120 and student.offline_done
    assert student._n_updates == 7 and student.num_timesteps == 0
    assert not any(th.equal(old, new) for old, new in zip(before, parameters_of(student), strict=True))
    # The target network is updated at the end of the phase (tau = 1: a copy)
    for online, target in zip(student.quantile_net.parameters(), student.quantile_net_target.parameters(), strict=True):
        assert th.equal(online, target)
    student.learn(60)
    assert student.teacher_transitions == 120 and student.replay_buffer.pos == 180


def test_unknown_distillation_loss_fails_at_construction(qrdqn_teacher_path):
    with pytest.raises(ValueError, match=r"distill_loss='reverse_kl'"):
        make_student(qrdqn_teacher_path, distill_loss="reverse_kl")


def test_teacher_with_another_action_count_fails_naming_the_file(cartpole_teacher_path, qrdqn_teacher_path):
    for path in (cartpole_teacher_path, qrdqn_teacher_path):
        with pytest.raises(ValueError, match=rf"{path.name}.*Discrete\(2\).*Discrete\(3\)"):
            make_student(path, env="MountainCar-v0")


def test_alpha_without_teacher():
    with pytest.raises(ValueError, match=r"alpha=0\.5 needs a teacher.*plain QRDQN"):
        make_student(None, alpha=0.5)


def test_quantile_term_of_wrong_type(qrdqn_teacher_path):
    with pytest.raises(TypeError, match=r"quantile_term='yes'"):
        make_student(qrdqn_teacher_path, quantile_term="yes")


def test_quantile_term_refused_behind_vec_normalize(qrdqn_teacher_path):
    env = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    with pytest.raises(ValueError, match=r"quantile_term=True with a VecNormalize env.*quantile_term=False"):
        make_student(qrdqn_teacher_path, env=env).learn(100)
    make_student(qrdqn_teacher_path, env=env, quantile_term=False).learn(100)
