import io
import math
import pathlib
import warnings
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import save_to_pkl
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, PyTorchObs, Schedule
from stable_baselines3.common.utils import FloatSchedule
from stable_baselines3.dqn.policies import CnnPolicy, DQNPolicy, MlpPolicy, MultiInputPolicy
from torch.nn import functional as F

from sb3_distill.buffers import TEACHER_VALUES_BUFFERS, TeacherValuesMixin
from sb3_distill.losses import distillation_loss, greedy_agreement
from sb3_distill.teacher import Teacher, TeacherLike, load_teacher

SelfDistilledDQN = TypeVar("SelfDistilledDQN", bound="DistilledDQN")


def check_alpha(alpha: float | Schedule, progress_remaining: float | None = None) -> None:
    """
    Fail unless ``alpha`` is a number in [0, 1] or a schedule (a callable of progress_remaining).

    :param alpha: The value to check
    :param progress_remaining: When ``alpha`` is a value a schedule returned, the progress it was asked for
    """
    where = (
        "" if progress_remaining is None else f" (returned by the alpha schedule at progress_remaining={progress_remaining})"
    )
    if callable(alpha) and progress_remaining is None:
        # Check the schedule where it starts and ends; every value is checked again when used
        for progress in (1.0, 0.0):
            check_alpha(alpha(progress), progress_remaining=progress)
        return
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TypeError(f"alpha={alpha!r}{where} must be a float in [0, 1] or a schedule of progress_remaining")
    if math.isnan(alpha) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r}{where} is outside [0, 1]: alpha weighs the distillation term against the TD loss")


