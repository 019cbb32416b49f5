import math

import pytest
import torch as th
from torch.nn import functional as F

from sb3_distill.common.losses import (
    DISTILLATION_LOSSES,
    distillation_loss,
    distillation_loss_and_gradient,
    get_distillation_loss,
    greedy_action_nll_loss,
    q_value_mse_loss,
    td_loss_and_gradient,
    teacher_agreement,
)


def test_worked_example_is_0_0257_nats():
    # Q-values whose softmax at T = 1 is exactly p_T = (0.8, 0.2) and p_S = (0.7, 0.3)
    teacher_q_values = th.log(th.tensor([[0.8, 0.2]]))
    student_q_values = th.log(th.tensor([[0.7, 0.3]]))
    loss = distillation_loss(student_q_values, teacher_q_values, temperature=1.0)
    expected = 0.8 * math.log(0.8 / 0.7) + 0.2 * math.log(0.2 / 0.3)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert round(loss.item(), 4) == 0.0257


@pytest.mark.parametrize("temperature", [0.01, 0.1, 1.0, 10.0])
def test_zero_when_student_equals_teacher(temperature):
    q_values = th.randn(32, 6) * 10
    assert distillation_loss(q_values.clone(), q_values, temperature).item() == pytest.approx(0.0, abs=1e-6)
    # Adding a constant per state does not change the softmax either
    assert distillation_loss(q_values + 3.0, q_values, temperature).item() == pytest.approx(0.0, abs=1e-5)


def test_matches_torch_kl_div():
    generator = th.Generator().manual_seed(0)
    student_q_values = th.randn(64, 4, generator=generator)
    teacher_q_values = th.randn(64, 4, generator=generator)
    temperature = 0.5
    reference = F.kl_div(
        F.log_softmax(student_q_values / temperature, dim=1),
        F.log_softmax(teacher_q_values / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    loss = distillation_loss(student_q_values, teacher_q_values, temperature)
    assert loss.item() == pytest.approx(temperature**2 * reference.item(), rel=1e-5)
    assert loss.item() > 0


@pytest.mark.parametrize("temperature", [0.5, 2.0, 5.0])
def test_temperature_squared_factor(temperature):
    generator = th.Generator().manual_seed(1)
    student_q_values = th.randn(16, 3, generator=generator)
    teacher_q_values = th.randn(16, 3, generator=generator)
    # At temperature T the softmax sees Q / T: the same KL as at T = 1 on Q / T, scaled by T^2
    at_temperature = distillation_loss(student_q_values, teacher_q_values, temperature)
    kl_at_one = distillation_loss(student_q_values / temperature, teacher_q_values / temperature, 1.0)
    assert at_temperature.item() == pytest.approx(temperature**2 * kl_at_one.item(), rel=1e-5)


def test_finite_loss_and_gradients_for_small_temperature_and_large_q_values():
    teacher_q_values = th.tensor([[100.0, -100.0, 0.0], [-100.0, 100.0, 50.0]])
    student_q_values = th.tensor([[-100.0, 100.0, 0.0], [100.0, -100.0, -50.0]], requires_grad=True)
    loss = distillation_loss(student_q_values, teacher_q_values, temperature=0.01)
    loss.backward()
    assert th.isfinite(loss)
    assert loss.item() > 0
    assert student_q_values.grad is not None
    assert th.isfinite(student_q_values.grad).all()
    # The gradient pushes the student's value up on the teacher's greedy action
    assert student_q_values.grad[0, 0] < 0 and student_q_values.grad[1, 1] < 0


def test_no_gradient_reaches_the_teacher():
    teacher_q_values = th.randn(8, 2, requires_grad=True)
    student_q_values = th.randn(8, 2, requires_grad=True)
    distillation_loss(student_q_values, teacher_q_values, 1.0).backward()
    assert teacher_q_values.grad is None
    assert student_q_values.grad is not None


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(4, 3\)"):
        distillation_loss(th.zeros(4, 2), th.zeros(4, 3), 1.0)


def test_teacher_agreement():
    student_q_values = th.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 3.0], [5.0, 1.0]])
    teacher_q_values = th.tensor([[3.0, 1.0], [1.0, 0.0], [0.0, 9.0], [1.0, 0.0]])
    assert teacher_agreement(student_q_values, teacher_q_values).item() == pytest.approx(0.75)


