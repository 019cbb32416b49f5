"""
The replay buffer that keeps the teacher's values (``teacher_cache=True``): chosen as the class that extends the one SB3
would build, saved and loaded as SB3's own class so that plain SB3 reads the files.
"""

import contextlib
import warnings
from collections.abc import Iterator

from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from sb3_distill.common.buffers import TEACHER_VALUES_BUFFERS, TeacherValuesMixin
from sb3_distill.common.teacher import Teacher


def use_teacher_values_buffer(model: OffPolicyAlgorithm, warn: bool = True) -> type[ReplayBuffer] | None:
    """
    Have SB3 build the replay buffer as the class that keeps the teacher's values (``teacher_cache=True``).

    The class extends the one SB3 would build (OffPolicyAlgorithm._setup_model): ``replay_buffer_class`` if
    given, else a ``DictReplayBuffer`` for a Dict observation space, a ``NStepReplayBuffer`` when ``n_steps > 1``,
    a ``ReplayBuffer`` otherwise. Other classes are kept, with a warning when ``warn``.

    :param model: The model, before SB3's ``_setup_model``: its ``replay_buffer_class`` (and kwargs) are set
    :param warn: Warn when the class cannot keep the values (the user asked for the cache: ``teacher_cache=True``)
    :return: SB3's class, to keep as ``replay_buffer_class`` once the buffer is built; None if unchanged
    """
    if model.replay_buffer_class is None:
        if isinstance(model.observation_space, spaces.Dict):
            if model.n_steps > 1:
                return None  # SB3 refuses it: let it say so
            model.replay_buffer_class = DictReplayBuffer
        elif model.n_steps > 1:
            model.replay_buffer_class = NStepReplayBuffer
            # Required arguments of n-step returns, as SB3 adds them
            model.replay_buffer_kwargs.update({"n_steps": model.n_steps, "gamma": model.gamma})
        else:
            model.replay_buffer_class = ReplayBuffer
    sb3_buffer_class = model.replay_buffer_class
    if issubclass(sb3_buffer_class, TeacherValuesMixin):
        return None  # passed by the user: theirs to save
    teacher_values_class = TEACHER_VALUES_BUFFERS.get(sb3_buffer_class)
    if teacher_values_class is None:
        if warn:
            warn_teacher_cache_unsupported(sb3_buffer_class)
        return None
    model.replay_buffer_class = teacher_values_class  # type: ignore[assignment]
    return sb3_buffer_class


@contextlib.contextmanager
def sb3_n_steps_warning_ignored(model: OffPolicyAlgorithm, sb3_buffer_class: type[ReplayBuffer] | None) -> Iterator[None]:
    """
    Within it, SB3's warning that ``n_steps`` is ignored whenever ``replay_buffer_class`` is set is silenced when that
    class extends SB3's own choice, with SB3's n-step arguments: then it is not ignored.

    :param model: The model whose replay buffer SB3 builds within it
    :param sb3_buffer_class: The class ``use_teacher_values_buffer`` extended, or None
    """
    with warnings.catch_warnings():
        if sb3_buffer_class is NStepReplayBuffer and model.replay_buffer_kwargs.get("n_steps") == model.n_steps:
            warnings.filterwarnings("ignore", message=r"`n_steps=\d+` is ignored because a custom `replay_buffer_class`")
        yield


def warn_teacher_cache_unsupported(buffer_class: type) -> None:
    """
    Warn that the replay buffer cannot keep the teacher's values.

    :param buffer_class: The replay buffer's class
    """
    warnings.warn(
        f"teacher_cache=True has no effect with {buffer_class.__name__}: the teacher is evaluated on each sampled "
        "batch (supported: ReplayBuffer, DictReplayBuffer, NStepReplayBuffer)"
    )


def loaded_replay_buffer(replay_buffer: ReplayBuffer, teacher_cache: bool | None) -> ReplayBuffer:
    """
    A replay buffer just loaded from a file (saved by DQN, or by DistilledDQN, which saves SB3's class), with teacher
    values when ``teacher_cache`` and its class allows, none of them computed yet.

    :param replay_buffer: The loaded buffer
    :param teacher_cache: The model's ``teacher_cache``: None (where the class allows, silently), True (warn where it
        cannot) or False
    :return: The buffer to use
    """
    teacher_values_class = TEACHER_VALUES_BUFFERS.get(type(replay_buffer))
    if teacher_cache is not False and teacher_values_class is not None:
        replay_buffer = teacher_values_class.from_sb3_buffer(replay_buffer)  # type: ignore[assignment]
    elif teacher_cache is True and not isinstance(replay_buffer, TeacherValuesMixin):
        warn_teacher_cache_unsupported(type(replay_buffer))
    if isinstance(replay_buffer, TeacherValuesMixin):
        # None of its values may come from this teacher
        replay_buffer.invalidate_teacher_values()
    return replay_buffer


def uses_teacher_values(teacher_cache: bool | None, teacher: Teacher | None, replay_buffer: ReplayBuffer | None) -> bool:
    """
    Whether updates read the teacher's values from the replay buffer rather than computing them.

    :param teacher_cache: The model's ``teacher_cache``
    :param teacher: Its teacher
    :param replay_buffer: Its replay buffer
    """
    return (
        teacher_cache is not False
        and teacher is not None
        # Stored observations are raw, as the teacher saw them in training (a teacher trained with VecNormalize
        # applies its own frozen statistics); sampled ones are normalized with the student's running statistics
        and isinstance(replay_buffer, TeacherValuesMixin)
    )
