"""
What every student shares, whatever its algorithm: the teacher (loaded, checked against the student, frozen, never
saved), the weight alpha (a float, an SB3 schedule or QDagger's ``"performance"`` rule), the temperature, the checks
that fail early, and the logs. A student is ``class DistilledX(DistillationMixin, X)``: its own module only says where
the distillation term enters X's loss and which of its outputs the term compares.

Off-policy students add :class:`sb3_distill.common.off_policy.OffPolicyDistillationMixin` (the teacher-value cache in
the replay buffer, the offline phase).
"""

from typing import Any, ClassVar, TypeVar

import torch as th
from stable_baselines3.common.type_aliases import MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule

from sb3_distill.common.alpha import (
    AlphaLike,
    PerformanceAlpha,
    check_alpha,
    check_performance_settings,
    check_temperature,
    is_performance_alpha,
    make_performance_alpha,
)
from sb3_distill.common.checks import check_teacher_given, check_teacher_ready
from sb3_distill.common.pairs import check_teacher_pair
from sb3_distill.common.teacher import Teacher, TeacherLike, load_teacher

SelfDistillation = TypeVar("SelfDistillation", bound="DistillationMixin")


class DistillationMixin:
    """
    The teacher, alpha and the checks, mixed in before an SB3 algorithm class (``DistilledDQN(DistillationMixin, DQN)``).

    A student's ``__init__`` calls its algorithm's with ``_init_setup_model=False``, then :meth:`_init_distillation`,
    then ``_setup_model()`` if asked; its ``_setup_model`` ends with :meth:`_setup_teacher` (``load()`` sets the saved
    fields without ``__init__`` and then calls ``_setup_model``, so a teacher passed to ``load()`` is prepared there).
    """

    #: The name of the student's algorithm in messages and in the compatibility table (``common.pairs``)
    student_algorithm: ClassVar[str]
    #: ``learn()``'s default ``log_interval``: the algorithm's own (4 for DQN, SAC, TD3, QR-DQN; 1 for PPO)
    default_log_interval: ClassVar[int] = 4
    teacher: Teacher | None
    alpha_schedule: Schedule
    #: QDagger's weight, prepared by learn() when ``alpha="performance"`` (never saved: rebuilt from the returns)
    performance_alpha: PerformanceAlpha | None
    # Of the SB3 algorithm this is mixed into
    observation_space: Any
    action_space: Any
    device: th.device
    env: Any
    seed: int | None
    verbose: int
    logger: Any
    ep_info_buffer: Any
    _current_progress_remaining: float

    def _init_distillation(
        self,
        teacher: TeacherLike | None,
        alpha: AlphaLike,
        temperature: float,
        trust_teacher: bool,
        distill_loss: str | None,
        alpha_0: float,
        alpha_min: float,
        teacher_return: float | None,
        random_return: float | None,
        performance_eval_episodes: int,
    ) -> None:
        """Set the distillation settings shared by every student (called by the student's ``__init__``)."""
        self.alpha = alpha
        self.temperature = temperature
        self.trust_teacher = trust_teacher
        self.distill_loss = distill_loss
        self.alpha_0 = alpha_0
        self.alpha_min = alpha_min
        self.teacher_return = teacher_return
        self.random_return = random_return
        self.performance_eval_episodes = performance_eval_episodes
        self.performance_alpha = None
        self._check_settings()
        self.teacher = teacher  # type: ignore[assignment]  # prepared into a Teacher by _setup_model()

    def _check_teacher_given(self) -> None:
        """Fail, when a model is constructed, unless it has a teacher or needs none."""
        check_teacher_given(self.teacher, self.alpha, getattr(self, "offline_transitions", 0), self.student_algorithm)

    def _check_settings(self) -> None:
        """Fail unless the distillation settings are valid (``load()`` sets them without ``__init__``: checked twice)."""
        check_alpha(self.alpha)
        check_temperature(self.temperature)
        check_performance_settings(
            self.alpha_0, self.teacher_return, self.random_return, self.performance_eval_episodes, self.alpha_min
        )

    def _setup_alpha(self) -> None:
        """The schedule of a float or scheduled alpha; the performance-based one is built by ``learn()``."""
        self.alpha_schedule = FloatSchedule(0.0 if is_performance_alpha(self.alpha) else self.alpha)  # type: ignore[arg-type]

    def _setup_teacher(self) -> None:
        """Load the teacher, check it against the student (spaces, family, term), freeze it, move it to the device."""
        # A measured teacher return belongs to the teacher it measured
        self.performance_alpha = None
        if self.teacher is not None:
            self.teacher = load_teacher(
                self.teacher, self.observation_space, self.action_space, self.device, trust=self.trust_teacher
            )
            check_teacher_pair(self.student_algorithm, self.teacher, self.distill_loss, self.action_space)

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

    def _check_teacher_ready(self) -> None:
        """Fail, before training, unless a model that needs a teacher has one (teachers are never saved)."""
        check_teacher_ready(self.teacher, self.alpha, type(self).__name__)

    def _current_alpha(self) -> float:
        """The weight of the distillation term now (logs ``train/student_score`` under the performance rule)."""
        if is_performance_alpha(self.alpha):
            performance_alpha = self.prepare_performance_alpha()
            alpha, score = performance_alpha(episode_info["r"] for episode_info in self.ep_info_buffer or ())
            if score is not None:
                self.logger.record("train/student_score", score)
            return alpha
        alpha = self.alpha_schedule(self._current_progress_remaining)
        check_alpha(alpha, progress_remaining=self._current_progress_remaining)
        return alpha

    def prepare_performance_alpha(self) -> PerformanceAlpha:
        """
        The performance-based alpha (``alpha="performance"``), with the returns given to the constructor, or measured
        now where they were None: the teacher's over ``performance_eval_episodes`` deterministic episodes and a random
        policy's, on a copy of the training env made from its spec. Called by ``learn()``; measured once per teacher.

        :return: The weight as a function of the student's recent returns
        """
        if self.performance_alpha is not None:
            return self.performance_alpha
        self.performance_alpha, how = make_performance_alpha(
            self.alpha_0, self.teacher_return, self.random_return, self.teacher, self.env, self.performance_eval_episodes,
            self.seed, self.device, self.alpha_min,
        )  # fmt: skip
        if self.verbose >= 1:
            print(f"Performance-based alpha: {self.performance_alpha} ({how})")
        return self.performance_alpha

    def _record_distillation_logs(self) -> None:
        """Log what is computed only when the logs are written (e.g. ``train/teacher_agreement``); nothing by default."""

    def dump_logs(self, *args: Any, **kwargs: Any) -> None:
        self._record_distillation_logs()
        super().dump_logs(*args, **kwargs)  # type: ignore[misc]

    def learn(
        self: SelfDistillation,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int | None = None,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDistillation:
        self._check_teacher_ready()
        return super().learn(  # type: ignore[misc]
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=self.default_log_interval if log_interval is None else log_interval,
            tb_log_name=type(self).__name__ if tb_log_name is None else tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _setup_learn(self, *args: Any, **kwargs: Any) -> Any:
        result = super()._setup_learn(*args, **kwargs)  # type: ignore[misc]
        # After SB3 reset the env and configured the logger, before the student's first step
        if is_performance_alpha(self.alpha):
            self.prepare_performance_alpha()
        return result

    def _excluded_save_params(self) -> list[str]:
        # The teacher is never saved: the student's zip stays a plain SB3 zip. The performance-based alpha is rebuilt
        # from the saved returns (the plain algorithm's load() could not unpickle it)
        return [*super()._excluded_save_params(), "teacher", "performance_alpha"]  # type: ignore[misc]
