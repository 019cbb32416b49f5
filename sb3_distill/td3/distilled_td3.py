from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3 import TD3
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.td3.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, TD3Policy
from torch.nn import functional as F

from sb3_distill.common.actor_terms import ContinuousOffPolicyDistillationMixin, mean_action_mse_term
from sb3_distill.common.alpha import AlphaLike
from sb3_distill.common.teacher import TeacherLike


class DistilledTD3(ContinuousOffPolicyDistillationMixin, TD3):
    """
    Twin Delayed DDPG distilled from a pretrained teacher (policy distillation for a deterministic policy).

    At each of TD3's delayed actor updates, the actor's loss is TD3's mixed with the MSE between the student's actions
    and the teacher's mean actions in the env's scaled [-1, 1] space:
    ``L_actor = (1 - alpha) * (-mean Q_1(s, mu_S(s))) + alpha * mean (mu_S(s) - a_T(s))^2``. Every teacher with a Box
    action space can teach it (SAC/TQC: tanh of the pre-tanh mean; PPO/A2C: the mean action, scaled and clipped;
    TD3/DDPG: its actor's output); a deterministic student has no distribution for a KL. With ``critic_term=True`` the
    critics also learn from the teacher's critic:
    ``L_critic = (1 - alpha) * L_TD3_critic + alpha * mean_i MSE(Q_S,i(s, a), Q_T(s, a))`` on the replay batch's actions.
    With ``alpha="performance"`` the weight follows QDagger, and with ``offline_transitions > 0`` the teacher first
    fills the replay buffer (QDagger's offline phase).

    Logs TD3's ``train/actor_loss`` and ``train/critic_loss`` (TD3's own parts), ``train/distill_loss``,
    ``train/critic_distill_loss`` (with ``critic_term``), ``train/alpha``, ``train/loss`` (the actor's mixed loss) and
    ``train/teacher_action_gap`` (mean ``|mu_S(s) - a_T(s)|`` on the last batch before the logs are written).

    Paper: https://arxiv.org/abs/1802.09477 (TD3), https://arxiv.org/abs/1511.06295 (Policy Distillation),
    https://arxiv.org/abs/2206.01626 (QDagger)

    Security: a teacher given as a path is read without unpickling anything; ``trust_teacher=True`` loads it with SB3's
    own loader, which can run arbitrary code from the file: only for files from a source you trust.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ...)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param teacher: The teacher, with the same observation and action spaces as ``env``: path to an SB3 model zip or
        RL Zoo log folder, a loaded SB3 model (TD3, DDPG, SAC, TQC, or PPO/A2C with Box actions), or a ``Teacher``.
        Required unless ``alpha`` is 0. It is never saved with the student.
    :param alpha: Weight of the distillation terms, in [0, 1] (0: plain TD3, 1: distillation only), or a schedule of
        the current progress remaining (from 1 to 0), or ``"performance"`` for QDagger's weight
        ``max(alpha_min, alpha_0 * clip(1 - s, 0, 1))`` on the student's normalized score ``s``. Logged as ``train/alpha``
    :param teacher_cache: Evaluate the teacher's policy once per stored transition and keep its values (its mean
        action, and log-std) in the replay buffer, instead of on every sampled batch. None (default): kept where the
        buffer allows, silently; True: the same, with a warning where it has no effect; False: evaluated on each batch.
        With a ``VecNormalize`` env the teacher sees the raw observations either way
    :param trust_teacher: Whether a teacher given as a path comes from a source you trust. False (default): it is
        read without unpickling. True: SB3's full loader (which can run code from the file) is used.
    :param distill_loss: The actor term: ``"mse"``, the only one (None, the default, picks it)
    :param critic_term: Whether the critics also learn from the teacher's critic (a SAC, TQC, TD3 or DDPG teacher:
        the least of its critics, TQC's mean over quantiles). Not supported with a ``VecNormalize`` env, whose
        sampled observations the teacher's critic would see normalized with the student's statistics
    :param alpha_0: With ``alpha="performance"``: the weight while the student scores 0 or less, in [0, 1]
    :param alpha_min: With ``alpha="performance"``: the least weight, in [0, alpha_0]
    :param teacher_return: With ``alpha="performance"``: the teacher's mean return; None: measured at the first
        ``learn()`` over ``performance_eval_episodes`` deterministic episodes
    :param random_return: With ``alpha="performance"``: a uniformly random policy's mean return; None: measured
    :param performance_eval_episodes: Episodes of each measurement of ``teacher_return`` and ``random_return``
    :param offline_transitions: QDagger's offline phase: before the first ``learn()``'s own steps, the teacher acts in
        the training env (its mean action, a random one with probability ``offline_epsilon``) for this many
        transitions, stored in the replay buffer; counted in ``teacher_transitions``, not in ``num_timesteps``.
        0 (default): no offline phase
    :param offline_gradient_steps: Gradient steps of the student (the same losses) on the replay buffer at the end of
        the offline phase
    :param offline_epsilon: Probability of a random action instead of the teacher's in the offline phase
    :param learning_rate: learning rate for adam optimizer,
        the same learning rate will be used for all networks (Q-Values, Actor and Value function)
        it can be a function of the current progress remaining (from 1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1)
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps. Alternatively pass a tuple of frequency and unit
        like ``(5, "step")`` or ``(2, "episode")``.
    :param gradient_steps: How many gradient steps to do after each rollout (see ``train_freq``)
        Set to ``-1`` means to do as many gradient steps as steps done in the environment
        during the rollout.
    :param action_noise: the action noise type (None by default), this can help
        for hard exploration problem. Cf common.noise for the different action noise type.
    :param replay_buffer_class: Replay buffer class to use (for instance ``HerReplayBuffer``).
        If ``None``, it will be automatically selected.
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation.
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
        at a cost of more complexity.
    :param n_steps: When n_step > 1, uses n-step return (with the NStepReplayBuffer) when updating the Q-value network.
    :param policy_delay: Policy and target networks will only be updated once every policy_delay steps
        per training steps. The Q values will be updated policy_delay more often (update every training step).
    :param target_policy_noise: Standard deviation of Gaussian noise added to target policy
        (smoothing noise)
    :param target_noise_clip: Limit for absolute value of target policy smoothing noise.
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
    student_algorithm = "TD3"

    def __init__(
        self,
        policy: str | type[TD3Policy],
        env: GymEnv | str,
        teacher: TeacherLike | None = None,
        alpha: AlphaLike = 0.5,
        teacher_cache: bool | None = None,
        trust_teacher: bool = False,
        distill_loss: str | None = None,
        critic_term: bool = False,
        alpha_0: float = 1.0,
        alpha_min: float = 0.0,
        teacher_return: float | None = None,
        random_return: float | None = None,
        performance_eval_episodes: int = 10,
        offline_transitions: int = 0,
        offline_gradient_steps: int = 0,
        offline_epsilon: float = 0.01,
        learning_rate: float | Schedule = 1e-3,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        policy_delay: int = 2,
        target_policy_noise: float = 0.2,
        target_noise_clip: float = 0.5,
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
            action_noise=action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_delay=policy_delay,
            target_policy_noise=target_policy_noise,
            target_noise_clip=target_noise_clip,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self._init_continuous_distillation(critic_term)
        self._init_off_policy_distillation(teacher_cache, offline_transitions, offline_gradient_steps, offline_epsilon)
        # The MSE term has no temperature: 1.0 keeps the shared setting valid
        self._init_distillation(
            teacher, alpha, 1.0, trust_teacher, distill_loss, alpha_0, alpha_min, teacher_return, random_return,
            performance_eval_episodes,
        )  # fmt: skip
        if _init_setup_model:
            self._check_teacher_given()
            self._setup_model()

    def _actor_distillation_term(self, replay_data: Any, actions_pi: th.Tensor) -> th.Tensor:
        """
        The actor term on a batch: the MSE between the student's actions and the teacher's mean actions, both in the
        scaled [-1, 1] space.

        :param replay_data: The sampled batch (with the teacher's values if the replay buffer keeps them)
        :param actions_pi: The student's actions on its observations, ``actor(observations)``
        :return: Scalar
        """
        assert self.teacher is not None
        teacher_values = self._teacher_values_of(replay_data.observations, replay_data)
        self._keep_action_gap_batch(actions_pi, teacher_values)
        return mean_action_mse_term(actions_pi, self.teacher.scaled_actions_of(teacher_values))

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self._check_teacher_ready()
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)

        # Update learning rate according to lr schedule
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        alpha = self._current_alpha()
        self._prepare_teacher_values()

        actor_losses, critic_losses = [], []
        losses: list[float] = []
        distill_losses: list[float] = []
        critic_distill_losses: list[float] = []
        for _ in range(gradient_steps):
            self._n_updates += 1
            # Sample replay buffer (with the teacher's values of the raw observations)
            replay_data = self._sample_replay(batch_size)
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            with th.no_grad():
                # Select action according to policy and add clipped noise
                noise = replay_data.actions.clone().data.normal_(0, self.target_policy_noise)
                noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (self.actor_target(replay_data.next_observations) + noise).clamp(-1, 1)

                # Compute the next Q-values: min over all critics targets
                next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            # Get current Q-values estimates for each critic network
            current_q_values = self.critic(replay_data.observations, replay_data.actions)

            # Compute critic loss, mixed with the critic term if asked
            critic_loss = sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)
            critic_distill_loss = None
            if self.critic_term and self.teacher is not None:
                critic_distill_loss = self._critic_distillation_term(
                    replay_data.observations, replay_data.actions, current_q_values
                )
            critic_loss, td3_critic_loss, critic_distill_value, _ = self._mixed_loss(
                "critic", critic_loss, critic_distill_loss, alpha, self._n_updates
            )
            critic_losses.append(td3_critic_loss)
            if critic_distill_value is not None:
                critic_distill_losses.append(critic_distill_value)

            # Optimize the critics
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # Delayed policy updates
            if self._n_updates % self.policy_delay == 0:
                # Compute actor loss, mixed with the distillation term
                actions_pi = self.actor(replay_data.observations)
                actor_loss = -self.critic.q1_forward(replay_data.observations, actions_pi).mean()
                distill_loss = None if self.teacher is None else self._actor_distillation_term(replay_data, actions_pi)
                actor_loss, td3_actor_loss, distill_value, loss_value = self._mixed_loss(
                    "actor", actor_loss, distill_loss, alpha, self._n_updates
                )
                actor_losses.append(td3_actor_loss)
                losses.append(loss_value)
                if distill_value is not None:
                    distill_losses.append(distill_value)

                # Optimize the actor
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()

                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
                # Copy running stats, see GH issue #996
                polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
                polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if len(actor_losses) > 0:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        self._record_train_logs(alpha, losses, distill_losses, critic_distill_losses)
