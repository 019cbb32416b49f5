import math
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, PyTorchObs, Schedule
from stable_baselines3.dqn.policies import CnnPolicy, DQNPolicy, MlpPolicy, MultiInputPolicy

from sb3_distill.common.alpha import AlphaLike
from sb3_distill.common.checks import check_finite_loss
from sb3_distill.common.losses import (
    distillation_loss_and_gradient,
    get_distillation_loss,
    td_loss_and_gradient,
    teacher_agreement,
)
from sb3_distill.common.off_policy import OffPolicyDistillationMixin
from sb3_distill.common.offline import train_with_target_updates
from sb3_distill.common.teacher import TeacherLike

SelfDistilledDQN = TypeVar("SelfDistilledDQN", bound="DistilledDQN")


class DistilledDQN(OffPolicyDistillationMixin, DQN):
    """
    Deep Q-Network distilled from a pretrained teacher (policy distillation).

    The loss is SB3 DQN's TD loss mixed with a temperature-scaled KL term between the teacher's and the
    student's softmaxed Q-values on the sampled batch:
    ``L = (1 - alpha) * L_TD + alpha * T^2 * KL(softmax(Q_T / T) || softmax(Q_S / T))``
    (or another distillation term, ``distill_loss``). With ``alpha="performance"`` the weight follows QDagger: it decays
    from ``alpha_0`` to ``alpha_min`` (0 by default) as the student's recent training return nears the teacher's. With
    ``offline_transitions > 0`` the teacher first fills the replay buffer and the student trains on it, before its own
    first step (QDagger's offline phase).

    Paper: https://arxiv.org/abs/1511.06295 (Policy Distillation), https://arxiv.org/abs/1503.02531,
    https://arxiv.org/abs/2206.01626 (QDagger)

    Security: a teacher given as a path is read without unpickling anything (its network is rebuilt from the zip's
    readable fields and its weights loaded with ``weights_only=True``), so an untrusted teacher file cannot run code.
    ``trust_teacher=True`` loads it with SB3's own loader instead, which unpickles the zip and can run arbitrary code
    from it, and reads the pickled ``vecnormalize.pkl`` of a Zoo run: only for files from a source you trust.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ...)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param teacher: The teacher, with the same observation and action spaces as ``env``: path to an SB3 model zip or
        RL Zoo log folder, a loaded SB3 model (DQN, QRDQN, or PPO, A2C, TRPO, MaskablePPO whose action logits play the
        part of Q-values), or a ``Teacher``. Required unless ``alpha`` is 0. It is never saved with the student.
    :param alpha: Weight of the distillation term, in [0, 1] (0: plain DQN, 1: distillation only),
        or a schedule of the current progress remaining (from 1 to 0), or ``"performance"`` for QDagger's weight
        ``max(alpha_min, alpha_0 * clip(1 - s, 0, 1))``, where ``s = (G_student - G_random) / (G_teacher - G_random)``
        is the normalized score of the mean return of the student's recent training episodes (SB3's ``ep_info_buffer``, the
        last ``stats_window_size``; ``alpha_0`` before any episode finished). Logged as ``train/alpha`` and
        ``train/student_score``
    :param temperature: Softmax temperature ``T > 0`` applied to both teacher and student Q-values (to the student's
        only with ``distill_loss="nll"``; unused by ``"mse"``)
    :param distill_loss: The distillation term: ``"kl"`` (default, the temperature-scaled KL above), ``"mse"`` (mean
        over batch and actions of ``(Q_S - Q_T)^2``, no temperature) or ``"nll"`` (cross-entropy of
        ``softmax(Q_S / T)`` on the teacher's greedy action)
    :param alpha_0: With ``alpha="performance"``: the weight while the student scores 0 or less (QDagger's c), in [0, 1]
    :param alpha_min: With ``alpha="performance"``: the least weight, in [0, alpha_0], kept once the student scores at
        its teacher's level. 0 (default): QDagger's rule, the student leaves the teacher once it matches it; a tiny
        student then trained by its TD loss alone may fall away from the teacher's level again
    :param teacher_return: With ``alpha="performance"``: the teacher's mean return G_teacher, on the scale of the
        training episodes' returns. None: measured once at the start of the first ``learn()``, over
        ``performance_eval_episodes`` deterministic episodes on a copy of the training env made from its spec
        (when the env cannot be remade that way, e.g. SB3's Atari wrappers, give it)
    :param random_return: With ``alpha="performance"``: a uniformly random policy's mean return G_random, below
        ``teacher_return``. None: measured like ``teacher_return``
    :param performance_eval_episodes: Episodes of each measurement of ``teacher_return`` and ``random_return``
    :param offline_transitions: QDagger's offline phase: before the first ``learn()``'s own steps, the teacher acts in
        the training env (epsilon-greedy on its values) for this many transitions (rounded up to a multiple of the
        number of envs), stored in the replay buffer; counted in ``teacher_transitions``, not in ``num_timesteps``
        (``learning_starts``, the exploration schedule and the target updates count the student's own steps).
        0 (default): no offline phase. Runs once per model (``offline_done``); ``run_offline_phase()`` runs it early
    :param offline_gradient_steps: Gradient steps of the student (the same loss) on the replay buffer at the end of
        the offline phase; the target network is updated every ``target_update_interval`` of them (divided by the
        number of envs, as DQN counts it) and at the end.
        0: the teacher's transitions only fill the buffer
    :param offline_epsilon: Probability of a random action instead of the teacher's greedy one in the offline phase
    :param teacher_cache: Evaluate the teacher once per stored transition (in one batched pass over the
        transitions added since the last pass, when a sampled batch first includes one) and keep its values in the
        replay buffer, instead of on every sampled batch. Costs ``n_actions`` float32 per stored transition. Works
        with SB3's ``ReplayBuffer``, ``DictReplayBuffer`` and ``NStepReplayBuffer``; with other buffers (HER) the teacher
        is evaluated on each batch. None (default): kept where the buffer allows, silently; True: the same, with a
        warning where it has no effect; False: evaluated on each batch. With a ``VecNormalize`` env the teacher sees the
        raw observations either way (the stored ones, or the sampled ones before they are normalized).
    :param trust_teacher: Whether a teacher given as a path comes from a source you trust. False (default): it is
        read without unpickling. True: SB3's full loader (which can run code from the file) and the Zoo run's
        ``vecnormalize.pkl`` statistics are used. Has no effect on a teacher given as an object.
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
    :param n_steps: When n_step > 1, uses n-step return (with the NStepReplayBuffer) when updating the Q-value network.
    :param target_update_interval: update the target network every ``target_update_interval``
        environment steps.
    :param exploration_fraction: fraction of entire training period over which the exploration rate is reduced
    :param exploration_initial_eps: initial value of random action probability
    :param exploration_final_eps: final value of random action probability
    :param max_grad_norm: The maximum value for the gradient clipping
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 for no output, 1 for info messages (such as device or wrappers used), 2 for
        debug messages
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
    student_algorithm = "DQN"
    #: Always a term's name for a DQN student ("kl" by default; the other students take None for their pair's default)
    distill_loss: str

    def __init__(
        self,
        policy: str | type[DQNPolicy],
        env: GymEnv | str,
        teacher: TeacherLike | None = None,
        alpha: AlphaLike = 0.5,
        temperature: float = 1.0,
        teacher_cache: bool | None = None,
        trust_teacher: bool = False,
        distill_loss: str = "kl",
        alpha_0: float = 1.0,
        alpha_min: float = 0.0,
        teacher_return: float | None = None,
        random_return: float | None = None,
        performance_eval_episodes: int = 10,
        offline_transitions: int = 0,
        offline_gradient_steps: int = 0,
        offline_epsilon: float = 0.01,
        learning_rate: float | Schedule = 1e-4,
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
        exploration_fraction: float = 0.1,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        max_grad_norm: float = 10,
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
        self._init_off_policy_distillation(teacher_cache, offline_transitions, offline_gradient_steps, offline_epsilon)
        self._init_distillation(
            teacher, alpha, temperature, trust_teacher, distill_loss, alpha_0, alpha_min, teacher_return, random_return,
            performance_eval_episodes,
        )  # fmt: skip
        # The last batch trained on, (student's Q-values, teacher's), until train/teacher_agreement is logged
        self._agreement_batch: tuple[th.Tensor, th.Tensor] | None = None
        if _init_setup_model:
            self._check_teacher_given()
            self._setup_model()

    def _check_settings(self) -> None:
        super()._check_settings()
        get_distillation_loss(self.distill_loss)

    def _distillation_terms(
        self,
        observations: PyTorchObs,
        student_q_values: th.Tensor,
        teacher_q_values: th.Tensor | None = None,
        gradient_scale: float = 1.0,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        The distillation loss on a batch and its gradient at the student's Q-values.

        :param observations: The sampled observations
        :param student_q_values: The student's Q-values for all actions on them
        :param teacher_q_values: The teacher's values of the observations if the replay buffer kept them,
            else None to evaluate the teacher now
        :param gradient_scale: Factor of the gradient (``train()`` passes alpha)
        :return: (distillation loss, ``gradient_scale`` times its gradient with respect to ``student_q_values``, the
            teacher's values of the observations), none of them with gradients
        """
        assert self.teacher is not None
        if teacher_q_values is None:
            teacher_q_values = self.teacher.q_values(observations)
        loss, gradient = distillation_loss_and_gradient(
            self.distill_loss, student_q_values, teacher_q_values, self.temperature, gradient_scale
        )
        return loss, gradient, teacher_q_values

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self._check_teacher_ready()
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update learning rate according to schedule
        self._update_learning_rate(self.policy.optimizer)
        alpha = self._current_alpha()
        self._prepare_teacher_values()

        # Each tensor operation costs microseconds, a sizeable share of a small student's update: both terms' gradients
        # are taken in closed form at the Q-values and back-propagated through the network at once, the step's values
        # are read together, and the greedy agreement is computed only when the logs are written (dump_logs)
        td_losses, distill_losses, losses = [], [], []
        for gradient_step in range(gradient_steps):
            # Sample replay buffer (with the teacher's values of the raw observations)
            replay_data = self._sample_replay(batch_size)
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            with th.no_grad():
                # Compute the next Q-values using the target network
                next_q_values = self.q_net_target(replay_data.next_observations)
                # Follow greedy policy: use the one with the highest value
                next_q_values, _ = next_q_values.max(dim=1)
                # Avoid potential broadcast issue
                next_q_values = next_q_values.reshape(-1, 1)
                # 1-step TD target
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            # Get current Q-values estimates for all actions (the distillation term needs all of them)
            all_q_values = self.q_net(replay_data.observations)
            with th.no_grad():
                # Retrieve the q-values for the actions from the replay buffer
                actions = replay_data.actions.long()
                current_q_values = th.gather(all_q_values, dim=1, index=actions)
                # SB3's Huber loss (less sensitive to outliers), and (1 - alpha) times its gradient
                td_loss, td_gradient = td_loss_and_gradient(current_q_values, target_q_values, 1.0 - alpha)

                if self.teacher is None:
                    gradient = th.zeros_like(all_q_values)
                    td_loss_value, distill_loss_value = td_loss.item(), None
                else:
                    distill_loss, gradient, teacher_q_values = self._distillation_terms(
                        replay_data.observations,
                        all_q_values,
                        getattr(replay_data, "teacher_q_values", None),
                        gradient_scale=alpha,
                    )
                    td_loss_value, distill_loss_value = th.stack((td_loss, distill_loss)).tolist()
                    distill_losses.append(distill_loss_value)
                # The gradient of L = (1 - alpha) * L_TD + alpha * L_distill with respect to the Q-values
                gradient.scatter_add_(1, actions, td_gradient)
            td_losses.append(td_loss_value)
            loss_value = td_loss_value if distill_loss_value is None else (
                (1.0 - alpha) * td_loss_value + alpha * distill_loss_value
            )  # fmt: skip
            # A NaN or inf loss would make every weight NaN at once: stop before the gradient reaches them
            if not math.isfinite(loss_value):
                self._check_finite_loss(loss_value, td_loss_value, distill_loss_value, alpha, gradient_step)
            losses.append(loss_value)

            # Optimize the policy
            self.policy.optimizer.zero_grad()
            # The same update as L.backward() (tested), without the graph nodes of the loss itself
            all_q_values.backward(gradient)
            # Clip gradient norm
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()

        # Increase update counter
        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))
        self.logger.record("train/td_loss", float(np.mean(td_losses)))
        self.logger.record("train/alpha", alpha)
        if distill_losses:
            self.logger.record("train/distill_loss", float(np.mean(distill_losses)))
            # train/teacher_agreement: on the call's last batch, computed when the logs are written
            self._agreement_batch = (all_q_values.detach(), teacher_q_values)

    def _record_distillation_logs(self) -> None:
        """
        Log ``train/teacher_agreement``, the share of the last batch trained on where the student's greedy action was
        the teacher's, if a batch came since the logs were last written. Computed here rather than in ``train()``: on
        every call it cost the Acrobot and LunarLander students about 1% of each update (``benchmarks/overhead.py``),
        for a value that only the last call before the logs are written reports.
        """
        if self._agreement_batch is not None:
            agreement = teacher_agreement(*self._agreement_batch).item()
            self.logger.record("train/teacher_agreement", agreement)
            self._agreement_batch = None

    def _check_finite_loss(
        self, loss: float, td_loss: float, distill_loss: float | None, alpha: float, gradient_step: int
    ) -> None:
        """Fail, before any weight is updated, if the loss of a gradient step is NaN or inf (``checks.check_finite_loss``)."""
        check_finite_loss(loss, td_loss, distill_loss, alpha, self._n_updates + gradient_step + 1, self.num_timesteps)

    def _train_offline(self, gradient_steps: int) -> None:
        train_with_target_updates(self, gradient_steps, self.q_net, self.q_net_target)

    def _excluded_save_params(self) -> list[str]:
        # The last batch is for the logs only
        return [*super()._excluded_save_params(), "_agreement_batch"]
