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
    # log_softmax on both sides: stable for small T (no overflow in exp, no log(0))
    teacher_log_probs = F.log_softmax(teacher_q_values.detach() / temperature, dim=1)
    student_log_probs = F.log_softmax(student_q_values / temperature, dim=1)
    # KL(p_T || p_S) = sum_a p_T(a) * (log p_T(a) - log p_S(a)), per sample
    kl_per_sample = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=1)
    # T^2 keeps the gradient's scale independent of T (Hinton et al., 2015)
    return temperature**2 * kl_per_sample.mean()


def teacher_agreement(student_q_values: th.Tensor, teacher_q_values: th.Tensor) -> th.Tensor:
    """
    Share of the batch where the student's greedy action is the teacher's greedy action.

    :param student_q_values: Student Q-values, shape ``(batch_size, n_actions)``
    :param teacher_q_values: Teacher Q-values, same shape
    :return: Scalar in [0, 1]
    """
    return (student_q_values.argmax(dim=1) == teacher_q_values.argmax(dim=1)).float().mean()
