import math

import pytest
import torch as th
from torch.nn import functional as F

from sb3_distill.losses import distillation_loss, teacher_agreement


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