@pytest.mark.parametrize("temperature", [0.01, 0.3, 1.0, 7.0])
def test_gradient_is_temperature_times_probability_gap(temperature):
    generator = th.Generator().manual_seed(2)
    teacher_q_values = 5 * th.randn(16, 4, generator=generator, dtype=th.float64)
    student_q_values = (5 * th.randn(16, 4, generator=generator, dtype=th.float64)).requires_grad_()
    (gradient,) = th.autograd.grad(distillation_loss(student_q_values, teacher_q_values, temperature), student_q_values)
    # d/dQ_S of T^2 * mean_b KL(p_T || p_S) = T * (p_S - p_T) / batch_size
    expected = (
        temperature
        * (F.softmax(student_q_values / temperature, dim=1) - F.softmax(teacher_q_values / temperature, dim=1))
        / 16
    )
    th.testing.assert_close(gradient, expected.detach(), rtol=1e-7, atol=1e-10)


def test_gradcheck():
    generator = th.Generator().manual_seed(3)
    student_q_values = th.randn(5, 3, generator=generator, dtype=th.float64, requires_grad=True)
    teacher_q_values = th.randn(5, 3, generator=generator, dtype=th.float64)
    assert th.autograd.gradcheck(lambda q: distillation_loss(q, teacher_q_values, 0.5), (student_q_values,))


def test_mse_hand_computed():
    student_q_values = th.tensor([[1.0, 2.0], [0.0, -1.0]])
    teacher_q_values = th.tensor([[0.0, 2.0], [3.0, 1.0]])
    # Squared errors 1, 0, 9, 4 over 2 samples x 2 actions
    assert q_value_mse_loss(student_q_values, teacher_q_values).item() == pytest.approx(14.0 / 4)
    assert q_value_mse_loss(teacher_q_values.clone(), teacher_q_values).item() == 0.0


def test_mse_gradient_is_twice_the_gap_over_the_batch_and_actions():
    generator = th.Generator().manual_seed(4)
    teacher_q_values = th.randn(6, 3, generator=generator, dtype=th.float64)
    student_q_values = th.randn(6, 3, generator=generator, dtype=th.float64, requires_grad=True)
    (gradient,) = th.autograd.grad(q_value_mse_loss(student_q_values, teacher_q_values), student_q_values)
    th.testing.assert_close(gradient, 2 * (student_q_values - teacher_q_values).detach() / (6 * 3), rtol=1e-12, atol=0)
    assert th.autograd.gradcheck(lambda q: q_value_mse_loss(q, teacher_q_values), (student_q_values,))


def test_nll_hand_computed():
    # Teacher's greedy actions: 0 and 1; at T = 1 the student's softmax is (0.7, 0.3) on both rows
    teacher_q_values = th.tensor([[2.0, 1.0], [0.0, 5.0]])
    student_q_values = th.log(th.tensor([[0.7, 0.3], [0.7, 0.3]]))
    expected = -(math.log(0.7) + math.log(0.3)) / 2
    assert greedy_action_nll_loss(student_q_values, teacher_q_values, 1.0).item() == pytest.approx(expected, abs=1e-6)
    # At T = 2 the student's logits are halved: softmax((log 0.7, log 0.3) / 2) = (sqrt 0.7, sqrt 0.3) / norm
    norm = math.sqrt(0.7) + math.sqrt(0.3)
    expected_t2 = -(math.log(math.sqrt(0.7) / norm) + math.log(math.sqrt(0.3) / norm)) / 2
    assert greedy_action_nll_loss(student_q_values, teacher_q_values, 2.0).item() == pytest.approx(expected_t2, abs=1e-6)


@pytest.mark.parametrize("temperature", [0.1, 1.0, 3.0])
def test_nll_gradient_is_probability_minus_onehot(temperature):
    generator = th.Generator().manual_seed(5)
    teacher_q_values = th.randn(7, 4, generator=generator, dtype=th.float64)
    student_q_values = th.randn(7, 4, generator=generator, dtype=th.float64, requires_grad=True)
    loss = greedy_action_nll_loss(student_q_values, teacher_q_values, temperature)
    (gradient,) = th.autograd.grad(loss, student_q_values)
    # d/dQ_S of mean_b -log softmax(Q_S / T)[a*] = (softmax(Q_S / T) - onehot(a*)) / (T * batch_size)
    onehot = F.one_hot(teacher_q_values.argmax(dim=1), 4).to(th.float64)
    expected = (F.softmax(student_q_values / temperature, dim=1) - onehot) / (temperature * 7)
    th.testing.assert_close(gradient, expected.detach(), rtol=1e-10, atol=1e-12)
    assert th.autograd.gradcheck(lambda q: greedy_action_nll_loss(q, teacher_q_values, temperature), (student_q_values,))


