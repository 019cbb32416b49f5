"""
What the off-policy students (DQN, QR-DQN, SAC, TD3) share beyond :class:`DistillationMixin`: the teacher's values
cached per stored transition in the replay buffer (``teacher_cache``), replay buffers saved as SB3's own class, and
QDagger's offline phase, where the teacher fills the replay buffer before the student's first step.
"""

import io
import pathlib
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.save_util import save_to_pkl
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.common.utils import configure_logger

from sb3_distill.common.buffers import TeacherReplayBufferSamples, TeacherValuesMixin
from sb3_distill.common.distillation import DistillationMixin
from sb3_distill.common.offline import check_offline_settings, collect_teacher_transitions
from sb3_distill.common.replay import (
    loaded_replay_buffer,
    sb3_n_steps_warning_ignored,
    use_teacher_values_buffer,
    uses_teacher_values,
)


class OffPolicyDistillationMixin(DistillationMixin):
    """
    The teacher-value cache and the offline phase, mixed in before an SB3 off-policy algorithm
    (``DistilledSAC(OffPolicyDistillationMixin, SAC)``).

    A student reads the teacher's values of a sampled batch with :meth:`_teacher_values_of` (cached or computed now),
    and may override :meth:`_train_offline` (the offline phase's gradient steps; by default its own ``train()``).
    """

    # Of the SB3 off-policy algorithm this is mixed into
    replay_buffer: Any
    replay_buffer_class: Any
    batch_size: int
    num_timesteps: int
    _vec_normalize_env: Any
    _logger: Any

    def _init_off_policy_distillation(
        self, teacher_cache: bool | None, offline_transitions: int, offline_gradient_steps: int, offline_epsilon: float
    ) -> None:
        """
        Set the cache and offline-phase settings (called by the student's ``__init__`` before ``_init_distillation``).

        ``teacher_cache``: None (the default) keeps the teacher's values in the replay buffer where its class allows,
        silently; True asks for it, with a warning where it has no effect; False evaluates the teacher on each batch.
        """
        if teacher_cache not in (None, True, False):
            raise TypeError(f"teacher_cache={teacher_cache!r} must be None (where the buffer allows), True or False")
        self.teacher_cache = teacher_cache
        self.offline_transitions = offline_transitions
        self.offline_gradient_steps = offline_gradient_steps
        self.offline_epsilon = offline_epsilon
        # The offline phase runs once per model: saved with it
        self.offline_done = False
        self.teacher_transitions = 0

    def _check_settings(self) -> None:
        super()._check_settings()
        check_offline_settings(self.offline_transitions, self.offline_gradient_steps, self.offline_epsilon)

    def _setup_model(self) -> None:
        self._check_settings()
        self._setup_alpha()
        use_cache = self.teacher_cache is not False
        sb3_buffer_class = use_teacher_values_buffer(self, warn=self.teacher_cache is True) if use_cache else None  # type: ignore[arg-type]
        with sb3_n_steps_warning_ignored(self, sb3_buffer_class):  # type: ignore[arg-type]
            super()._setup_model()  # type: ignore[misc]
        if sb3_buffer_class is not None:
            # The zip keeps SB3's class, so that the plain algorithm's load() reads it; _setup_model maps it again on load
            self.replay_buffer_class = sb3_buffer_class
        self._setup_teacher()

    def _setup_teacher(self) -> None:
        super()._setup_teacher()
        if isinstance(self.replay_buffer, TeacherValuesMixin):
            # Values stored so far came from another teacher, or from none
            self.replay_buffer.invalidate_teacher_values()

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """
        Save the replay buffer as a pickle file of SB3's own buffer class, without the teacher's values.

        Plain SB3 loads it (e.g. ``DQN.load_replay_buffer``); the student's ``load_replay_buffer`` recomputes the values.

        :param path: Path to the file where the replay buffer should be saved.
            if path is a str or pathlib.Path, the path is automatically created if necessary.
        """
        if isinstance(self.replay_buffer, TeacherValuesMixin):
            save_to_pkl(path, self.replay_buffer.sb3_buffer(), self.verbose)
        else:
            super().save_replay_buffer(path)  # type: ignore[misc]

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        super().load_replay_buffer(path, truncate_last_traj)  # type: ignore[misc]
        assert self.replay_buffer is not None
        # A buffer saved by the plain algorithm (or by a student, which saves SB3's class) gains teacher values
        self.replay_buffer = loaded_replay_buffer(self.replay_buffer, self.teacher_cache)

    def _uses_teacher_values(self) -> bool:
        """Whether updates read the teacher's values from the replay buffer rather than computing them."""
        return uses_teacher_values(self.teacher_cache, self.teacher, self.replay_buffer)

    def _sample_replay(self, batch_size: int) -> Any:
        """
        A batch of the replay buffer for ``train()``, with the teacher's values of its raw observations
        (``teacher_q_values``): those the buffer keeps, or, behind a ``VecNormalize`` env without the cache (HER, a
        custom buffer, ``teacher_cache=False``), computed here on the raw sampled (and relabelled) observations before
        they are normalized for the student as SB3's buffers normalize them. Otherwise the batch as SB3 samples it.

        :param batch_size: The batch size
        """
        env = self._vec_normalize_env
        if env is None or self.teacher is None or self._uses_teacher_values():
            return self.replay_buffer.sample(batch_size, env=env)
        raw = self.replay_buffer.sample(batch_size, env=None)
        # The teacher sees what it saw in its own training: the raw observations (its own statistics, if any, apply)
        teacher_values = self.teacher.values(raw.observations)

        def normalized(observations: Any) -> Any:
            if isinstance(observations, dict):
                arrays = {key: value.cpu().numpy() for key, value in observations.items()}
                return {key: th.as_tensor(value, device=self.device) for key, value in env.normalize_obs(arrays).items()}
            return th.as_tensor(env.normalize_obs(observations.cpu().numpy()), device=self.device)

        rewards = th.as_tensor(env.normalize_reward(raw.rewards.cpu().numpy()).astype(np.float32), device=self.device)
        samples = raw._replace(
            observations=normalized(raw.observations), next_observations=normalized(raw.next_observations), rewards=rewards
        )
        return TeacherReplayBufferSamples(*samples, teacher_values)  # type: ignore[call-arg]

    def _prepare_teacher_values(self) -> None:
        """Before a ``train()`` call's updates: the buffer evaluates new transitions when a batch first samples one."""
        if self._uses_teacher_values():
            self.replay_buffer.teacher = self.teacher

    def _teacher_values_of(self, observations: PyTorchObs, replay_data: Any) -> th.Tensor:
        """
        The teacher's values (``Teacher.values``) of a sampled batch: those the replay buffer kept, else computed now.

        :param observations: The batch's observations
        :param replay_data: The batch, with ``teacher_q_values`` if the buffer keeps them
        """
        assert self.teacher is not None
        cached = getattr(replay_data, "teacher_q_values", None)
        return cached if cached is not None else self.teacher.values(observations)

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        result = super()._setup_learn(*args, **kwargs)
        self.run_offline_phase()
        return result

    def run_offline_phase(self) -> None:
        """
        QDagger's offline phase, once per model: the teacher acts in the training env (its greedy or mean action, a
        random one with probability ``offline_epsilon``) for ``offline_transitions`` transitions stored in the replay
        buffer, then the student takes ``offline_gradient_steps`` gradient steps on it with the usual loss.
        ``learn()`` calls it; call it yourself to run it earlier. Logs ``offline/teacher_transitions`` and
        ``offline/gradient_steps``.
        """
        if self.offline_done or self.offline_transitions == 0:
            return
        if self.teacher is None:
            raise ValueError(
                f"offline_transitions={self.offline_transitions!r} needs a teacher to act: load the model with "
                "teacher=... or call set_teacher() first"
            )
        self._check_teacher_ready()
        if getattr(self, "_logger", None) is None:
            # Before learn(): a logger as SB3 would configure it, replaced by learn()'s own
            self._logger = configure_logger(self.verbose)
        stored = collect_teacher_transitions(self, self.teacher, self.offline_transitions, self.offline_epsilon)  # type: ignore[arg-type]
        self.teacher_transitions += stored
        self._train_offline(self.offline_gradient_steps)
        self.offline_done = True
        self.logger.record("offline/teacher_transitions", self.teacher_transitions)
        self.logger.record("offline/gradient_steps", self.offline_gradient_steps)
        self._record_distillation_logs()
        self.logger.dump(step=self.num_timesteps)

    def _train_offline(self, gradient_steps: int) -> None:
        """
        The offline phase's gradient steps on the teacher's transitions. By default the student's own ``train()``,
        which updates its target networks itself (SAC, TD3); DQN students update theirs between chunks.

        :param gradient_steps: Gradient steps in all
        """
        if gradient_steps > 0:
            self.train(gradient_steps=gradient_steps, batch_size=self.batch_size)  # type: ignore[attr-defined]
