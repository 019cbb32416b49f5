"""Pure tensor functions for the distillation terms (no environment, no model)."""

from collections.abc import Callable

import torch as th
from torch.nn import functional as F


def _check_same_shape(
    student_q_values: th.Tensor,
    teacher_q_values: th.Tensor,
    names: tuple[str, str] = ("student_q_values", "teacher_q_values"),
    shape: str = "(batch_size, n_actions)",
) -> None:
    """Fail unless both values have the same shape, ``shape``."""
    if student_q_values.shape != teacher_q_values.shape:
        raise ValueError(
            f"{names[0]} has shape {tuple(student_q_values.shape)} but {names[1]} has shape "
            f"{tuple(teacher_q_values.shape)}: both must be {shape}"
        )


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
    _check_same_shape(student_q_values, teacher_q_values)
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


def q_value_mse_loss(student_q_values: th.Tensor, teacher_q_values: th.Tensor) -> th.Tensor:
    """
    Mean squared error between the student's and the teacher's Q-values, ``mean over batch and actions of
    (Q_S - Q_T)^2``: the student learns the teacher's values themselves, not only their ranking. No temperature.

    Paper: https://arxiv.org/abs/1511.06295 (Policy Distillation, the MSE variant)

    :param student_q_values: Student Q-values, shape ``(batch_size, n_actions)``; gradients flow through them
    :param teacher_q_values: Teacher Q-values, same shape; treated as a constant target
    :return: Scalar loss; its gradient is ``2 * (Q_S - Q_T) / (batch_size * n_actions)``
    """
    _check_same_shape(student_q_values, teacher_q_values)
    # Every (sample, action) pair weighs the same: reduction="mean" divides by batch_size * n_actions
    return F.mse_loss(student_q_values, teacher_q_values.detach(), reduction="mean")


def greedy_action_nll_loss(student_q_values: th.Tensor, teacher_q_values: th.Tensor, temperature: float) -> th.Tensor:
    """
    Negative log-likelihood of the teacher's greedy action under the student's softmax policy,
    ``mean over batch of -log softmax(Q_S / T)[argmax_a Q_T(a)]`` (cross-entropy with a one-hot target).

    Paper: https://arxiv.org/abs/1511.06295 (Policy Distillation, the NLL variant)

    :param student_q_values: Student Q-values, shape ``(batch_size, n_actions)``; gradients flow through them
    :param teacher_q_values: Teacher Q-values, same shape; only their argmax is used
    :param temperature: Softmax temperature ``T > 0`` of the student
    :return: Scalar loss; its gradient is ``(softmax(Q_S / T) - onehot(argmax Q_T)) / (T * batch_size)``
    """
    _check_same_shape(student_q_values, teacher_q_values)
    # The teacher's greedy action is the target class (no gradient flows through argmax)
    greedy_actions = teacher_q_values.detach().argmax(dim=1)
    # cross_entropy = mean_b -log_softmax(Q_S / T)[a*_b], computed with log_softmax (stable for small T)
    return F.cross_entropy(student_q_values / temperature, greedy_actions, reduction="mean")


#: Distillation losses by name (``DistilledDQN(distill_loss=...)``): ``(Q_S, Q_T, T) -> scalar``
DISTILLATION_LOSSES: dict[str, Callable[[th.Tensor, th.Tensor, float], th.Tensor]] = {
    "kl": distillation_loss,
    # The temperature does not enter the MSE on Q-values
    "mse": lambda student_q_values, teacher_q_values, temperature: q_value_mse_loss(student_q_values, teacher_q_values),
    "nll": greedy_action_nll_loss,
}


def get_distillation_loss(name: str) -> Callable[[th.Tensor, th.Tensor, float], th.Tensor]:
    """
    The distillation loss called ``name``.

    :param name: One of ``DISTILLATION_LOSSES``: ``"kl"``, ``"mse"`` or ``"nll"``
    :return: The function ``(student_q_values, teacher_q_values, temperature) -> scalar loss``
    """
    if not isinstance(name, str) or name not in DISTILLATION_LOSSES:
        raise ValueError(f"distill_loss={name!r} is not a distillation loss: choose one of {sorted(DISTILLATION_LOSSES)}")
    return DISTILLATION_LOSSES[name]


