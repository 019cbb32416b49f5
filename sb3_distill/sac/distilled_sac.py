from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.sac.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, SACPolicy
from torch.nn import functional as F

from sb3_distill.common.actor_terms import (
    ContinuousOffPolicyDistillationMixin,
    mean_action_mse_term,
    squashed_gaussian_kl_term,
)
from sb3_distill.common.alpha import AlphaLike
from sb3_distill.common.teacher import TeacherLike


class DistilledSAC(ContinuousOffPolicyDistillationMixin, SAC):
    """
    Soft Actor-Critic distilled from a pretrained teacher (policy distillation for continuous actions).

    The actor's loss is SAC's mixed with a distillation term on the sampled batch,
    ``L_actor = (1 - alpha) * L_SAC_actor + alpha * term``, where the term (``distill_loss``) compares the student's
    tanh-squashed Gaussian with the teacher's policy:

    - ``"kl"`` (default with a SAC/TQC teacher): ``mean_batch KL(teacher || student)`` between the two pre-tanh
      Gaussians, in closed form, summed over the action dimensions (the shared tanh leaves the KL unchanged);
    - ``"reverse_kl"``: ``mean_batch KL(student || teacher)``;
    - ``"mse"`` (the only term from a PPO/A2C or TD3/DDPG teacher): ``mean (tanh(mu_S) - a_T)^2`` between the mean
      actions in the env's scaled [-1, 1] space.

    Gaussian terms have no temperature. With ``critic_term=True`` the critics also learn from the teacher's critic:
    ``L_critic = (1 - alpha) * L_SAC_critic + alpha * mean_i MSE(Q_S,i(s, a), Q_T(s, a))`` on the replay batch's actions.
    The entropy coefficient is SAC's own. With ``alpha="performance"`` the weight follows QDagger, and with
    ``offline_transitions > 0`` the teacher first fills the replay buffer (QDagger's offline phase).

    Logs SAC's ``train/actor_loss`` and ``train/critic_loss`` (SAC's own parts), ``train/distill_loss``,
    ``train/critic_distill_loss`` (with ``critic_term``), ``train/alpha`` (the weight; SAC's entropy coefficient stays
    ``train/ent_coef``), ``train/loss`` (the actor's mixed loss) and ``train/teacher_action_gap`` (mean
    ``|tanh(mu_S) - a_T|`` in the scaled space on the last batch before the logs are written).

    Paper: https://arxiv.org/abs/1801.01290 (SAC), https://arxiv.org/abs/1511.06295 (Policy Distillation),
    https://arxiv.org/abs/2206.01626 (QDagger)

    Security: a teacher given as a path is read without unpickling anything; ``trust_teacher=True`` loads it with SB3's
    own loader, which can run arbitrary code from the file: only for files from a source you trust.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ...)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param teacher: The teacher, with the same observation and action spaces as ``env``: path to an SB3 model zip or
        RL Zoo log folder, a loaded SB3 model (SAC, TQC, TD3, DDPG, or PPO/A2C with Box actions), or a ``Teacher``.
        Required unless ``alpha`` is 0. It is never saved with the student.
    :param alpha: Weight of the distillation terms, in [0, 1] (0: plain SAC, 1: distillation only), or a schedule of
        the current progress remaining (from 1 to 0), or ``"performance"`` for QDagger's weight
        ``max(alpha_min, alpha_0 * clip(1 - s, 0, 1))`` on the student's normalized score ``s``. Logged as ``train/alpha``
    :param teacher_cache: Evaluate the teacher's policy once per stored transition and keep its values (the mean and
        log-std of its action distribution) in the replay buffer, instead of on every sampled batch. None (default):
        kept where the buffer allows, silently; True: the same, with a warning where it has no effect; False: evaluated
        on each batch. With a ``VecNormalize`` env the teacher sees the raw observations either way
    :param trust_teacher: Whether a teacher given as a path comes from a source you trust. False (default): it is
        read without unpickling. True: SB3's full loader (which can run code from the file) is used.
    :param distill_loss: The actor term: ``"kl"``, ``"reverse_kl"`` or ``"mse"`` (see above); None (default): the
        pair's default (``"kl"`` from a SAC/TQC teacher, ``"mse"`` from others)
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
    :param ent_coef: Entropy regularization coefficient. (Equivalent to
        inverse of reward scale in the original SAC paper.)  Controlling exploration/exploitation trade-off.
        Set it to 'auto' to learn it automatically (and 'auto_0.1' for using 0.1 as initial value)
    :param target_update_interval: update the target network every ``target_network_update_freq``
        gradient steps.
    :param target_entropy: target entropy when learning ``ent_coef`` (``ent_coef = 'auto'``)
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE)
        instead of action noise exploration (default: False)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
        Default: -1 (only sample at the beginning of the rollout)
    :param use_sde_at_warmup: Whether to use gSDE instead of uniform sampling
        during the warm up phase (before learning starts)
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
    student_algorithm = "SAC"
    squashed_student = True

    def __init__(
        self,
        policy: str | type[SACPolicy],
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
        learning_rate: float | Schedule = 3e-4,
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
        ent_coef: str | float = "auto",
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
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
            ent_coef=ent_coef,
            target_update_interval=target_update_interval,
            target_entropy=target_entropy,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            use_sde_at_warmup=use_sde_at_warmup,
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
        # Gaussian terms have no temperature: 1.0 keeps the shared setting valid
        self._init_distillation(
            teacher, alpha, 1.0, trust_teacher, distill_loss, alpha_0, alpha_min, teacher_return, random_return,
            performance_eval_episodes,
        )  # fmt: skip
        if _init_setup_model:
            self._check_teacher_given()
            self._setup_model()

    def _actor_distillation_term(
        self, replay_data: Any, mean_actions: th.Tensor, log_std: th.Tensor, dist_kwargs: dict[str, th.Tensor]
    ) -> th.Tensor:
        """
        The actor term (``distill_term``) on a batch, from the parameters of the student's pre-tanh Gaussian.

        :param replay_data: The sampled batch (with the teacher's values if the replay buffer keeps them)
        :param mean_actions: The student's pre-tanh mean on its observations
        :param log_std: Its log standard deviation (gSDE: the noise matrix's)
        :param dist_kwargs: gSDE's ``latent_sde``, else empty
        :return: Scalar
        """
        assert self.teacher is not None
        teacher_values = self._teacher_values_of(replay_data.observations, replay_data)
        self._keep_action_gap_batch(mean_actions, teacher_values)
        if self.distill_term == "mse":
            # Between the mean actions in the scaled [-1, 1] space, where the student's is tanh of its pre-tanh mean
            return mean_action_mse_term(th.tanh(mean_actions), self.teacher.scaled_actions_of(teacher_values))
        teacher_distribution = self.teacher.split_values(teacher_values)
        # A KL is only paired with a squashed Gaussian teacher (common.pairs), which has a spread
        assert teacher_distribution.log_std is not None
        if dist_kwargs:
            # gSDE: each sample's std comes from the noise matrix and its features, as in the distribution just built
            log_std = th.log(self.actor.action_dist.distribution.stddev)
        reverse = self.distill_term == "reverse_kl"
        return squashed_gaussian_kl_term(
            mean_actions, log_std, teacher_distribution.mean, teacher_distribution.log_std, reverse
        )

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self._check_teacher_ready()
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update optimizers learning rate
        optimizers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]

        # Update learning rate according to lr schedule
        self._update_learning_rate(optimizers)
        alpha = self._current_alpha()
        self._prepare_teacher_values()

        ent_coef_losses, ent_coefs = [], []
        actor_losses, critic_losses = [], []
        losses: list[float] = []
        distill_losses: list[float] = []
        critic_distill_losses: list[float] = []

        for gradient_step in range(gradient_steps):
            update = self._n_updates + gradient_step + 1
            # Sample replay buffer (with the teacher's values of the raw observations)
            replay_data = self._sample_replay(batch_size)
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            # We need to sample because `log_std` may have changed between two gradient steps
            if self.use_sde:
                self.actor.reset_noise()

            # Action by the current actor for the sampled state (actor.action_log_prob, keeping the distribution's
            # parameters for the distillation term)
            mean_actions, log_std, dist_kwargs = self.actor.get_action_dist_params(replay_data.observations)
            actions_pi, log_prob = self.actor.action_dist.log_prob_from_params(mean_actions, log_std, **dist_kwargs)
            log_prob = log_prob.reshape(-1, 1)

            ent_coef_loss = None
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                # Important: detach the variable from the graph
                # so we don't change it with other losses
                # see https://github.com/rail-berkeley/softlearning/issues/60
                ent_coef = th.exp(self.log_ent_coef.detach())
                assert isinstance(self.target_entropy, float)
                ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                ent_coef_losses.append(ent_coef_loss.item())
            else:
                ent_coef = self.ent_coef_tensor

            ent_coefs.append(ent_coef.item())

            # Optimize entropy coefficient, also called
            # entropy temperature or alpha in the paper
            if ent_coef_loss is not None and self.ent_coef_optimizer is not None:
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            with th.no_grad():
                # Select action according to policy
                next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
                # Compute the next Q values: min over all critics targets
                next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                # add entropy term
                next_q_values = next_q_values - ent_coef * next_log_prob.reshape(-1, 1)
                # td error + entropy term
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            # Get current Q-values estimates for each critic network
            # using action from the replay buffer
            current_q_values = self.critic(replay_data.observations, replay_data.actions)

            # Compute critic loss, mixed with the critic term if asked
            critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            assert isinstance(critic_loss, th.Tensor)  # for type checker
            critic_distill_loss = None
            if self.critic_term and self.teacher is not None:
                critic_distill_loss = self._critic_distillation_term(
                    replay_data.observations, replay_data.actions, current_q_values
                )
            critic_loss, sac_critic_loss, critic_distill_value, _ = self._mixed_loss(
                "critic", critic_loss, critic_distill_loss, alpha, update
            )
            critic_losses.append(sac_critic_loss)
            if critic_distill_value is not None:
                critic_distill_losses.append(critic_distill_value)

            # Optimize the critic
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            # Compute actor loss
            # Alternative: actor_loss = th.mean(log_prob - qf1_pi)
            # Min over all critic networks
            q_values_pi = th.cat(self.critic(replay_data.observations, actions_pi), dim=1)
            min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
            actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
            # Mixed with the distillation term
            distill_loss = None
            if self.teacher is not None:
                distill_loss = self._actor_distillation_term(replay_data, mean_actions, log_std, dist_kwargs)
            actor_loss, sac_actor_loss, distill_value, loss_value = self._mixed_loss(
                "actor", actor_loss, distill_loss, alpha, update
            )
            actor_losses.append(sac_actor_loss)
            losses.append(loss_value)
            if distill_value is not None:
                distill_losses.append(distill_value)

            # Optimize the actor
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            # Update target networks
            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                # Copy running stats, see GH issue #996
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if len(ent_coef_losses) > 0:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))
        self._record_train_logs(alpha, losses, distill_losses, critic_distill_losses)
