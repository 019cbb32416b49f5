from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticCnnPolicy, ActorCriticPolicy, BasePolicy, MultiInputActorCriticPolicy
from stable_baselines3.common.type_aliases import GymEnv, PyTorchObs, Schedule
from stable_baselines3.common.utils import explained_variance
from torch.distributions import Normal
from torch.nn import functional as F

from sb3_distill.common.actor_terms import check_finite_update, mean_action_mse_term, teacher_action_gap
from sb3_distill.common.alpha import AlphaLike
from sb3_distill.common.distillation import DistillationMixin
from sb3_distill.common.losses import teacher_agreement
from sb3_distill.common.pairs import check_distill_loss_name, resolve_distill_loss
from sb3_distill.common.rollout_buffers import TeacherValuesRolloutMixin, use_teacher_values_rollout_buffer
from sb3_distill.common.teacher import TeacherLike
from sb3_distill.ppo.rollouts import TeacherRolloutMixin
from sb3_distill.ppo.terms import categorical_policy_term, gaussian_policy_term, student_scaled_mean_actions


class DistilledPPO(DistillationMixin, TeacherRolloutMixin, PPO):
    """
    Proximal Policy Optimization (clip version) distilled from a pretrained teacher (policy distillation).

    The loss of each minibatch is PPO's mixed with a term between the student's action distribution and the
    teacher's: ``L = (1 - alpha) * (L_clip + ent_coef * L_entropy + vf_coef * L_value) + alpha * L_distill``. The term
    (``distill_loss``) depends on the teacher: from a Discrete teacher (DQN's Q-values, QR-DQN's mean quantiles, an
    actor-critic's logits), softmaxed at ``temperature``, a categorical KL: ``"kl"`` (forward, KL(teacher || student),
    the default), ``"reverse_kl"`` or ``"ppd"`` (the forward KL of each sample weighted by PPO's clipped ratio
    ``max(r, 1 - clip_range)``, Proximal Policy Distillation); from a Gaussian teacher (PPO, A2C, TRPO with Box actions)
    the same three between the two Gaussians over env actions, or ``"mse"`` between the mean actions in the env's scaled
    [-1, 1] space; from a squashed Gaussian (SAC, TQC) or deterministic (TD3, DDPG) teacher ``"mse"`` only (there is no
    common support for a KL). ``sb3_distill.common.pairs`` holds the table.

    The teacher's values of a rollout are computed once, in one batched pass when the first update after the rollout
    starts, and kept in the rollout buffer (``TeacherValuesRolloutBuffer``): each epoch reads them. With a
    ``VecNormalize`` env the rollout buffer also keeps the raw observations, and the teacher sees those, as it saw them
    in its own training (a teacher trained with ``VecNormalize`` applies its own frozen statistics).

    With ``teacher_acts=True`` the teacher collects the rollouts and the student learns from them ("teacher-distill" in
    the PPD paper, against the default "student-distill"): see ``teacher_acts``.

    Paper: https://arxiv.org/abs/1707.06347 (PPO), https://arxiv.org/abs/1511.06295 (Policy Distillation),
    https://openreview.net/forum?id=WfVXe88oMh (Proximal Policy Distillation, Spigler, TMLR 2025),
    https://arxiv.org/abs/2206.01626 (QDagger)

    Security: a teacher given as a path is read without unpickling anything; ``trust_teacher=True`` loads it with SB3's
    own loader instead, which can run arbitrary code from the file: only for files from a source you trust.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, ...)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param teacher: The teacher, with the same observation and action spaces as ``env``: path to an SB3 model zip or
        RL Zoo log folder, a loaded SB3 model (DQN, QRDQN, PPO, A2C, TRPO, MaskablePPO for Discrete actions; PPO, A2C,
        TRPO, SAC, TQC, TD3, DDPG for Box actions), or a ``Teacher``. Required unless ``alpha`` is 0. Never saved with
        the student.
    :param alpha: Weight of the distillation term, in [0, 1] (0: plain PPO, 1: distillation only, the value function
        then does not learn), or a schedule of the current progress remaining (from 1 to 0), or ``"performance"`` for
        QDagger's weight ``max(alpha_min, alpha_0 * clip(1 - s, 0, 1))`` with ``s`` the normalized score of the student's
        recent training episodes. Logged as ``train/alpha``
    :param temperature: Softmax temperature ``T > 0`` of a Discrete teacher's values and the student's logits in the
        categorical terms (which are ``T^2``-scaled); unused with Box actions
    :param trust_teacher: Whether a teacher given as a path comes from a source you trust (see above). Has no effect on
        a teacher given as an object
    :param distill_loss: The distillation term: ``"kl"``, ``"reverse_kl"``, ``"ppd"`` or ``"mse"``, as the teacher
        allows (above); None (default): the pair's default (``"kl"``, or ``"mse"`` for a SAC, TQC or TD3 teacher)
    :param alpha_0: With ``alpha="performance"``: the weight while the student scores 0 or less, in [0, 1]
    :param alpha_min: With ``alpha="performance"``: the least weight, in [0, alpha_0]
    :param teacher_return: With ``alpha="performance"``: the teacher's mean return (None: measured at the start of the
        first ``learn()``, over ``performance_eval_episodes`` deterministic episodes)
    :param random_return: With ``alpha="performance"``: a uniformly random policy's mean return (None: measured)
    :param performance_eval_episodes: Episodes of each measurement of ``teacher_return`` and ``random_return``
    :param teacher_acts: Whether the teacher, rather than the student, chooses the rollouts' actions: sampled from its
        policy where it has one (a PPO/A2C categorical or Gaussian, a SAC/TQC squashed Gaussian), greedy on a DQN or
        QR-DQN teacher's values, a TD3 teacher's deterministic action. The student's values and log-probabilities of
        those actions are recorded, so that PPO's loss is defined as usual (its ratio starts at 1). The teacher is then
        also evaluated at each step. Default False: the student acts
    :param learning_rate: The learning rate, it can be a function
        of the current progress remaining (from 1 to 0)
    :param n_steps: The number of steps to run for each environment per update
        (i.e. rollout buffer size is n_steps * n_envs where n_envs is number of environment copies running in parallel)
    :param batch_size: Minibatch size
    :param n_epochs: Number of epoch when optimizing the surrogate loss
    :param gamma: Discount factor
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage Estimator
    :param clip_range: Clipping parameter, it can be a function of the current progress
        remaining (from 1 to 0). Also PPD's ``eps``
    :param clip_range_vf: Clipping parameter for the value function,
        it can be a function of the current progress remaining (from 1 to 0).
        If None is passed (default), no clipping will be done on the value function.
    :param normalize_advantage: Whether to normalize or not the advantage
    :param ent_coef: Entropy coefficient for the loss calculation
    :param vf_coef: Value function coefficient for the loss calculation
    :param max_grad_norm: The maximum value for the gradient clipping
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE)
        instead of action noise exploration (default: False). The terms then compare the student's Gaussian of each
        state (its mean and its state-dependent standard deviation); gSDE's ``squash_output`` is not supported with a
        Box teacher
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
        Default: -1 (only sample at the beginning of the rollout)
    :param rollout_buffer_class: Rollout buffer class to use: None (default), SB3's ``RolloutBuffer`` or
        ``DictRolloutBuffer``, extended with the teacher's values, or a ``TeacherValuesRolloutMixin`` class
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param target_kl: Limit the KL divergence between updates,
        because the clipping is not enough to prevent large update.
        By default, there is no limit on the kl div.
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
        "MlpPolicy": ActorCriticPolicy,
        "CnnPolicy": ActorCriticCnnPolicy,
        "MultiInputPolicy": MultiInputActorCriticPolicy,
    }
    student_algorithm = "PPO"
    default_log_interval = 1
    rollout_buffer: RolloutBuffer
    #: The term used with the current teacher (``distill_loss``, or the pair's default); None without a teacher
    distill_term: str | None

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        teacher: TeacherLike | None = None,
        alpha: AlphaLike = 0.5,
        temperature: float = 1.0,
        trust_teacher: bool = False,
        distill_loss: str | None = None,
        alpha_0: float = 1.0,
        alpha_min: float = 0.0,
        teacher_return: float | None = None,
        random_return: float | None = None,
        performance_eval_episodes: int = 10,
        teacher_acts: bool = False,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        target_kl: float | None = None,
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
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self.teacher_acts = teacher_acts
        self.distill_term = None
        self._init_distillation(
            teacher, alpha, temperature, trust_teacher, distill_loss, alpha_0, alpha_min, teacher_return, random_return,
            performance_eval_episodes,
        )  # fmt: skip
        # The last minibatch's (student's logits or mean actions, teacher's values), until train/teacher_agreement
        # (Discrete) or train/teacher_action_gap (Box) is logged
        self._log_batch: tuple[th.Tensor, th.Tensor] | None = None
        if _init_setup_model:
            self._check_teacher_given()
            self._setup_model()

    def _check_settings(self) -> None:
        super()._check_settings()
        check_distill_loss_name(self.student_algorithm, self.distill_loss)
        if not isinstance(self.teacher_acts, (bool, np.bool_)):
            raise ValueError(f"teacher_acts={self.teacher_acts!r} must be True or False")

    def _check_teacher_given(self) -> None:
        super()._check_teacher_given()
        if self.teacher_acts and self.teacher is None:
            raise ValueError("teacher_acts=True needs a teacher to act: pass teacher='path/to/teacher.zip'")

    def _setup_model(self) -> None:
        self._check_settings()
        self._setup_alpha()
        self.rollout_buffer_class, sb3_rollout_buffer_class = use_teacher_values_rollout_buffer(
            self.rollout_buffer_class, self.observation_space
        )
        try:
            super()._setup_model()
        finally:
            # The zip keeps SB3's class, so that plain PPO.load reads it; _setup_model maps it again on load
            self.rollout_buffer_class = sb3_rollout_buffer_class
        self._setup_teacher()

    def _setup_teacher(self) -> None:
        super()._setup_teacher()
        self.distill_term = None
        self._log_batch = None
        rollout_buffer = getattr(self, "rollout_buffer", None)  # None before SB3's _setup_model
        if isinstance(rollout_buffer, TeacherValuesRolloutMixin):
            # Values of the current rollout came from another teacher, or from none
            rollout_buffer.teacher_values_ready = False
        if self.teacher is None:
            return
        self.distill_term = resolve_distill_loss(self.student_algorithm, self.teacher, self.distill_loss)
        if isinstance(self.action_space, spaces.Box):
            self._check_box_teacher()

    def _check_box_teacher(self) -> None:
        """Fail unless the student's Gaussian and the action bounds allow the term with a Box teacher."""
        assert self.teacher is not None
        if self.policy.squash_output:
            raise ValueError(
                f"A PPO student with squash_output=True (gSDE's tanh) cannot be distilled from teacher {self.teacher.source}: "
                "the terms compare a Gaussian over env actions; remove squash_output from policy_kwargs"
            )
        bounds = np.concatenate([self.action_space.low.ravel(), self.action_space.high.ravel()])
        if self.distill_term == "mse" and not np.isfinite(bounds).all():
            raise ValueError(
                f"distill_loss='mse' compares mean actions in the scaled [-1, 1] space, which needs finite action bounds, "
                f"but the action space is {self.action_space}: use a KL term with a Gaussian teacher, or bound the actions"
            )

    def _check_teacher_ready(self) -> None:
        super()._check_teacher_ready()
        if self.teacher_acts and self.teacher is None:
            raise ValueError(
                f"This {type(self).__name__} has teacher_acts=True but no teacher (teachers are never saved with the "
                f"student): load it with {type(self).__name__}.load(path, env=env, teacher='teacher.zip') or call "
                "model.set_teacher('teacher.zip') before learn()"
            )

    def _student_distribution(self, observations: PyTorchObs) -> tuple[Distribution, th.Tensor]:
        """
        The student's action distribution and values of a minibatch: ``ActorCriticPolicy.evaluate_actions``'s steps, which
        keep the distribution (its log-probabilities, entropy and the distillation term all come from this one forward
        pass).

        :param observations: The minibatch's observations
        :return: (the distribution, the values ``(batch, 1)``)
        """
        policy = self.policy
        # Preprocess the observation if needed
        features = policy.extract_features(observations)
        if policy.share_features_extractor:
            latent_pi, latent_vf = policy.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = policy.mlp_extractor.forward_actor(pi_features)
            latent_vf = policy.mlp_extractor.forward_critic(vf_features)
        distribution = policy._get_action_dist_from_latent(latent_pi)
        return distribution, policy.value_net(latent_vf)

    def _distillation_term(
        self, distribution: Distribution, teacher_values: th.Tensor, ratio: th.Tensor, clip_range: float
    ) -> th.Tensor:
        """
        The distillation term of a minibatch (``distill_term``), between the student's distribution and the teacher's
        values; keeps what ``train/teacher_agreement`` or ``train/teacher_action_gap`` compare (computed when the logs
        are written).

        :param distribution: The student's action distribution of the minibatch's observations
        :param teacher_values: The teacher's values of them (``Teacher.values``, from the rollout buffer)
        :param ratio: PPO's probability ratio of the minibatch's actions (PPD weighs each sample's KL by it)
        :param clip_range: PPO's clip range now
        :return: Scalar
        """
        assert self.teacher is not None and self.distill_term is not None
        if isinstance(distribution, CategoricalDistribution):
            # torch's Categorical holds the logits normalized to log-probabilities: the same softmax at any temperature
            student_logits = distribution.distribution.logits
            self._log_batch = (student_logits.detach(), teacher_values)
            return categorical_policy_term(
                self.distill_term, teacher_values, student_logits, self.temperature, ratio, clip_range
            )
        # A Box student's Gaussian of each state (its standard deviation is state-dependent with gSDE)
        gaussian = distribution.distribution
        if not isinstance(gaussian, Normal):
            raise TypeError(
                f"A PPO student with Box actions is distilled through its Gaussian policy, but its policy's distribution is "
                f"a {type(distribution).__name__} of {type(gaussian).__name__}"
            )
        student_mean = gaussian.mean
        self._log_batch = (student_mean.detach(), teacher_values)
        if self.distill_term == "mse":
            return mean_action_mse_term(
                student_scaled_mean_actions(student_mean, self.action_space),  # type: ignore[arg-type]
                self.teacher.scaled_actions_of(teacher_values),
            )
        # A KL term has a Gaussian teacher (common.pairs), which has a log-std
        teacher_mean, teacher_log_std = self.teacher.split_values(teacher_values)
        assert teacher_log_std is not None
        return gaussian_policy_term(
            self.distill_term,
            teacher_mean,
            teacher_log_std,
            student_mean,
            th.log(gaussian.stddev),
            ratio,
            clip_range,
        )

    def _prepare_teacher_values(self) -> None:
        """Evaluate the teacher on the rollout, once: every epoch over it reads these values from the buffer."""
        buffer = self.rollout_buffer
        if self.teacher is not None and isinstance(buffer, TeacherValuesRolloutMixin) and not buffer.teacher_values_ready:
            buffer.compute_teacher_values(self.teacher)

    def _mixed_loss(
        self,
        ppo_loss: th.Tensor,
        distribution: Distribution,
        rollout_data: Any,
        ratio: th.Tensor,
        clip_range: float,
        alpha: float,
    ) -> tuple[th.Tensor, float, float | None]:
        """
        A minibatch's loss, ``(1 - alpha) * L_PPO + alpha * L_distill`` (PPO's own without a teacher), checked finite.

        :param ppo_loss: PPO's loss of the minibatch
        :param distribution: The student's action distribution of its observations
        :param rollout_data: The minibatch, with the teacher's values
        :param ratio: PPO's probability ratio of its actions
        :param clip_range: PPO's clip range now
        :param alpha: The weight of the distillation term
        :return: (the loss, its value, the distillation term's value or None without a teacher)
        """
        if self.teacher is None:
            loss, distill_loss_value = ppo_loss, None
        else:
            distill_loss = self._distillation_term(distribution, rollout_data.teacher_values, ratio, clip_range)
            # L = (1 - alpha) * L_PPO + alpha * L_distill
            loss = (1.0 - alpha) * ppo_loss + alpha * distill_loss
            distill_loss_value = distill_loss.item()
        loss_value = loss.item()
        # A NaN or inf loss would make every weight NaN at once: stop before the gradient reaches them
        if not np.isfinite(loss_value):
            own_loss = ppo_loss.item()
            check_finite_update(
                "policy", loss_value, own_loss, distill_loss_value, alpha, self._n_updates + 1, self.num_timesteps
            )
        return loss, loss_value, distill_loss_value

    def train(self) -> None:
        """
        Update policy using the currently gathered rollout buffer: PPO's update (SB3 2.9.2), with the distillation term
        mixed into each minibatch's loss.
        """
        self._check_teacher_ready()
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update optimizer learning rate
        self._update_learning_rate(self.policy.optimizer)
        # Compute current clip range
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        # Optional: clip range for the value function
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
        alpha = self._current_alpha()
        self._prepare_teacher_values()

        entropy_losses = []
        pg_losses, value_losses = [], []
        clip_fractions = []
        distill_losses = []

        continue_training = True
        # train for n_epochs epochs
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            # Do a complete pass on the rollout buffer
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    # Convert discrete action from float to long
                    actions = rollout_data.actions.long().flatten()

                # evaluate_actions' steps, keeping the distribution for the distillation term
                distribution, values = self._student_distribution(rollout_data.observations)
                log_prob = distribution.log_prob(actions)
                entropy = distribution.entropy()
                values = values.flatten()
                # Normalize advantage
                advantages = rollout_data.advantages
                # Normalization does not make sense if mini batchsize == 1, see GH issue #325
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                # ratio between old and new policy, should be one at the first iteration
                ratio = th.exp(log_prob - rollout_data.old_log_prob)

                # clipped surrogate loss
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()

                # Logging
                pg_losses.append(policy_loss.item())
                clip_fraction = th.mean((th.abs(ratio - 1) > clip_range).float()).item()
                clip_fractions.append(clip_fraction)

                if self.clip_range_vf is None:
                    # No clipping
                    values_pred = values
                else:
                    # Clip the difference between old and new value
                    # NOTE: this depends on the reward scaling
                    values_pred = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                # Value loss using the TD(gae_lambda) target
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                value_losses.append(value_loss.item())

                # Entropy loss favor exploration
                if entropy is None:
                    # Approximate entropy when no analytical form
                    entropy_loss = -th.mean(-log_prob)
                else:
                    entropy_loss = -th.mean(entropy)

                entropy_losses.append(entropy_loss.item())

                ppo_loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                loss, loss_value, distill_loss_value = self._mixed_loss(
                    ppo_loss, distribution, rollout_data, ratio, clip_range, alpha
                )
                if distill_loss_value is not None:
                    distill_losses.append(distill_loss_value)

                # Calculate approximate form of reverse KL Divergence for early stopping
                # see issue #417: https://github.com/DLR-RM/stable-baselines3/issues/417
                # and discussion in PR #419: https://github.com/DLR-RM/stable-baselines3/pull/419
                # and Schulman blog: http://joschu.net/blog/kl-approx.html
                with th.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(approx_kl_div)

                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break

                # Optimization step
                self.policy.optimizer.zero_grad()
                loss.backward()
                # Clip grad norm
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break

        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())

        # Logs
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss_value)
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        self.logger.record("train/alpha", alpha)
        if distill_losses:
            self.logger.record("train/distill_loss", float(np.mean(distill_losses)))

    def _record_distillation_logs(self) -> None:
        """
        Log, on the last minibatch trained on, ``train/teacher_agreement`` (Discrete actions: the share where the student's
        most likely action is the teacher's greedy one) or ``train/teacher_action_gap`` (Box actions: the mean
        ``|a_S - a_T|`` between the mean actions in the scaled [-1, 1] space), if a minibatch came since the logs were
        last written. Computed here, when the logs are written, rather than on every minibatch.
        """
        if self._log_batch is None or self.teacher is None:
            return
        student_outputs, teacher_values = self._log_batch
        self._log_batch = None
        if isinstance(self.action_space, spaces.Discrete):
            self.logger.record("train/teacher_agreement", teacher_agreement(student_outputs, teacher_values).item())
        elif np.isfinite(self.action_space.low).all() and np.isfinite(self.action_space.high).all():
            student_scaled = student_scaled_mean_actions(student_outputs, self.action_space)  # type: ignore[arg-type]
            teacher_scaled = self.teacher.scaled_actions_of(teacher_values)
            self.logger.record("train/teacher_action_gap", teacher_action_gap(student_scaled, teacher_scaled).item())

    def _excluded_save_params(self) -> list[str]:
        # The term follows the teacher, which is never saved; the last minibatch is for the logs only
        return [*super()._excluded_save_params(), "distill_term", "_log_batch"]