def distillation_loss_and_gradient(
    name: str, student_q_values: th.Tensor, teacher_q_values: th.Tensor, temperature: float, gradient_scale: float = 1.0
) -> tuple[th.Tensor, th.Tensor]:
    """
    The distillation loss ``name`` and its gradient with respect to the student's Q-values, in closed form, without
    building an autograd graph. ``DistilledDQN.train`` hands the gradient to ``backward()`` at the Q-values: the same
    update as back-propagating the loss, without its few extra graph nodes (each costs microseconds, a sizeable share
    of a small student's update). The values and gradients equal the autograd functions above (tested).

    - ``kl``: ``T^2 * KL(p_T || p_S)`` with ``p = softmax(Q / T)``; gradient ``T * (p_S - p_T) / batch_size``
    - ``mse``: ``mean (Q_S - Q_T)^2``; gradient ``2 * (Q_S - Q_T) / (batch_size * n_actions)``
    - ``nll``: ``mean -log softmax(Q_S / T)[argmax Q_T]``; gradient ``(p_S - onehot(argmax Q_T)) / (T * batch_size)``

    :param name: One of ``DISTILLATION_LOSSES``
    :param student_q_values: Student Q-values, shape ``(batch_size, n_actions)``
    :param teacher_q_values: Teacher Q-values, same shape
    :param temperature: Softmax temperature ``T > 0`` (unused by ``mse``)
    :param gradient_scale: Factor of the gradient (not of the loss): ``train()`` passes alpha, the term's weight in L,
        which saves one tensor operation per update
    :return: (scalar loss, ``gradient_scale`` times its gradient with respect to ``student_q_values``), both without
        gradients
    """
    get_distillation_loss(name)
    _check_same_shape(student_q_values, teacher_q_values)
    with th.no_grad():
        batch_size = student_q_values.shape[0]
        if name == "mse":
            gap = student_q_values - teacher_q_values
            return gap.square().mean(), gap.mul_(2.0 * gradient_scale / gap.numel())
        if temperature != 1.0:
            student_q_values = student_q_values / temperature
        student_log_probs = F.log_softmax(student_q_values, dim=1)
        student_probs = student_log_probs.exp()
        if name == "nll":
            greedy_actions = teacher_q_values.argmax(dim=1, keepdim=True)
            loss = -student_log_probs.gather(1, greedy_actions).mean()
            return loss, student_probs.scatter_add_(1, greedy_actions, -th.ones_like(student_log_probs[:, :1])).mul_(
                gradient_scale / (temperature * batch_size)
            )
        teacher_log_probs = F.log_softmax(teacher_q_values if temperature == 1.0 else teacher_q_values / temperature, dim=1)
        teacher_probs = teacher_log_probs.exp()
        # T^2 * sum_i,a p_T (log p_T - log p_S) / B as one dot product: the value of F.kl_div(reduction="batchmean")
        # without its own exp of the targets and extra passes (a few microseconds per update)
        loss = th.dot(teacher_probs.view(-1), teacher_log_probs.sub_(student_log_probs).view(-1))
        gradient = student_probs.sub_(teacher_probs).mul_(gradient_scale * temperature / batch_size)
        return loss.mul_(temperature**2 / batch_size), gradient


def td_loss_and_gradient(
    current_q_values: th.Tensor, target_q_values: th.Tensor, gradient_scale: float = 1.0
) -> tuple[th.Tensor, th.Tensor]:
    """
    SB3 DQN's TD loss, the Huber loss ``F.smooth_l1_loss(current_q_values, target_q_values)`` (beta 1, mean over the
    batch), and its gradient with respect to ``current_q_values`` in closed form, ``clamp(Q - target, -1, 1) /
    batch_size``, without building an autograd graph (``DistilledDQN.train`` adds it to the distillation term's
    gradient and back-propagates both from the Q-values at once). With ``gradient_scale`` 1, the gradient is bit for bit
    autograd's (tested), so a DistilledDQN with alpha 0 trains exactly as SB3's DQN.

    :param current_q_values: The student's Q-values of the taken actions, shape ``(batch_size, 1)``
    :param target_q_values: Their TD targets, same shape
    :param gradient_scale: Factor of the gradient (not of the loss): ``train()`` passes ``1 - alpha``
    :return: (scalar loss, ``gradient_scale`` times its gradient with respect to ``current_q_values``), both without
        gradients
    """
    _check_same_shape(current_q_values, target_q_values, ("current_q_values", "target_q_values"), "(batch_size, 1)")
    with th.no_grad():
        loss = F.smooth_l1_loss(current_q_values, target_q_values)
        # d smooth_l1 / dx = x for |x| < 1, sign(x) beyond: a clamp
        gradient = (current_q_values - target_q_values).clamp_(-1.0, 1.0).mul_(gradient_scale / current_q_values.numel())
    return loss, gradient


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


# Terms between action distributions, for the students of the other families (PPO, SAC, TD3). Each returns one value per
# sample; the student averages it over its batch (PPD weighs each sample by its clipped ratio first).


