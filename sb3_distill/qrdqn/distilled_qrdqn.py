from typing import Any, ClassVar

import numpy as np
import torch as th
from sb3_contrib import QRDQN
from sb3_contrib.common.utils import quantile_huber_loss
from sb3_contrib.qrdqn.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, QRDQNPolicy
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, PyTorchObs, Schedule

from sb3_distill.common.alpha import AlphaLike
from sb3_distill.common.checks import check_finite_loss
from sb3_distill.common.losses import distillation_loss_and_gradient, get_distillation_loss, teacher_agreement
from sb3_distill.common.off_policy import OffPolicyDistillationMixin
from sb3_distill.common.offline import train_with_target_updates
from sb3_distill.common.teacher import Teacher, TeacherLike
from sb3_distill.common.teacher_values import QRDQNValues


def teacher_quantiles(teacher: Teacher, observations: PyTorchObs) -> th.Tensor:
    """
    The quantiles of a QR-DQN teacher (``teacher.kind == "quantiles"``) for every action, never cached.

    :param teacher: The prepared teacher
    :param observations: A batch of observations on the teacher's device (raw: normalized here with the teacher's own
        frozen statistics if it has them)
    :return: Shape ``(batch_size, teacher's n_quantiles, n_actions)``, without gradients
    """
    network = teacher.network
    if not isinstance(network, QRDQNValues):
        raise TypeError(f"Teacher {teacher.source} is a {teacher.algorithm} teacher ({teacher.kind}): it has no quantiles")
    with th.no_grad():
        if teacher.observation_normalizer is not None:
            observations = teacher.observation_normalizer(observations)
        quantiles = network.quantile_net(observations)
    # As Teacher.values checks its values: a NaN or inf here would silently poison the student's update
    if not th.isfinite(quantiles).all():
        raise ValueError(
            f"Teacher {teacher.source} gave non-finite quantiles (NaN or inf) on a batch of {len(quantiles)} observations: "
            "its weights (or its inputs) are broken; check the teacher file or model"
        )
    return quantiles


def quantile_matching_loss(student_quantiles: th.Tensor, teacher_quantiles: th.Tensor) -> th.Tensor:
    """
    QR-DQN's quantile Huber loss of the student's quantiles of every action towards the teacher's quantiles of the same
    action: summed over the student's quantiles, averaged over the teacher's, the samples and the actions. The teacher
    may have another number of quantiles than the student.

    :param student_quantiles: The student's quantiles, ``(batch_size, n_quantiles, n_actions)``; gradients flow
        through them
    :param teacher_quantiles: The teacher's, ``(batch_size, n_teacher_quantiles, n_actions)``; a constant target
    :return: Scalar loss
    """
    if (
        student_quantiles.ndim != 3
        or teacher_quantiles.ndim != 3
        or student_quantiles.shape[0] != teacher_quantiles.shape[0]
        or student_quantiles.shape[2] != teacher_quantiles.shape[2]
    ):
        raise ValueError(
            f"student_quantiles has shape {tuple(student_quantiles.shape)} and teacher_quantiles "
            f"{tuple(teacher_quantiles.shape)}: both must be (batch_size, n_quantiles, n_actions), with the same batch "
            "size and n_actions"
        )
    # One return distribution per (sample, action): (batch, n_quantiles, n_actions) -> (batch * n_actions, n_quantiles)
    student_per_action = student_quantiles.transpose(1, 2).reshape(-1, student_quantiles.shape[1])
    teacher_per_action = teacher_quantiles.detach().transpose(1, 2).reshape(-1, teacher_quantiles.shape[1])
    # The teacher's quantiles play the part of the TD target quantiles in QR-DQN's loss
    return quantile_huber_loss(student_per_action, teacher_per_action, sum_over_quantiles=True)