@pytest.mark.parametrize("name", ["mse", "nll"])
def test_variants_refuse_mismatched_shapes_and_leave_the_teacher_alone(name):
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(4, 3\)"):
        get_distillation_loss(name)(th.zeros(4, 2), th.zeros(4, 3), 1.0)
    teacher_q_values = th.randn(8, 2, requires_grad=True)
    student_q_values = th.randn(8, 2, requires_grad=True)
    get_distillation_loss(name)(student_q_values, teacher_q_values, 0.5).backward()
    assert teacher_q_values.grad is None and student_q_values.grad is not None


def test_distillation_losses_by_name():
    assert sorted(DISTILLATION_LOSSES) == ["kl", "mse", "nll"]
    assert get_distillation_loss("kl") is distillation_loss
    student_q_values, teacher_q_values = th.tensor([[1.0, 0.0]]), th.tensor([[0.0, 2.0]])
    # The MSE ignores the temperature
    assert get_distillation_loss("mse")(student_q_values, teacher_q_values, 0.1).item() == pytest.approx(2.5)


@pytest.mark.parametrize("name", ["l1", "KL", "", None])
def test_unknown_distillation_loss(name):
    with pytest.raises(ValueError, match=rf"distill_loss={name!r}.*\['kl', 'mse', 'nll'\]"):
        get_distillation_loss(name)


@pytest.mark.parametrize("name", ["kl", "mse", "nll"])
@pytest.mark.parametrize("temperature", [0.01, 0.1, 1.0, 4.0])
def test_closed_form_gradient_equals_autograd(name, temperature):
    # What DistilledDQN.train hands to backward() must be exactly the loss's autograd gradient
    generator = th.Generator().manual_seed(7)
    student_q_values = (10 * th.randn(16, 5, generator=generator, dtype=th.float64)).requires_grad_(True)
    teacher_q_values = 10 * th.randn(16, 5, generator=generator, dtype=th.float64)
    expected = get_distillation_loss(name)(student_q_values, teacher_q_values, temperature)
    expected.backward()
    loss, gradient = distillation_loss_and_gradient(name, student_q_values, teacher_q_values, temperature)
    assert not loss.requires_grad and not gradient.requires_grad
    th.testing.assert_close(loss, expected.detach(), rtol=1e-10, atol=1e-10)
    th.testing.assert_close(gradient, student_q_values.grad, rtol=1e-8, atol=1e-12)
    # The inputs are left as they were (the gradient is built in place on copies)
    assert th.isfinite(gradient).all() and student_q_values.grad is not None
    # gradient_scale (train() passes alpha) scales the gradient only
    scaled_loss, scaled = distillation_loss_and_gradient(name, student_q_values, teacher_q_values, temperature, 0.3)
    th.testing.assert_close(scaled_loss, loss, rtol=0, atol=0)
    th.testing.assert_close(scaled, 0.3 * student_q_values.grad, rtol=1e-8, atol=1e-12)


def test_closed_form_kl_worked_example():
    # p_T = softmax([0, ln 3]) = [0.25, 0.75], p_S = [0.5, 0.5]: gradient T * (p_S - p_T) / B
    loss, gradient = distillation_loss_and_gradient("kl", th.zeros(1, 2), th.tensor([[0.0, math.log(3.0)]]), 1.0)
    assert loss.item() == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    th.testing.assert_close(gradient, th.tensor([[0.25, -0.25]]))


def test_closed_form_refuses_unknown_losses_and_mismatched_shapes():
    with pytest.raises(ValueError, match=r"distill_loss='l1'"):
        distillation_loss_and_gradient("l1", th.zeros(2, 2), th.zeros(2, 2), 1.0)
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(4, 3\)"):
        distillation_loss_and_gradient("kl", th.zeros(4, 2), th.zeros(4, 3), 1.0)


@pytest.mark.parametrize("batch_size", [1, 32, 100])
def test_td_gradient_is_autograds_bit_for_bit(batch_size):
    # Differences on both sides of the Huber loss's kink at |x| = 1, and exactly on it
    generator = th.Generator().manual_seed(batch_size)
    q_values = (3 * th.randn(batch_size, 4, generator=generator)).requires_grad_(True)
    actions = th.randint(0, 4, (batch_size, 1), generator=generator)
    targets = 3 * th.randn(batch_size, 1, generator=generator)
    targets[0] = q_values[0, actions[0]].detach() + 1.0
    expected = F.smooth_l1_loss(th.gather(q_values, 1, actions), targets)
    expected.backward()
    loss, gradient = td_loss_and_gradient(th.gather(q_values.detach(), 1, actions), targets)
    assert not loss.requires_grad and not gradient.requires_grad
    assert th.equal(loss, expected.detach())
    # What train() back-propagates from the Q-values: equal, so that alpha = 0 trains exactly as SB3's DQN
    assert th.equal(th.zeros(batch_size, 4).scatter_add_(1, actions, gradient), q_values.grad)
    # gradient_scale (train() passes 1 - alpha) scales the gradient only
    scaled_loss, scaled = td_loss_and_gradient(th.gather(q_values.detach(), 1, actions), targets, 0.25)
    assert th.equal(scaled_loss, loss)
    th.testing.assert_close(scaled, 0.25 * gradient, rtol=1e-6, atol=0)


