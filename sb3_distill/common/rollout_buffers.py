"""
Rollout buffers that carry the teacher's values of each collected observation, for the on-policy students (PPO).

The teacher sees each observation of a rollout once: when the rollout is complete, the student calls
:meth:`TeacherValuesRolloutMixin.compute_teacher_values`, which evaluates the whole rollout in one batched pass (in
chunks of ``teacher_batch_size``), and the values are shuffled and cut into minibatches with SB3's own fields by
``get()``. Every epoch over the rollout then reads them instead of running the teacher again.

With a ``VecNormalize`` env the rollout stores the observations normalized with the student's running statistics,
which the teacher never saw: the student passes the raw ones to ``add()`` (``teacher_observation``) and the teacher is
evaluated on those.

Each class is an SB3 rollout buffer class plus the values, built through SB3's ``rollout_buffer_class``; the student
keeps SB3's own class in ``rollout_buffer_class`` so that its zip loads with plain SB3
(:func:`use_teacher_values_rollout_buffer`).
"""

from collections.abc import Generator
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples, RolloutBufferSamples, TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_distill.common.teacher import Teacher, teacher_value_width


class TeacherRolloutBufferSamples(NamedTuple):
    """SB3's ``RolloutBufferSamples`` with the teacher's values of ``observations``."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    #: ``Teacher.values`` of the observations, ``(batch, width)``; None if they were not computed
    teacher_values: th.Tensor | None


class TeacherDictRolloutBufferSamples(NamedTuple):
    """SB3's ``DictRolloutBufferSamples`` with the teacher's values of ``observations``."""

    observations: TensorDict
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    #: ``Teacher.values`` of the observations, ``(batch, width)``; None if they were not computed
    teacher_values: th.Tensor | None


for _sb3_samples, _samples in (
    (RolloutBufferSamples, TeacherRolloutBufferSamples),
    (DictRolloutBufferSamples, TeacherDictRolloutBufferSamples),
):
    if _samples._fields != (*_sb3_samples._fields, "teacher_values"):  # pragma: no cover  (an SB3 upgrade changed them)
        raise ImportError(
            f"sb3_distill expects SB3's {_sb3_samples.__name__} to have the fields {_samples._fields[:-1]}, got "
            f"{_sb3_samples._fields}: upgrade sb3-distill"
        )


class TeacherValuesRolloutMixin:
    """
    Keeps ``teacher_values[step, env]`` beside each collected transition and returns it with each minibatch.

    Used on top of SB3's ``RolloutBuffer`` and ``DictRolloutBuffer`` (``sb3_class``), with the same constructor
    arguments. Allocates ``Teacher.values``' width in float32 per transition: ``n_actions`` for a Discrete action space,
    ``2 * action_dim`` (the mean and log-std of the teacher's action distribution) for a Box one.
    """

    #: The SB3 buffer class this one extends
    sb3_class: ClassVar[type[RolloutBuffer]]
    #: Most observations the teacher evaluates at once (bounds the memory of the pass over a large image rollout)
    teacher_batch_size: ClassVar[int] = 4096
    # Attributes of the SB3 buffer this is mixed into
    buffer_size: int
    n_envs: int
    pos: int
    full: bool
    generator_ready: bool
    action_space: spaces.Space
    observations: Any
    # Added here
    #: ``Teacher.values`` of each collected observation, ``(buffer_size, n_envs, width)`` (flattened by ``get()``)
    teacher_values: np.ndarray
    #: The raw observations the teacher sees, where they differ from ``observations`` (``VecNormalize``), else None
    teacher_observations: Any
    #: Whether ``teacher_values`` hold the teacher's values of this rollout (else the samples carry None)
    teacher_values_ready: bool

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        if not isinstance(self.action_space, (spaces.Discrete, spaces.Box)):
            raise TypeError(
                f"{type(self).__name__} keeps the teacher's values of each collected observation for a Discrete or Box "
                f"action space, got {self.action_space}"
            )
        width = teacher_value_width(self.action_space)
        self.teacher_values = np.zeros((self.buffer_size, self.n_envs, width), dtype=np.float32)
        self.teacher_observations = None
        self.teacher_values_ready = False

    def add(self, *args: Any, teacher_observation: np.ndarray | dict[str, np.ndarray] | None = None, **kwargs: Any) -> None:
        """
        Add a transition as SB3's buffer does; with ``teacher_observation``, the raw observation the teacher sees.

        :param teacher_observation: The observation before ``VecNormalize`` (None: the teacher sees the stored one)
        """
        if teacher_observation is not None:
            if self.teacher_observations is None:
                self.teacher_observations = _zeros_like_storage(self.observations)
            _store(self.teacher_observations, self.pos, teacher_observation)
        super().add(*args, **kwargs)  # type: ignore[misc]

    def compute_teacher_values(self, teacher: Teacher) -> None:
        """
        Evaluate the teacher on the complete rollout in one batched pass (chunks of ``teacher_batch_size``), on the raw
        observations where they were kept.

        :param teacher: The student's prepared teacher
        """
        if not self.full:
            raise RuntimeError(
                f"{type(self).__name__}.compute_teacher_values() needs a complete rollout, got {self.pos} of "
                f"{self.buffer_size} steps"
            )
        observations = self.teacher_observations if self.teacher_observations is not None else self.observations
        n_transitions = self.buffer_size * self.n_envs
        flat_observations = _map_storage(observations, self._flat)
        # A view: writing into it fills teacher_values, in the same (step, env) order as the observations
        flat_values = self._flat(self.teacher_values)
        for start in range(0, n_transitions, self.teacher_batch_size):
            chunk = slice(start, start + self.teacher_batch_size)
            chunk_observations = _map_storage(flat_observations, lambda array, chunk=chunk: self._as_tensor(array[chunk]))
            flat_values[chunk] = teacher.values(chunk_observations).cpu().numpy()
        self.teacher_values_ready = True

    def _flat(self, array: np.ndarray) -> np.ndarray:
        """
        A stored array with one row per transition: ``(buffer_size, n_envs, ...)`` -> ``(buffer_size * n_envs, ...)``
        (a view), or as it is once ``get()`` flattened it (env-major then, for every field alike).
        """
        return array if self.generator_ready else array.reshape(self.buffer_size * self.n_envs, *array.shape[2:])

    def _as_tensor(self, array: np.ndarray) -> th.Tensor:
        """An array as a tensor on the buffer's device, without a copy where it already is one."""
        return th.as_tensor(array, device=self.device)  # type: ignore[attr-defined]

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        if not self.generator_ready:
            # Flattened with SB3's own fields: the same (step, env) -> row order, so that the teacher's values follow
            # their observations through the shuffle
            self.teacher_values = self.swap_and_flatten(self.teacher_values)  # type: ignore[attr-defined]
            if self.teacher_observations is not None:
                self.teacher_observations = _map_storage(self.teacher_observations, self.swap_and_flatten)  # type: ignore[attr-defined]
        yield from super().get(batch_size)  # type: ignore[misc]

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        samples = super()._get_samples(batch_inds, env)  # type: ignore[misc]
        teacher_values = None
        if self.teacher_values_ready:
            # Fancy indexing already copied: share that array with torch rather than copying it again
            teacher_values = th.from_numpy(self.teacher_values[batch_inds]).to(self.device)  # type: ignore[attr-defined]
        samples_class = (
            TeacherDictRolloutBufferSamples if isinstance(samples, DictRolloutBufferSamples) else TeacherRolloutBufferSamples
        )
        # SB3's fields, whatever they hold, then the teacher's values
        return samples_class(**samples._asdict(), teacher_values=teacher_values)


def _map_storage(storage: Any, function: Any) -> Any:
    """``function`` applied to an observation array, or to each array of a Dict observation's storage."""
    if isinstance(storage, dict):
        return {key: function(array) for key, array in storage.items()}
    return function(storage)


def _zeros_like_storage(storage: Any) -> Any:
    return _map_storage(storage, np.zeros_like)


def _store(storage: Any, position: int, observation: Any) -> None:
    """Write one step's observation of every env into ``storage[position]``, shaped as SB3's buffers shape it."""
    if isinstance(storage, dict):
        for key, array in storage.items():
            _store(array, position, observation[key])
        return
    observation = np.asarray(observation)
    if observation.size != storage[position].size:
        raise ValueError(
            f"The raw observations for the teacher have shape {observation.shape} but the rollout's have "
            f"{storage.shape[1:]}: VecNormalize must be the last wrapper that changes the observations (e.g. not under a "
            "VecFrameStack), so that its original observations are the ones the student sees, before normalization"
        )
    storage[position] = observation.reshape(storage.shape[1:])


class TeacherValuesRolloutBuffer(TeacherValuesRolloutMixin, RolloutBuffer):
    """SB3's ``RolloutBuffer`` with the teacher's values of each collected observation."""

    sb3_class = RolloutBuffer


class TeacherValuesDictRolloutBuffer(TeacherValuesRolloutMixin, DictRolloutBuffer):
    """SB3's ``DictRolloutBuffer`` (Dict observations) with the teacher's values of each collected observation."""

    sb3_class = DictRolloutBuffer


#: The buffer that extends each SB3 rollout buffer class
TEACHER_VALUES_ROLLOUT_BUFFERS: dict[type[RolloutBuffer], type[RolloutBuffer]] = {
    RolloutBuffer: TeacherValuesRolloutBuffer,
    DictRolloutBuffer: TeacherValuesDictRolloutBuffer,
}


def use_teacher_values_rollout_buffer(
    rollout_buffer_class: type[RolloutBuffer] | None, observation_space: spaces.Space
) -> tuple[type[RolloutBuffer], type[RolloutBuffer]]:
    """
    The rollout buffer class a student builds, and SB3's class that it keeps in ``rollout_buffer_class`` (and so in its
    zip, which plain SB3 then loads).

    :param rollout_buffer_class: The student's ``rollout_buffer_class``: None (SB3's choice: a ``DictRolloutBuffer`` for
        a Dict observation space, a ``RolloutBuffer`` otherwise), one of those two, or a class of this module
    :param observation_space: The student's observation space
    :return: (the class to build, SB3's class to keep)
    """
    if rollout_buffer_class is None:
        rollout_buffer_class = DictRolloutBuffer if isinstance(observation_space, spaces.Dict) else RolloutBuffer
    if issubclass(rollout_buffer_class, TeacherValuesRolloutMixin):
        return rollout_buffer_class, rollout_buffer_class.sb3_class
    teacher_values_class = TEACHER_VALUES_ROLLOUT_BUFFERS.get(rollout_buffer_class)
    if teacher_values_class is None:
        raise ValueError(
            f"rollout_buffer_class={rollout_buffer_class.__name__} is not supported by a distilled on-policy student: "
            "it keeps the teacher's values of each rollout in SB3's RolloutBuffer or DictRolloutBuffer (pass None, "
            "one of those, or a subclass of sb3_distill.common.rollout_buffers.TeacherValuesRolloutMixin)"
        )
    return teacher_values_class, rollout_buffer_class
