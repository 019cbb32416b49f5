"""Pure tensor functions for the distillation terms (no environment, no model)."""

import torch as th
from torch.nn import functional as F


def distillation_loss(student_q_values: th.Tensor, teacher_q_values: th.Tensor, temperature: float) -> th.Tensor:
    """
    Temperature-scaled KL divergence from the teacher's softmaxed Q-values to the student's,
    ``T^2 * mean_batch KL(softmax(Q_T / T) || softmax(Q_S / T))``, in nats.

    Paper: https://arxiv.org/abs/1503.02531 (the ``T^2`` factor), https://arxiv.org/abs/1511.06295 (for Q-values)

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
    teacher_q_values = teacher_q_values.detach()
    if temperature != 1.0:
        # Skipped at T = 1: each tensor operation costs a few microseconds, a sizeable share of a small student's update
        teacher_q_values, student_q_values = teacher_q_values / temperature, student_q_values / temperature
    # log_softmax on both sides: stable for small T (no overflow in exp, no log(0))
    teacher_log_probs = F.log_softmax(teacher_q_values, dim=1)
    student_log_probs = F.log_softmax(student_q_values, dim=1)
    # KL(p_T || p_S) = sum_a p_T(a) * (log p_T(a) - log p_S(a)), averaged over the batch ("batchmean")
    kl = F.kl_div(student_log_probs, teacher_log_probs, reduction="batchmean", log_target=True)
    # T^2 keeps the gradient's scale independent of T (Hinton et al., 2015)
    return kl if temperature == 1.0 else temperature**2 * kl


def greedy_agreement(student_q_values: th.Tensor, teacher_q_values: th.Tensor) -> th.Tensor:
    """
    Whether the student's greedy action is the teacher's, per sample.

    :param student_q_values: Student Q-values, shape ``(batch_size, n_actions)``
    :param teacher_q_values: Teacher Q-values, same shape
    :return: Boolean tensor of shape ``(batch_size,)``
    """
    return student_q_values.argmax(dim=1) == teacher_q_values.argmax(dim=1)


def teacher_agreement(student_q_values: th.Tensor, teacher_q_values: th.Tensor) -> th.Tensor:
    """
    Share of the batch where the student's greedy action is the teacher's greedy action.

    :param student_q_values: Student Q-values, shape ``(batch_size, n_actions)``
    :param teacher_q_values: Teacher Q-values, same shape
    :return: Scalar in [0, 1]
    """
    return greedy_agreement(student_q_values, teacher_q_values).float().mean()
