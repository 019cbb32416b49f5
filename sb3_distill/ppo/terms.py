"""
What a PPO student compares with its teacher, as pure tensor functions: the KL terms between its action distribution and
the teacher's (categorical for Discrete actions, diagonal Gaussian for Box ones; forward, reverse, or PPD's
ratio-weighted forward KL), its mean action in the env's scaled [-1, 1] space for the MSE term, and the teacher's
actions when the teacher acts in the rollout (``teacher_acts=True``).
"""

import torch as th
from gymnasium import spaces
from torch.distributions import Categorical, Normal

from sb3_distill.common.losses import categorical_kl, gaussian_kl, ppd_weighted
from sb3_distill.common.teacher import Teacher

#: The terms between two distributions of the same support
KL_TERMS = ("kl", "reverse_kl", "ppd")


def _check_kl_term(term: str) -> None:
    if term not in KL_TERMS:
        raise ValueError(f"term={term!r} is not a KL term between two distributions: expected one of {list(KL_TERMS)}")


def categorical_policy_term(
    term: str,
    teacher_values: th.Tensor,
    student_logits: th.Tensor,
    temperature: float,
    ratio: th.Tensor,
    clip_range: float,
) -> th.Tensor:
    """
    The term between a Discrete student's policy and the teacher's softmaxed values at temperature T, over a minibatch:
    ``"kl"``: ``mean T^2 KL(softmax(Q_T / T) || softmax(z_S / T))``; ``"reverse_kl"``: the KL the other way;
    ``"ppd"``: ``mean max(r, 1 - eps) * T^2 KL(teacher || student)`` (Proximal Policy Distillation).

    :param term: ``"kl"``, ``"reverse_kl"`` or ``"ppd"``
    :param teacher_values: The teacher's per-action values (Q-values, mean quantiles or logits), ``(batch, n_actions)``
    :param student_logits: The student's action logits, same shape; gradients flow through them
    :param temperature: Softmax temperature ``T > 0``
    :param ratio: ``pi_new(a|s) / pi_old(a|s)`` of the minibatch's actions, ``(batch,)`` (used by ``"ppd"`` only)
    :param clip_range: PPO's clip range eps (used by ``"ppd"`` only)
    :return: Scalar
    """
    _check_kl_term(term)
    if term == "reverse_kl":
        return categorical_kl(teacher_values, student_logits, temperature, reverse=True).mean()
    # Forward KL(teacher || student) per sample, T^2-scaled
    per_sample_kl = categorical_kl(teacher_values, student_logits, temperature)
    # PPD weighs each sample's KL by its clipped ratio; the plain term averages it
    return ppd_weighted(per_sample_kl, ratio, clip_range) if term == "ppd" else per_sample_kl.mean()


def gaussian_policy_term(
    term: str,
    teacher_mean: th.Tensor,
    teacher_log_std: th.Tensor,
    student_mean: th.Tensor,
    student_log_std: th.Tensor,
    ratio: th.Tensor,
    clip_range: float,
) -> th.Tensor:
    """
    The term between a Box student's diagonal Gaussian policy and a Gaussian teacher's (PPO, A2C, TRPO), both over env
    actions, over a minibatch: ``"kl"``: ``mean KL(teacher || student)`` summed over the action dimensions;
    ``"reverse_kl"``: the KL the other way; ``"ppd"``: ``mean max(r, 1 - eps) * KL(teacher || student)``.

    :param term: ``"kl"``, ``"reverse_kl"`` or ``"ppd"``
    :param teacher_mean: The teacher's mean action, ``(batch, action_dim)``; a constant target
    :param teacher_log_std: Its log standard deviation, same shape
    :param student_mean: The student's mean action, same shape; gradients flow through it
    :param student_log_std: Its log standard deviation, same shape; gradients flow through it
    :param ratio: ``pi_new(a|s) / pi_old(a|s)`` of the minibatch's actions, ``(batch,)`` (used by ``"ppd"`` only)
    :param clip_range: PPO's clip range eps (used by ``"ppd"`` only)
    :return: Scalar
    """
    _check_kl_term(term)
    teacher_mean, teacher_log_std = teacher_mean.detach(), teacher_log_std.detach()
    if term == "reverse_kl":
        return gaussian_kl(student_mean, student_log_std, teacher_mean, teacher_log_std).mean()
    # Forward KL(teacher || student) per sample, in closed form, summed over the action dimensions
    per_sample_kl = gaussian_kl(teacher_mean, teacher_log_std, student_mean, student_log_std)
    return ppd_weighted(per_sample_kl, ratio, clip_range) if term == "ppd" else per_sample_kl.mean()


def _bounds(action_space: spaces.Box, like: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
    low = th.as_tensor(action_space.low, dtype=like.dtype, device=like.device).flatten()
    high = th.as_tensor(action_space.high, dtype=like.dtype, device=like.device).flatten()
    return low, high


def student_scaled_mean_actions(mean_actions: th.Tensor, action_space: spaces.Box) -> th.Tensor:
    """
    A PPO student's mean actions in the env's scaled [-1, 1] space: clipped to the action bounds as SB3 clips PPO's
    actions before the env sees them, then mapped by the bounds (SB3's ``scale_action``). The clip passes the gradient
    straight through, so that a mean beyond a bound is still moved toward the teacher's action (a plain clamp would
    leave it there, with no gradient) while the value is the action the env would get.

    :param mean_actions: The student's mean actions in env units, ``(batch, action_dim)``
    :param action_space: The student's Box action space (finite bounds)
    :return: Same shape, in [-1, 1]
    """
    low, high = _bounds(action_space, mean_actions)
    # The clipped value with the identity's gradient (straight-through)
    clipped = mean_actions + (th.minimum(th.maximum(mean_actions, low), high) - mean_actions).detach()
    # [low, high] -> [-1, 1]
    return 2.0 * (clipped - low) / (high - low) - 1.0


def teacher_rollout_actions(teacher: Teacher, teacher_values: th.Tensor, action_space: spaces.Space) -> th.Tensor:
    """
    The actions a teacher takes in a rollout (``teacher_acts=True``), in the form PPO stores its own (env units for a Box
    space, before SB3 clips them to the bounds): sampled from its policy where it has one (the categorical of an
    actor-critic's logits, a Gaussian, a squashed Gaussian), greedy on its Q-values (DQN, QR-DQN) and its deterministic
    action (TD3) otherwise: each teacher acts as it did when it was trained, minus the exploration noise of a DQN or TD3.

    :param teacher: The prepared teacher
    :param teacher_values: Its values of the observations (``Teacher.values``), ``(n_envs, width)``
    :param action_space: The student's action space
    :return: ``(n_envs,)`` action indices for a Discrete space, ``(n_envs, action_dim)`` for a Box one
    """
    if isinstance(action_space, spaces.Discrete):
        if teacher.kind == "logits":
            return Categorical(logits=teacher_values).sample()
        return teacher_values.argmax(dim=1)
    assert isinstance(action_space, spaces.Box)
    mean, log_std = teacher.split_values(teacher_values)
    if log_std is not None and teacher.kind == "gaussian":
        # Over env actions, unclipped as PPO stores its own samples
        return Normal(mean, log_std.exp()).sample()
    if log_std is not None and teacher.kind == "squashed_gaussian":
        scaled_actions = th.tanh(Normal(mean, log_std.exp()).sample())
    else:
        # A deterministic teacher's action is already in the scaled space
        scaled_actions = mean
    low, high = _bounds(action_space, scaled_actions)
    # SB3's unscale_action: [-1, 1] -> [low, high]
    return low + 0.5 * (scaled_actions + 1.0) * (high - low)