def categorical_kl(
    teacher_values: th.Tensor, student_logits: th.Tensor, temperature: float = 1.0, reverse: bool = False
) -> th.Tensor:
    """
    Per-sample KL divergence between the teacher's and the student's softmaxed values at temperature T, times ``T^2``:
    ``T^2 * KL(softmax(Q_T / T) || softmax(z_S / T))`` (forward), or ``KL(student || teacher)`` with ``reverse``.

    :param teacher_values: The teacher's per-action values (Q-values, mean quantiles or logits), ``(batch, n_actions)``
    :param student_logits: The student's action logits, same shape; gradients flow through them
    :param temperature: Softmax temperature ``T > 0``
    :param reverse: KL(student || teacher) (mode-seeking) instead of KL(teacher || student) (mean-seeking)
    :return: Shape ``(batch,)``
    """
    _check_same_shape(student_logits, teacher_values, ("student_logits", "teacher_values"))
    # log_softmax on both sides: stable for small T
    teacher_log_probs = F.log_softmax(teacher_values.detach() / temperature, dim=1)
    student_log_probs = F.log_softmax(student_logits / temperature, dim=1)
    if reverse:
        per_sample = (student_log_probs.exp() * (student_log_probs - teacher_log_probs)).sum(dim=1)
    else:
        per_sample = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=1)
    return temperature**2 * per_sample


def gaussian_kl(mean_p: th.Tensor, log_std_p: th.Tensor, mean_q: th.Tensor, log_std_q: th.Tensor) -> th.Tensor:
    """
    Per-sample KL divergence between two diagonal Gaussians, ``KL(N(mean_p, std_p^2) || N(mean_q, std_q^2))`` summed
    over the action dimensions, in closed form:
    ``sum_d log(std_q / std_p) + (std_p^2 + (mean_p - mean_q)^2) / (2 std_q^2) - 1/2``.

    A KL is unchanged by the same invertible map on both sides: between SAC's pre-tanh Gaussians it is also the KL
    between the squashed policies.

    :param mean_p: Mean of the first distribution, ``(batch, action_dim)``
    :param log_std_p: Its log standard deviation, broadcastable to the mean's shape
    :param mean_q: Mean of the second distribution, same shape
    :param log_std_q: Its log standard deviation
    :return: Shape ``(batch,)``
    """
    _check_same_shape(mean_p, mean_q, ("mean_p", "mean_q"), "(batch_size, action_dim)")
    variance_ratio = th.exp(2.0 * (log_std_p - log_std_q))
    squared_gap = (mean_p - mean_q).square() * th.exp(-2.0 * log_std_q)
    per_dimension = (log_std_q - log_std_p) + 0.5 * (variance_ratio + squared_gap - 1.0)
    return per_dimension.sum(dim=-1)


def scaled_action_mse(student_actions: th.Tensor, teacher_actions: th.Tensor) -> th.Tensor:
    """
    Per-sample squared distance between two policies' (mean) actions in the env's scaled [-1, 1] space, averaged over
    the action dimensions: the term where either policy is deterministic (TD3), or where one squashes its Gaussian and
    the other does not.

    :param student_actions: The student's actions, ``(batch, action_dim)``; gradients flow through them
    :param teacher_actions: The teacher's, same shape; a constant target
    :return: Shape ``(batch,)``
    """
    _check_same_shape(student_actions, teacher_actions, ("student_actions", "teacher_actions"), "(batch_size, action_dim)")
    return (student_actions - teacher_actions.detach()).square().mean(dim=-1)


def ppd_weighted(per_sample_kl: th.Tensor, ratio: th.Tensor, clip_range: float) -> th.Tensor:
    """
    Proximal Policy Distillation's term: the forward KL of each sample weighted by the clipped probability ratio,
    ``mean(max(r, 1 - eps) * KL)``. Both factors are >= 0, so ``max(r * KL, clip(r, 1 - eps, 1 + eps) * KL)`` is this
    one; the gradient flows through the ratio too, as in PPD.

    Paper: https://openreview.net/forum?id=WfVXe88oMh (Spigler, Proximal Policy Distillation, TMLR 2025)

    :param per_sample_kl: KL(teacher || student) per sample, ``(batch,)``
    :param ratio: ``pi_new(a|s) / pi_old(a|s)`` of the sampled actions, ``(batch,)``
    :param clip_range: PPO's clip range eps
    :return: Scalar
    """
    _check_same_shape(per_sample_kl, ratio, ("per_sample_kl", "ratio"), "(batch_size,)")
    return (th.clamp(ratio, min=1.0 - clip_range) * per_sample_kl).mean()