def check_temperature(temperature: float) -> None:
    """
    Fail unless ``temperature`` is a finite number > 0.

    :param temperature: The value to check
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating, np.integer)):
        raise TypeError(f"temperature={temperature!r} must be a float > 0")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r} must be a finite float > 0 (e.g. 0.01 to 10)")


class DistilledDQN(DQN):
    """
    Deep Q-Network distilled from a pretrained teacher (policy distillation).

    The loss is SB3 DQN's TD loss mixed with a temperature-scaled KL term between the teacher's and the
    student's softmaxed Q-values on the sampled batch:
    ``L = (1 - alpha) * L_TD + alpha * T^2 * KL(softmax(Q_T / T) || softmax(Q_S / T))``.

    Paper: https://arxiv.org/abs/1511.06295 (Policy Distillation), https://arxiv.org/abs/1503.02531

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
        or a schedule of the current progress remaining (from 1 to 0)
    :param temperature: Softmax temperature ``T > 0`` applied to both teacher and student Q-values
    :param teacher_cache: Evaluate the teacher once per stored transition (in one batched pass over the
        transitions added since the last update) and keep its values in the replay buffer, instead of on every
        sampled batch. Costs ``n_actions`` float32 per stored transition. Works with SB3's ``ReplayBuffer``,
        ``DictReplayBuffer`` and ``NStepReplayBuffer``; with other buffers or a ``VecNormalize`` env the teacher
        is evaluated on each batch.
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
    teacher: Teacher | None
    alpha_schedule: Schedule

    def __init__(
        self,
        policy: str | type[DQNPolicy],
        env: GymEnv | str,
        teacher: TeacherLike | None = None,
        alpha: float | Schedule = 0.5,
        temperature: float = 1.0,
        teacher_cache: bool = True,
        trust_teacher: bool = False,
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
        check_alpha(alpha)
        check_temperature(temperature)
        self.alpha = alpha
        self.temperature = temperature
        self.teacher_cache = teacher_cache
        self.trust_teacher = trust_teacher
        self.teacher = teacher  # type: ignore[assignment]  # prepared into a Teacher by _setup_model()
        if _init_setup_model:
            if teacher is None and not self._is_plain_dqn():
                raise ValueError(
                    f"alpha={alpha!r} needs a teacher: pass teacher='path/to/teacher.zip' (or a loaded SB3 DQN model), "
                    "or alpha=0.0 for plain DQN"
                )
            self._setup_model()

    def _setup_model(self) -> None:
        # load() sets alpha, temperature and teacher from the zip and its kwargs without __init__: check here too
        check_alpha(self.alpha)
        check_temperature(self.temperature)
        self.alpha_schedule = FloatSchedule(self.alpha)
        sb3_buffer_class = self._use_teacher_values_buffer() if self.teacher_cache else None
        with warnings.catch_warnings():
            # SB3 warns that n_steps is ignored whenever replay_buffer_class is set: not so when it is set to SB3's own
            # choice, with SB3's n-step arguments
            if sb3_buffer_class is NStepReplayBuffer and self.replay_buffer_kwargs.get("n_steps") == self.n_steps:
                warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored because a custom `replay_buffer_class`")
            super()._setup_model()
        if sb3_buffer_class is not None:
            # The zip keeps SB3's class, so that plain DQN.load reads it; _setup_model maps it again on load
            self.replay_buffer_class = sb3_buffer_class
        self._setup_teacher()

    def _use_teacher_values_buffer(self) -> type[ReplayBuffer] | None:
        """
        Have SB3 build the replay buffer as the class that keeps the teacher's values (``teacher_cache=True``).

        The class extends the one SB3 would build (OffPolicyAlgorithm._setup_model): ``replay_buffer_class`` if
        given, else a ``DictReplayBuffer`` for a Dict observation space, a ``NStepReplayBuffer`` when ``n_steps > 1``,
        a ``ReplayBuffer`` otherwise. Other classes are kept, with a warning.

        :return: SB3's class, to keep as ``replay_buffer_class`` once the buffer is built; None if unchanged
        """
        if self.replay_buffer_class is None:
            if isinstance(self.observation_space, spaces.Dict):
                if self.n_steps > 1:
                    return None  # SB3 refuses it: let it say so
                self.replay_buffer_class = DictReplayBuffer
            elif self.n_steps > 1:
                self.replay_buffer_class = NStepReplayBuffer
                # Required arguments of n-step returns, as SB3 adds them
                self.replay_buffer_kwargs.update({"n_steps": self.n_steps, "gamma": self.gamma})
            else:
                self.replay_buffer_class = ReplayBuffer
        sb3_buffer_class = self.replay_buffer_class
        if issubclass(sb3_buffer_class, TeacherValuesMixin):
            return None  # passed by the user: theirs to save
        teacher_values_class = TEACHER_VALUES_BUFFERS.get(sb3_buffer_class)
        if teacher_values_class is None:
            self._warn_teacher_cache_unsupported(sb3_buffer_class)
            return None
        self.replay_buffer_class = teacher_values_class  # type: ignore[assignment]
        return sb3_buffer_class

    @staticmethod
    def _warn_teacher_cache_unsupported(buffer_class: type) -> None:
        """
        Warn that the replay buffer cannot keep the teacher's values.

        :param buffer_class: The replay buffer's class
        """
        warnings.warn(
            f"teacher_cache=True has no effect with {buffer_class.__name__}: the teacher is evaluated on each sampled "
            "batch (supported: ReplayBuffer, DictReplayBuffer, NStepReplayBuffer)"
        )

    def _setup_teacher(self) -> None:
        if self.teacher is not None:
            self.teacher = load_teacher(
                self.teacher, self.observation_space, self.action_space, self.device, trust=self.trust_teacher
            )
        if isinstance(self.replay_buffer, TeacherValuesMixin):
            # Values stored so far came from another teacher, or from none
            self.replay_buffer.invalidate_teacher_values()

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """
        Save the replay buffer as a pickle file of SB3's own buffer class, without the teacher's values.

        Plain SB3 loads it (``DQN.load_replay_buffer``); ``DistilledDQN.load_replay_buffer`` recomputes the values.

        :param path: Path to the file where the replay buffer should be saved.
            if path is a str or pathlib.Path, the path is automatically created if necessary.
        """
        if isinstance(self.replay_buffer, TeacherValuesMixin):
            save_to_pkl(path, self.replay_buffer.sb3_buffer(), self.verbose)
        else:
            super().save_replay_buffer(path)

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        super().load_replay_buffer(path, truncate_last_traj)
        assert self.replay_buffer is not None
        # A buffer saved by DQN (or by DistilledDQN, which saves SB3's class) gains teacher values
        teacher_values_class = TEACHER_VALUES_BUFFERS.get(type(self.replay_buffer))
        if self.teacher_cache and teacher_values_class is not None:
            self.replay_buffer = teacher_values_class.from_sb3_buffer(self.replay_buffer)  # type: ignore[assignment]
        elif self.teacher_cache and not isinstance(self.replay_buffer, TeacherValuesMixin):
            self._warn_teacher_cache_unsupported(type(self.replay_buffer))
        if isinstance(self.replay_buffer, TeacherValuesMixin):
            # None of its values may come from this teacher
            self.replay_buffer.invalidate_teacher_values()

    def _uses_teacher_values(self) -> bool:
        """Whether updates read the teacher's values from the replay buffer rather than computing them."""
        return (
            self.teacher_cache
            and self.teacher is not None
            # Stored observations are raw, as the teacher saw them in training (a teacher trained with VecNormalize
            # applies its own frozen statistics); sampled ones are normalized with the student's running statistics
            and isinstance(self.replay_buffer, TeacherValuesMixin)
        )

    def set_teacher(self, teacher: TeacherLike | None, trust_teacher: bool = False) -> None:
        """
        Give the model a (new) teacher: load it, check its spaces, freeze it and move it to the model's device.

        :param teacher: Path to an SB3 model zip or RL Zoo log folder, a loaded SB3 model, a ``Teacher``, or None to
            remove it
        :param trust_teacher: Whether a path comes from a source you trust (see the class's ``trust_teacher``)
        """
        self.teacher = teacher  # type: ignore[assignment]
        self.trust_teacher = trust_teacher
        self._setup_teacher()

    def _is_plain_dqn(self) -> bool:
        """Whether alpha is the constant 0, so that no teacher is needed."""
        return not callable(self.alpha) and self.alpha == 0

    def _check_teacher_ready(self) -> None:
        if self.teacher is None and not self._is_plain_dqn():
            raise ValueError(
                f"This DistilledDQN has alpha={self.alpha!r} but no teacher (teachers are never saved with the student): "
                "load it with DistilledDQN.load(path, env=env, teacher='teacher.zip') or call "
                "model.set_teacher('teacher.zip') before learn()"
            )
        if self.teacher is not None and self._vec_normalize_env is not None and not self._uses_teacher_values():
            # Batches come normalized with the student's statistics, which the teacher never saw
            raise ValueError(
                f"With a VecNormalize env, the teacher must see the raw observations the replay buffer stores: keep "
                f"teacher_cache=True (now {self.teacher_cache!r}) with SB3's ReplayBuffer, DictReplayBuffer or "
                f"NStepReplayBuffer (now {type(self.replay_buffer).__name__})"
            )

    def _current_alpha(self) -> float:
        alpha = self.alpha_schedule(self._current_progress_remaining)
        check_alpha(alpha, progress_remaining=self._current_progress_remaining)
        return alpha

    def _distillation_terms(
        self, observations: PyTorchObs, student_q_values: th.Tensor, teacher_q_values: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        The distillation loss on a batch, and where the student's and the teacher's greedy actions agree.

        :param observations: The sampled observations
        :param student_q_values: The student's Q-values for all actions on them, with gradients
        :param teacher_q_values: The teacher's values of the observations if the replay buffer kept them,
            else None to evaluate the teacher now
        :return: (distillation loss, boolean agreement per sample)
        """
        assert self.teacher is not None
        if teacher_q_values is None:
            teacher_q_values = self.teacher.q_values(observations)
        return (
            distillation_loss(student_q_values, teacher_q_values, self.temperature),
            greedy_agreement(student_q_values, teacher_q_values),
        )

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self._check_teacher_ready()
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update learning rate according to schedule
        self._update_learning_rate(self.policy.optimizer)
        alpha = self._current_alpha()
        if self._uses_teacher_values():
            # One batched teacher pass over the transitions stored since the last update
            self.replay_buffer.update_teacher_values(self.teacher)  # type: ignore[union-attr, arg-type]

        # Per-step statistics stay tensors until the end: beside the loss's finiteness check, one synchronisation per
        # train() call, not four per step
        td_losses, distill_losses, losses, agreements = [], [], [], []
        for gradient_step in range(gradient_steps):
            # Sample replay buffer
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
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

            # Retrieve the q-values for the actions from the replay buffer
            current_q_values = th.gather(all_q_values, dim=1, index=replay_data.actions.long())

            # Compute Huber loss (less sensitive to outliers)
            td_loss = F.smooth_l1_loss(current_q_values, target_q_values)
            td_losses.append(td_loss.detach())

            loss = td_loss
            if self.teacher is not None:
                distill_loss, agreement = self._distillation_terms(
                    replay_data.observations, all_q_values, getattr(replay_data, "teacher_q_values", None)
                )
                # L = (1 - alpha) * L_TD + alpha * T^2 * KL(p_T || p_S), as one interpolation (exact at alpha = 0 and 1)
                loss = th.lerp(td_loss, distill_loss, alpha)
                distill_losses.append(distill_loss.detach())
                agreements.append(agreement)
            losses.append(loss.detach())
            # A NaN or inf loss would make every weight NaN at once: stop before the gradient reaches them
            self._check_finite_loss(
                loss, td_loss, distill_losses[-1] if self.teacher is not None else None, alpha, gradient_step
            )

            # Optimize the policy
            self.policy.optimizer.zero_grad()
            loss.backward()
            # Clip gradient norm
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()

        # Increase update counter
        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", th.stack(losses).mean().item())
        self.logger.record("train/td_loss", th.stack(td_losses).mean().item())
        self.logger.record("train/alpha", alpha)
        if distill_losses:
            self.logger.record("train/distill_loss", th.stack(distill_losses).mean().item())
            self.logger.record("train/teacher_agreement", th.cat(agreements).float().mean().item())

    def _check_finite_loss(
        self, loss: th.Tensor, td_loss: th.Tensor, distill_loss: th.Tensor | None, alpha: float, gradient_step: int
    ) -> None:
        """
        Fail, before any weight is updated, if the loss of a gradient step is NaN or inf.

        :param loss: The loss about to be minimised
        :param td_loss: Its TD term
        :param distill_loss: Its distillation term (None without a teacher)
        :param alpha: The weight of the distillation term
        :param gradient_step: The gradient step within this ``train()`` call
        """
        if th.isfinite(loss):
            return
        distill_text = f"{distill_loss.item()}" if distill_loss is not None else "none (no teacher)"
        raise ValueError(
            f"Non-finite loss at update {self._n_updates + gradient_step + 1} (num_timesteps={self.num_timesteps}): "
            f"loss={loss.item()}, td_loss={td_loss.item()}, distill_loss={distill_text}, alpha={alpha}; "
            "the student was not updated. Check the rewards (inf or NaN?), learning_rate and max_grad_norm"
        )

    def learn(
        self: SelfDistilledDQN,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DistilledDQN",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDistilledDQN:
        self._check_teacher_ready()
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        # The teacher is never saved: the student's zip stays a plain DQN zip
        return [*super()._excluded_save_params(), "teacher"]
