"""
What the students of continuous control share (SAC and TD3; PPO with Box actions takes the action MSE, the action gap
and the finite-loss check): the actor terms (a KL between SAC's pre-tanh Gaussians, the MSE between mean
actions in the env's scaled [-1, 1] space, where the teacher's come from ``Teacher.scaled_actions_of``), the critic term
(the teacher's critic on the replay batch's actions), and the checks and logs around them.

The terms are pure tensor functions; :class:`ContinuousOffPolicyDistillationMixin` holds the settings and state the two
students share, so that each student module says only where the terms enter its algorithm's losses.
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import PyTorchObs
from torch.nn import functional as F

from sb3_distill.common.checks import check_finite_loss
from sb3_distill.common.losses import gaussian_kl, scaled_action_mse
from sb3_distill.common.off_policy import OffPolicyDistillationMixin
from sb3_distill.common.pairs import KIND_FAMILIES, check_distill_loss_name, resolve_distill_loss
from sb3_distill.common.teacher import Teacher


def squashed_gaussian_kl_term(
    student_mean: th.Tensor,
    student_log_std: th.Tensor,
    teacher_mean: th.Tensor,
    teacher_log_std: th.Tensor,
    reverse: bool = False,
) -> th.Tensor:
    """
    The KL term between two tanh-squashed Gaussian policies, from their pre-tanh parameters: the mean over the batch of
    ``KL(teacher || student)`` (or ``KL(student || teacher)`` with ``reverse``), summed over the action dimensions.
    The same tanh on both sides leaves the KL unchanged, so it is also the KL between the squashed policies.

    :param student_mean: The student's pre-tanh mean, ``(batch, action_dim)``; gradients flow through it
    :param student_log_std: Its log standard deviation, broadcastable to the mean's shape
    :param teacher_mean: The teacher's pre-tanh mean, same shape; a constant target
    :param teacher_log_std: Its log standard deviation
    :param reverse: Whether to take the reverse KL, ``KL(student || teacher)`` (mode-seeking)
    :return: Scalar
    """
    teacher_mean, teacher_log_std = teacher_mean.detach(), teacher_log_std.detach()
    if reverse:
        per_sample = gaussian_kl(student_mean, student_log_std, teacher_mean, teacher_log_std)
    else:
        per_sample = gaussian_kl(teacher_mean, teacher_log_std, student_mean, student_log_std)
    # Mean over the batch of the per-sample KL (already summed over the action dimensions)
    return per_sample.mean()


def mean_action_mse_term(student_actions: th.Tensor, teacher_actions: th.Tensor) -> th.Tensor:
    """
    The MSE term between two policies' (mean) actions in the env's scaled [-1, 1] space: the mean over the batch and
    the action dimensions of ``(a_S - a_T)^2``.

    :param student_actions: The student's scaled mean actions, ``(batch, action_dim)``; gradients flow through them
    :param teacher_actions: The teacher's, same shape; a constant target
    :return: Scalar
    """
    return scaled_action_mse(student_actions, teacher_actions).mean()


def critic_distillation_loss(student_q_values: Sequence[th.Tensor], teacher_q_values: th.Tensor) -> th.Tensor:
    """
    The critic term: each of the student's critics regresses on the teacher's value of the same (observation, action),
    ``mean_i mean_batch (Q_S,i(s, a) - Q_T(s, a))^2``; averaged over the critics so that its scale does not grow with
    their number.

    :param student_q_values: Each student critic's values of the batch, ``(batch, 1)`` each; gradients flow through them
    :param teacher_q_values: The teacher's values of the same pairs, ``(batch, 1)``; a constant target
    :return: Scalar
    """
    teacher_q_values = teacher_q_values.detach()
    for q_values in student_q_values:
        if q_values.shape != teacher_q_values.shape:
            raise ValueError(
                f"A student critic's values have shape {tuple(q_values.shape)} but the teacher's have shape "
                f"{tuple(teacher_q_values.shape)}: both must be (batch_size, 1)"
            )
    # Mean over the critics of each one's MSE to the teacher's values
    return th.stack([F.mse_loss(q_values, teacher_q_values) for q_values in student_q_values]).mean()


def teacher_action_gap(student_actions: th.Tensor, teacher_actions: th.Tensor) -> th.Tensor:
    """
    How far the student's mean actions are from the teacher's: the mean over the batch and the action dimensions of
    ``|a_S - a_T|`` in the scaled [-1, 1] space (0: the same actions; 2: opposite bounds).

    :param student_actions: The student's scaled mean actions, ``(batch, action_dim)``
    :param teacher_actions: The teacher's, same shape
    :return: Scalar
    """
    return (student_actions - teacher_actions).abs().mean()


def check_critic_term(critic_term: Any, teacher: Teacher | None, vec_normalize: bool) -> None:
    """
    Fail unless the critic term can be computed: a bool, and when it is on, a teacher with a Q critic seeing raw
    observations.

    :param critic_term: The student's ``critic_term``
    :param teacher: Its prepared teacher (None: checked again when one is given)
    :param vec_normalize: Whether its env is wrapped in a ``VecNormalize``
    """
    if not isinstance(critic_term, (bool, np.bool_)):
        raise ValueError(f"critic_term={critic_term!r} must be True or False")
    if not critic_term or teacher is None:
        return
    if not teacher.has_critic:
        raise ValueError(
            f"critic_term=True needs a teacher with a Q critic (SAC, TQC, TD3, DDPG), but teacher {teacher.source} is a "
            f"{teacher.algorithm} teacher ({KIND_FAMILIES.get(teacher.kind, teacher.kind)}) without one: "
            "pass critic_term=False, or a teacher with a Q critic"
        )
    if vec_normalize:
        # The replay batch's observations come normalized with the student's running statistics; the teacher-value
        # cache keeps the actor's values of the raw ones only
        raise ValueError(
            f"critic_term=True is not supported with a VecNormalize env: the critic of teacher {teacher.source} would see "
            "the observations normalized with the student's statistics, not the raw ones. Pass critic_term=False "
            "(the actor term still sees raw observations through teacher_cache=True)"
        )


def check_finite_update(
    network: str, loss: float, own_loss: float, distill_loss: float | None, alpha: float, update: int, num_timesteps: int
) -> None:
    """
    Fail, before a network is updated, if its loss is NaN or inf (:func:`sb3_distill.common.checks.check_finite_loss`
    for one network of an actor-critic student).

    :param network: Which network the loss updates (``"actor"``, ``"critic"``, ``"policy"``)
    :param loss: The loss about to be minimised
    :param own_loss: Its part from the student's algorithm
    :param distill_loss: Its distillation term (None without a teacher)
    :param alpha: The weight of the distillation term
    :param update: The number of the update (gradient step), counted from 1 over the model's life
    :param num_timesteps: The model's ``num_timesteps``
    """
    check_finite_loss(loss, own_loss, distill_loss, alpha, update, num_timesteps, f"{network}_loss", network)


class ContinuousOffPolicyDistillationMixin(OffPolicyDistillationMixin):
    """
    What the SAC and TD3 students share, mixed in before the SB3 algorithm
    (``DistilledTD3(ContinuousOffPolicyDistillationMixin, TD3)``): the ``critic_term`` setting and its checks, the actor
    term resolved for the teacher (``distill_term``), the critic term on a batch, the mixing of each network's loss with
    its term (checked finite), and the logs (``train/alpha``, ``train/loss``, ``train/distill_loss``,
    ``train/critic_distill_loss``, ``train/teacher_action_gap``).
    """

    #: Whether the student's actor squashes a Gaussian with tanh (SAC: its mean actions are kept pre-tanh)
    squashed_student: ClassVar[bool] = False
    critic_term: bool
    #: The actor term used with the current teacher (``distill_loss``, or the pair's default); None without a teacher
    distill_term: str | None
    # Of the SB3 algorithm this is mixed into
    critic: Any

    def _init_continuous_distillation(self, critic_term: bool) -> None:
        """Set the critic term (called by the student's ``__init__`` before ``_init_distillation``)."""
        self.critic_term = critic_term
        self.distill_term = None
        # The last batch the actor term saw, (student's mean actions, teacher's values), until the gap is logged
        self._action_gap_batch: tuple[th.Tensor, th.Tensor] | None = None

    def _check_settings(self) -> None:
        super()._check_settings()
        check_distill_loss_name(self.student_algorithm, self.distill_loss)
        check_critic_term(self.critic_term, None, vec_normalize=False)

    def _setup_teacher(self) -> None:
        super()._setup_teacher()
        self.distill_term = None
        if self.teacher is not None:
            self.distill_term = resolve_distill_loss(self.student_algorithm, self.teacher, self.distill_loss)
        check_critic_term(self.critic_term, self.teacher, vec_normalize=self._vec_normalize_env is not None)

    def _check_teacher_ready(self) -> None:
        super()._check_teacher_ready()
        # set_env() may have brought a VecNormalize since the teacher was checked
        check_critic_term(self.critic_term, self.teacher, vec_normalize=self._vec_normalize_env is not None)

    def _critic_distillation_term(
        self, observations: PyTorchObs, actions: th.Tensor, student_q_values: Sequence[th.Tensor]
    ) -> th.Tensor:
        """
        The critic term on a batch: the student's critics against the teacher's critic on the same (scaled) actions.

        :param observations: The batch's observations (raw: refused with a ``VecNormalize`` env)
        :param actions: The batch's actions, in the scaled [-1, 1] space as the replay buffer stores them
        :param student_q_values: Each student critic's values of the batch
        :return: Scalar
        """
        assert self.teacher is not None
        return critic_distillation_loss(student_q_values, self.teacher.critic_values(observations, actions))

    def _mixed_loss(
        self, network: str, own_loss: th.Tensor, distill_loss: th.Tensor | None, alpha: float, update: int
    ) -> tuple[th.Tensor, float, float | None, float]:
        """
        The loss that updates ``network``, ``(1 - alpha) * own_loss + alpha * distill_loss`` (``own_loss`` alone without a
        term), its parts' values read at once, and checked finite before any weight moves.

        :param network: Which network the loss updates (``"actor"``, ``"critic"``), for the message
        :param own_loss: The algorithm's own loss
        :param distill_loss: The distillation term, or None
        :param alpha: The weight of the term
        :param update: The number of the update, for the message
        :return: (the loss to minimise, the own loss's value, the term's value or None, the loss's value)
        """
        if distill_loss is None:
            own_value = own_loss.item()
            check_finite_update(network, own_value, own_value, None, alpha, update, self.num_timesteps)
            return own_loss, own_value, None, own_value
        # The algorithm's own loss and the distillation term, weighted by alpha
        loss = (1.0 - alpha) * own_loss + alpha * distill_loss
        own_value, distill_value = th.stack((own_loss.detach(), distill_loss.detach())).tolist()
        loss_value = (1.0 - alpha) * own_value + alpha * distill_value
        check_finite_update(network, loss_value, own_value, distill_value, alpha, update, self.num_timesteps)
        return loss, own_value, distill_value, loss_value

    def _record_train_logs(
        self, alpha: float, losses: list[float], distill_losses: list[float], critic_distill_losses: list[float]
    ) -> None:
        """
        Log what the distillation adds to the algorithm's own ``train/...`` keys, as means over a ``train()`` call.

        :param alpha: The weight of the terms (``train/alpha``; SAC's entropy coefficient is ``train/ent_coef``)
        :param losses: The actor's mixed losses (``train/loss``)
        :param distill_losses: The actor terms (``train/distill_loss``)
        :param critic_distill_losses: The critic terms (``train/critic_distill_loss``)
        """
        self.logger.record("train/alpha", alpha)
        for key, values in (
            ("train/loss", losses),
            ("train/distill_loss", distill_losses),
            ("train/critic_distill_loss", critic_distill_losses),
        ):
            if values:
                self.logger.record(key, float(np.mean(values)))

    def _keep_action_gap_batch(self, student_actions: th.Tensor, teacher_values: th.Tensor) -> None:
        """
        Keep the batch the actor term just saw, for ``train/teacher_action_gap`` when the logs are written.

        :param student_actions: The student's mean actions: scaled, or pre-tanh for a squashed student
            (``squashed_student``)
        :param teacher_values: The teacher's values of the batch
        """
        self._action_gap_batch = (student_actions.detach(), teacher_values)

    def _record_distillation_logs(self) -> None:
        """
        Log ``train/teacher_action_gap`` on the last batch the actor term saw, if one came since the logs were last
        written (computed here rather than on every update, as DQN's ``train/teacher_agreement``).
        """
        if self._action_gap_batch is not None and self.teacher is not None:
            student_actions, teacher_values = self._action_gap_batch
            if self.squashed_student:
                student_actions = th.tanh(student_actions)
            gap = teacher_action_gap(student_actions, self.teacher.scaled_actions_of(teacher_values))
            self.logger.record("train/teacher_action_gap", gap.item())
        self._action_gap_batch = None

    def _excluded_save_params(self) -> list[str]:
        # The term follows the teacher, which is never saved; the last batch is for the logs only
        return [*super()._excluded_save_params(), "distill_term", "_action_gap_batch"]