def test_td_gradient_worked_example_and_shapes():
    # x = Q - target = (0.5, -3): the Huber loss is (0.5^2 / 2 + (3 - 0.5)) / 2, its gradient (0.5, -1) / 2
    loss, gradient = td_loss_and_gradient(th.tensor([[1.5], [-1.0]]), th.tensor([[1.0], [2.0]]))
    assert loss.item() == pytest.approx((0.125 + 2.5) / 2)
    th.testing.assert_close(gradient, th.tensor([[0.25], [-0.5]]))
    with pytest.raises(ValueError, match=r"current_q_values has shape \(2, 1\) but target_q_values has shape \(2,\)"):
        td_loss_and_gradient(th.zeros(2, 1), th.zeros(2))


def test_gaussian_kl_matches_torch_distributions_and_is_zero_on_itself():
    from torch.distributions import Normal, kl_divergence

    from sb3_distill.common.losses import gaussian_kl

    generator = th.Generator().manual_seed(0)
    mean_p, mean_q = th.randn(5, 3, generator=generator), th.randn(5, 3, generator=generator)
    log_std_p, log_std_q = 0.5 * th.randn(5, 3, generator=generator), 0.5 * th.randn(5, 3, generator=generator)
    expected = kl_divergence(Normal(mean_p, log_std_p.exp()), Normal(mean_q, log_std_q.exp())).sum(dim=-1)
    th.testing.assert_close(gaussian_kl(mean_p, log_std_p, mean_q, log_std_q), expected)
    th.testing.assert_close(gaussian_kl(mean_p, log_std_p, mean_p, log_std_p), th.zeros(5))
    # Worked value, one dimension: N(0, 1) to N(1, 2^2): log 2 + (1 + 1) / 8 - 1/2 = 0.4431
    one = gaussian_kl(th.zeros(1, 1), th.zeros(1, 1), th.ones(1, 1), th.full((1, 1), math.log(2.0)))
    assert one.item() == pytest.approx(math.log(2.0) + 0.25 - 0.5, abs=1e-6)


def test_categorical_kl_forward_reverse_and_the_worked_check():
    from sb3_distill.common.losses import categorical_kl

    teacher, student = th.log(th.tensor([[0.8, 0.2]])), th.log(th.tensor([[0.7, 0.3]]))
    assert categorical_kl(teacher, student).item() == pytest.approx(0.0257, abs=1e-4)
    # KL(0.7, 0.3 || 0.8, 0.2) = 0.7 log(0.7/0.8) + 0.3 log(0.3/0.2)
    assert categorical_kl(teacher, student, reverse=True).item() == pytest.approx(
        0.7 * math.log(0.7 / 0.8) + 0.3 * math.log(0.3 / 0.2), abs=1e-6
    )
    # The batch mean of the forward term is the DQN student's distillation_loss
    generator = th.Generator().manual_seed(1)
    q_teacher, q_student = th.randn(6, 4, generator=generator), th.randn(6, 4, generator=generator)
    th.testing.assert_close(categorical_kl(q_teacher, q_student, 0.5).mean(), distillation_loss(q_student, q_teacher, 0.5))


def test_scaled_action_mse_and_ppd_weighting():
    from sb3_distill.common.losses import ppd_weighted, scaled_action_mse

    student = th.tensor([[0.0, 1.0], [0.5, -0.5]], requires_grad=True)
    teacher = th.tensor([[1.0, 1.0], [0.5, 0.5]])
    th.testing.assert_close(scaled_action_mse(student, teacher), th.tensor([0.5, 0.5]))
    scaled_action_mse(student, teacher).sum().backward()
    assert teacher.grad is None and student.grad is not None
    kl = th.tensor([1.0, 2.0, 3.0])
    ratio = th.tensor([0.5, 1.0, 1.5])
    # max(r, 1 - 0.2): 0.8, 1.0, 1.5
    assert ppd_weighted(kl, ratio, 0.2).item() == pytest.approx((0.8 + 2.0 + 4.5) / 3)
    with pytest.raises(ValueError, match=r"per_sample_kl has shape \(3,\) but ratio has shape \(2,\)"):
        ppd_weighted(kl, ratio[:2], 0.2)