def quantile_distillation_loss(
    student_quantiles: th.Tensor,
    teacher_values: th.Tensor,
    distill_loss: str = "kl",
    temperature: float = 1.0,
    teacher_quantiles: th.Tensor | None = None,
) -> th.Tensor:
    """
    The distillation term of a QR-DQN student: the DQN student's term (``common.losses``) on the student's Q-values,
    the mean over its quantiles, plus, given the teacher's quantiles, :func:`quantile_matching_loss`.

    :param student_quantiles: The student's quantiles, ``(batch_size, n_quantiles, n_actions)``; gradients flow
        through them
    :param teacher_values: The teacher's per-action values (``Teacher.values``), ``(batch_size, n_actions)``
    :param distill_loss: The term on the values: ``"kl"``, ``"mse"`` or ``"nll"``
    :param temperature: Softmax temperature ``T > 0`` (unused by ``"mse"``)
    :param teacher_quantiles: The teacher's quantiles, ``(batch_size, n_teacher_quantiles, n_actions)``, or None for
        no quantile term
    :return: Scalar loss
    """
    # The student's Q-values: the mean over its quantiles, (batch, n_quantiles, n_actions) -> (batch, n_actions)
    student_q_values = student_quantiles.mean(dim=1)
    # The term on the values, e.g. T^2 KL(softmax(Q_T / T) || softmax(Q_S / T))
    loss = get_distillation_loss(distill_loss)(student_q_values, teacher_values, temperature)
    if teacher_quantiles is None:
        return loss
    # The whole return distribution of each action, not only its mean
    return loss + quantile_matching_loss(student_quantiles, teacher_quantiles)


