"""Pure tensor functions for the distillation terms (no environment, no model)."""

from typing import Any

import torch as th
from torch.nn import functional as F


class _TemperedKL(th.autograd.Function):
    """``T^2 * mean_batch KL(softmax(Q_T / T) || softmax(Q_S / T))`` with its gradient in closed form."""

    @staticmethod
    def forward(ctx: Any, student_q_values: th.Tensor, teacher_q_values: th.Tensor, temperature: float) -> th.Tensor:
        # log_softmax on both sides: stable for small T (no overflow in exp, no log(0))
        teacher_log_probs = F.log_softmax(teacher_q_values / temperature, dim=1)
        student_log_probs = F.log_softmax(student_q_values / temperature, dim=1)
        teacher_probs = teacher_log_probs.exp()
        # KL(p_T || p_S) = sum_a p_T(a) * (log p_T(a) - log p_S(a)), per sample, then the batch mean
        kl = (teacher_probs * (teacher_log_probs - student_log_probs)).sum(dim=1).mean()
        ctx.save_for_backward(student_log_probs, teacher_probs)
        ctx.temperature = temperature
        # T^2 keeps the gradient's scale comparable across temperatures (Hinton et al., 2015)
        return temperature**2 * kl

    @staticmethod
    def backward(ctx: Any, grad_output: th.Tensor) -> tuple[th.Tensor, None, None]:
        student_log_probs, teacher_probs = ctx.saved_tensors
        # d/dQ_S of T^2 * mean_b KL is T * (p_S - p_T) / batch_size: one fused step instead of
        # back-propagating through both softmaxes (the teacher is a constant target)
        scale = grad_output * ctx.temperature / teacher_probs.shape[0]
        return (student_log_probs.exp() - teacher_probs) * scale, None, None


def distillation_loss(student_q_values: th.Tensor, teacher_q_values: th.Tensor, temperature: float) -> th.Tensor:
    """
    Temperature-scaled KL divergence from the teacher's softmaxed Q-values to the student's,
    ``T^2 * mean_batch KL(softmax(Q_T / T) || softmax(Q_S / T))``, in nats.

    Paper: https://arxiv.org/abs/1503.02531 (the ``T^2`` factor), https://arxiv.org/abs/1511.06295 (for Q-values)

    The gradient with respect to the student's values is computed in closed form, ``T * (p_S - p_T) / batch_size``
    (the same as automatic differentiation of the formula, a third of the cost); none flows to the teacher.

    :param student_q_values: Student Q-values, shape ``(batch_size, n_actions)``; gradients flow through them
    :param teacher_q_values: Teacher Q-values, same shape; treated as a constant target
    :param temperature: Softmax temperature ``T > 0``
    :return: Scalar loss
    """
    if student_q_values.shape != teacher_q_values.shape:
        raise ValueError(
            f"student_q_values has shape {tuple(student_q_values.shape)} but teacher_q_values has shape "
            f"{tuple(teacher_q_values.shape)}: both must be (batch_size, n_actions)"
        )
    return _TemperedKL.apply(student_q_values, teacher_q_values.detach(), temperature)


def teacher_agreement(student_q_values: th.Tensor, teacher_q_values: th.Tensor) -> th.Tensor:
    """
    Share of the batch where the student's greedy action is the teacher's greedy action.

    :param student_q_values: Student Q-values, shape ``(batch_size, n_actions)``
    :param teacher_q_values: Teacher Q-values, same shape
    :return: Scalar in [0, 1]
    """
    return (student_q_values.argmax(dim=1) == teacher_q_values.argmax(dim=1)).float().mean()