class DistilledQRDQN(OffPolicyDistillationMixin, QRDQN):
    """
    Quantile Regression DQN distilled from a pretrained teacher (policy distillation).

    The loss is sb3-contrib QR-DQN's quantile Huber loss mixed with a distillation term on the student's Q-values, the
    mean over its quantiles: ``L = (1 - alpha) * L_QR + alpha * L_distill``, where by default
    ``L_distill = T^2 * KL(softmax(Q_T / T) || softmax(Q_S / T))`` (or another term, ``distill_loss``). When the teacher
    is itself a QR-DQN and ``quantile_term`` is True, ``L_distill`` also holds the quantile Huber loss of the student's
    quantiles of every action towards the teacher's quantiles of the same action (averaged over samples and actions),
    so that the student learns the teacher's return distributions, not only their means. ``alpha="performance"``
    follows QDagger, and ``offline_transitions > 0`` runs its offline phase, as for ``DistilledDQN``.

    Paper: https://arxiv.org/abs/1710.10044 (QR-DQN), https://arxiv.org/abs/1511.06295 (Policy Distillation),
    https://arxiv.org/abs/2206.01626 (QDagger)

    Security: a teacher given as a path is read without unpickling anything; ``trust_teacher=True`` loads it with SB3's
    own loader instead, which can run arbitrary code from the file: only for files from a source you trust.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ...)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param teacher: The teacher, with the same observation and action spaces as ``env``: path to an SB3 model zip or
        RL Zoo log folder, a loaded SB3 model (DQN, QRDQN, or PPO, A2C, TRPO, MaskablePPO whose action logits play the
        part of Q-values), or a ``Teacher``. Required unless ``alpha`` is 0. It is never saved with the student.
    :param alpha: Weight of the distillation term, in [0, 1] (0: plain QR-DQN, 1: distillation only), or a schedule of
        the current progress remaining (from 1 to 0), or ``"performance"`` for QDagger's weight
        ``max(alpha_min, alpha_0 * clip(1 - s, 0, 1))``, where ``s`` is the normalized score of the student's recent
        training episodes. Logged as ``train/alpha``
    :param temperature: Softmax temperature ``T > 0`` applied to both teacher and student Q-values (to the student's
        only with ``distill_loss="nll"``; unused by ``"mse"`` and by the quantile term)
    :param distill_loss: The term on the Q-values: ``"kl"`` (default, the temperature-scaled KL above), ``"mse"`` (mean
        over batch and actions of ``(Q_S - Q_T)^2``) or ``"nll"`` (cross-entropy of ``softmax(Q_S / T)`` on the
        teacher's greedy action)
    :param quantile_term: With a QR-DQN teacher, add the quantile Huber loss towards the teacher's quantiles to the
        distillation term (the teacher's quantiles are computed on each batch, not cached). No effect with other
        teachers. Not available with a ``VecNormalize`` env (the batches' observations are the student's normalized
        ones): set it to False there
    :param alpha_0: With ``alpha="performance"``: the weight while the student scores 0 or less (QDagger's c), in [0, 1]
    :param alpha_min: With ``alpha="performance"``: the least weight, in [0, alpha_0], kept once the student scores at
        its teacher's level
    :param teacher_return: With ``alpha="performance"``: the teacher's mean return, on the scale of the training
        episodes' returns. None: measured once at the start of the first ``learn()``
    :param random_return: With ``alpha="performance"``: a uniformly random policy's mean return, below
        ``teacher_return``. None: measured like ``teacher_return``
    :param performance_eval_episodes: Episodes of each measurement of ``teacher_return`` and ``random_return``
    :param offline_transitions: QDagger's offline phase: before the first ``learn()``'s own steps, the teacher acts in
        the training env for this many transitions, stored in the replay buffer (not counted in ``num_timesteps``).
        0 (default): no offline phase
    :param offline_gradient_steps: Gradient steps of the student (the same loss) on the replay buffer at the end of
        the offline phase; the target network is updated every ``target_update_interval`` of them and at the end
    :param offline_epsilon: Probability of a random action instead of the teacher's greedy one in the offline phase
    :param teacher_cache: Evaluate the teacher's values once per stored transition and keep them in the replay buffer,
        instead of on every sampled batch. None (default): kept where the buffer allows, silently; True: the same,
        with a warning where it has no effect; False: evaluated on each batch
    :param trust_teacher: Whether a teacher given as a path comes from a source you trust (SB3's full loader, which can
        run code from the file, and the Zoo run's ``vecnormalize.pkl``). No effect on a teacher given as an object
    :param learning_rate: The learning rate, it can be a function
        of the current progress remaining (from 1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1) default 1 for hard update
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps. Alternatively pass a tuple of frequency and unit
        like ``(5, "step")`` or ``(2, "episode")``.
    :param gradient_steps: How many gradient steps to do after each rollout (see ``train_freq``)
        Set to ``-1`` means to do as many gradient steps as steps done in the environment
        during the rollout.
    :param replay_buffer_class: Replay buffer class to use (for instance ``HerReplayBuffer``).
        If ``None``, it will be automatically selected.
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation.
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
        at a cost of more complexity.
    :param n_steps: When n_step > 1, uses n-step return (with the NStepReplayBuffer) when updating the quantile network.
    :param target_update_interval: update the target network every ``target_update_interval``
        environment steps.
    :param exploration_fraction: fraction of entire training period over which the exploration rate is reduced
    :param exploration_initial_eps: initial value of random action probability
    :param exploration_final_eps: final value of random action probability
    :param max_grad_norm: The maximum value for the gradient clipping (if None, no clipping)
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation (e.g. ``n_quantiles``)
    :param verbose: the verbosity level: 0 no output, 1 info, 2 debug
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    student_algorithm = "QRDQN"
    #: Whether updates without the quantile term hand the value term's closed-form gradient to ``backward()`` (the same
    #: update as back-propagating the loss, tested, with fewer graph nodes: a smaller overhead per update)
    closed_form_gradient: ClassVar[bool] = True

    def __init__(
        self,
        policy: str | type[QRDQNPolicy],
        env: GymEnv | str,
        teacher: TeacherLike | None = None,
        alpha: AlphaLike = 0.5,
        temperature: float = 1.0,
        teacher_cache: bool | None = None,
        trust_teacher: bool = False,
        distill_loss: str = "kl",
        quantile_term: bool = True,
        alpha_0: float = 1.0,
        alpha_min: float = 0.0,
        teacher_return: float | None = None,
        random_return: float | None = None,
        performance_eval_episodes: int = 10,
        offline_transitions: int = 0,
        offline_gradient_steps: int = 0,
        offline_epsilon: float = 0.01,
        learning_rate: float | Schedule = 5e-5,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 32,
        tau: float = 1.0,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 4,
        gradient_steps: int = 1,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        target_update_interval: int = 10000,
        exploration_fraction: float = 0.005,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.01,
        max_grad_norm: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            target_update_interval=target_update_interval,
            exploration_fraction=exploration_fraction,
            exploration_initial_eps=exploration_initial_eps,
            exploration_final_eps=exploration_final_eps,
            max_grad_norm=max_grad_norm,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        # Before _init_distillation, which checks the settings
        self.quantile_term = quantile_term
        self._init_off_policy_distillation(teacher_cache, offline_transitions, offline_gradient_steps, offline_epsilon)
        self._init_distillation(
            teacher, alpha, temperature, trust_teacher, distill_loss, alpha_0, alpha_min, teacher_return, random_return,
            performance_eval_episodes,
        )  # fmt: skip
        # The last batch trained on, (student's quantiles, teacher's values), until train/teacher_agreement is logged
        self._agreement_batch: tuple[th.Tensor, th.Tensor] | None = None
        if _init_setup_model:
            self._check_teacher_given()
            self._setup_model()

    def _check_settings(self) -> None:
        super()._check_settings()
        get_distillation_loss(self.distill_loss)  # type: ignore[arg-type]
        if not isinstance(self.quantile_term, (bool, np.bool_)):
            raise TypeError(f"quantile_term={self.quantile_term!r} must be True or False")

    def _uses_quantile_term(self) -> bool:
        """Whether the distillation term holds the quantile term (a QR-DQN teacher and ``quantile_term``)."""
        return bool(self.quantile_term) and self.teacher is not None and self.teacher.kind == "quantiles"

    def _check_teacher_ready(self) -> None:
        super()._check_teacher_ready()
        if self._uses_quantile_term() and self._vec_normalize_env is not None:
            # The teacher's quantiles are computed on the batch, whose observations VecNormalize normalized for the student
            raise ValueError(
                f"quantile_term={self.quantile_term!r} with a VecNormalize env: the teacher's quantiles would be computed "
                "on observations normalized with the student's statistics; pass quantile_term=False (the term on the "
                "Q-values still reads the teacher's values of the raw observations from the replay buffer)"
            )

    def _distillation_term(self, student_quantiles: th.Tensor, replay_data: Any) -> tuple[th.Tensor, th.Tensor]:
        """
        The distillation term on a sampled batch (:func:`quantile_distillation_loss`).

        :param student_quantiles: The student's quantiles of the batch's observations, all actions
        :param replay_data: The batch (with ``teacher_q_values`` if the replay buffer keeps them)
        :return: (scalar loss, with gradients through ``student_quantiles``; the teacher's values of the observations)
        """
        assert self.teacher is not None
        teacher_values = self._teacher_values_of(replay_data.observations, replay_data)
        quantiles = teacher_quantiles(self.teacher, replay_data.observations) if self._uses_quantile_term() else None
        # distill_loss is one of the terms' names: _check_settings checked it
        distill_loss: str = self.distill_loss  # type: ignore[assignment]
        loss = quantile_distillation_loss(student_quantiles, teacher_values, distill_loss, self.temperature, quantiles)
        return loss, teacher_values

    def _value_term_and_gradient(
        self, student_quantiles: th.Tensor, replay_data: Any, alpha: float
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        The term on the Q-values (no quantile term) and ``alpha`` times its gradient at the student's quantiles, in
        closed form (:func:`sb3_distill.common.losses.distillation_loss_and_gradient`): the Q-values are the mean over
        the quantiles, so each quantile gets the Q-value's gradient divided by their number.

        :return: (scalar loss, the gradient, shaped as ``student_quantiles``, the teacher's values)
        """
        teacher_values = self._teacher_values_of(replay_data.observations, replay_data)
        distill_loss: str = self.distill_loss  # type: ignore[assignment]
        with th.no_grad():
            n_quantiles = student_quantiles.shape[1]
            loss, q_gradient = distillation_loss_and_gradient(
                distill_loss, student_quantiles.mean(dim=1), teacher_values, self.temperature, alpha / n_quantiles
            )
        return loss, q_gradient.unsqueeze(1).expand_as(student_quantiles), teacher_values

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self._check_teacher_ready()
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update learning rate according to schedule
        self._update_learning_rate(self.policy.optimizer)
        alpha = self._current_alpha()
        self._prepare_teacher_values()

        qr_losses, distill_losses, losses = [], [], []
        for gradient_step in range(gradient_steps):
            # Sample replay buffer (with the teacher's values of the raw observations)
            replay_data = self._sample_replay(batch_size)
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            with th.no_grad():
                # Compute the quantiles of next observation
                next_quantiles = self.quantile_net_target(replay_data.next_observations)
                # Compute the greedy actions which maximize the next Q values
                next_greedy_actions = next_quantiles.mean(dim=1, keepdim=True).argmax(dim=2, keepdim=True)
                # Make "n_quantiles" copies of actions, and reshape to (batch_size, n_quantiles, 1)
                next_greedy_actions = next_greedy_actions.expand(batch_size, self.n_quantiles, 1)
                # Follow greedy policy: use the one with the highest Q values
                next_quantiles = next_quantiles.gather(dim=2, index=next_greedy_actions).squeeze(dim=2)
                # 1-step TD target
                target_quantiles = replay_data.rewards + (1 - replay_data.dones) * discounts * next_quantiles

            # Get current quantile estimates for all actions (the distillation term needs all of them)
            all_quantiles = self.quantile_net(replay_data.observations)

            # Make "n_quantiles" copies of actions, and reshape to (batch_size, n_quantiles, 1).
            actions = replay_data.actions[..., None].long().expand(batch_size, self.n_quantiles, 1)
            # Retrieve the quantiles for the actions from the replay buffer
            current_quantiles = th.gather(all_quantiles, dim=2, index=actions).squeeze(dim=2)

            # Compute Quantile Huber loss, summing over a quantile dimension as in the paper.
            qr_loss = quantile_huber_loss(current_quantiles, target_quantiles, sum_over_quantiles=True)

            # The gradient of the value term at the quantiles, in closed form (None: the loss goes through autograd)
            quantile_gradient = None
            if self.teacher is None:
                loss = qr_loss
                qr_loss_value, distill_loss_value = qr_loss.item(), None
                loss_value = qr_loss_value
            else:
                if self.closed_form_gradient and not self._uses_quantile_term():
                    distill_loss, quantile_gradient, teacher_values = self._value_term_and_gradient(
                        all_quantiles, replay_data, alpha
                    )
                    loss = qr_loss
                else:
                    distill_loss, teacher_values = self._distillation_term(all_quantiles, replay_data)
                    # L = (1 - alpha) * L_QR + alpha * L_distill
                    loss = (1.0 - alpha) * qr_loss + alpha * distill_loss
                # Both values in one read
                qr_loss_value, distill_loss_value = th.stack((qr_loss.detach(), distill_loss.detach())).tolist()
                loss_value = (1.0 - alpha) * qr_loss_value + alpha * distill_loss_value
                distill_losses.append(distill_loss_value)
            # A NaN or inf loss would make every weight NaN at once: stop before the gradient reaches them
            check_finite_loss(
                loss_value, qr_loss_value, distill_loss_value, alpha, self._n_updates + gradient_step + 1,
                self.num_timesteps, own_loss_name="qr_loss",
            )  # fmt: skip
            qr_losses.append(qr_loss_value)
            losses.append(loss_value)

            # Optimize the policy
            self.policy.optimizer.zero_grad()
            if quantile_gradient is None:
                loss.backward()
            else:
                # The same update as ((1 - alpha) * L_QR + alpha * L_distill).backward() (tested), without the value
                # term's graph nodes: (1 - alpha) at the QR loss, the term's closed-form gradient at the quantiles
                th.autograd.backward((qr_loss, all_quantiles), (qr_loss.new_tensor(1.0 - alpha), quantile_gradient))
            # Clip gradient norm
            if self.max_grad_norm is not None:
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()

        # Increase update counter
        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))
        self.logger.record("train/qr_loss", float(np.mean(qr_losses)))
        self.logger.record("train/alpha", alpha)
        if distill_losses:
            self.logger.record("train/distill_loss", float(np.mean(distill_losses)))
            # train/teacher_agreement: on the call's last batch, computed when the logs are written
            self._agreement_batch = (all_quantiles.detach(), teacher_values)

    def _record_distillation_logs(self) -> None:
        """
        Log ``train/teacher_agreement``, the share of the last batch trained on where the student's greedy action (on the
        mean of its quantiles) was the teacher's, if a batch came since the logs were last written.
        """
        if self._agreement_batch is not None:
            student_quantiles, teacher_values = self._agreement_batch
            agreement = teacher_agreement(student_quantiles.mean(dim=1), teacher_values).item()
            self.logger.record("train/teacher_agreement", agreement)
            self._agreement_batch = None

    def _train_offline(self, gradient_steps: int) -> None:
        train_with_target_updates(self, gradient_steps, self.quantile_net, self.quantile_net_target)

    def _excluded_save_params(self) -> list[str]:
        # The last batch is for the logs only
        return [*super()._excluded_save_params(), "_agreement_batch"]
