"""
Replay buffers that keep the teacher's values of each stored transition.

Without them, every gradient step runs the teacher on the whole sampled batch (with the Zoo's CartPole
settings, about 30 teacher evaluations per environment step). With them, the teacher sees each stored
observation once: the transitions added since the last evaluation are evaluated in one batched forward pass
when a sampled batch first includes one of them (or when ``update_teacher_values`` is called), and their
values (``Teacher.values``: per-action values, or the mean and log-std of a continuous teacher's action
distribution) are sampled with the batch. The cost is ``n_actions`` float32 values per stored transition for
discrete actions (Atari: 18 at most, 72 bytes; a 100k-transition buffer: 7.2 MB), ``2 * action_dim`` for continuous
ones (HalfCheetah: 12, 48 bytes).

Each class here is an SB3 buffer class plus the values. Off-policy students build one through SB3's
``replay_buffer_class`` and saves its replay buffer as the SB3 class (``sb3_buffer()``), so that plain SB3
can load it.
"""

from collections import namedtuple
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sb3_distill.common.teacher import Teacher, teacher_value_width

SelfTeacherValuesMixin = TypeVar("SelfTeacherValuesMixin", bound="TeacherValuesMixin")

if DictReplayBufferSamples._fields != ReplayBufferSamples._fields:  # pragma: no cover  (an SB3 upgrade split them)
    raise ImportError(
        f"sb3_distill expects SB3's ReplayBufferSamples and DictReplayBufferSamples to have the same fields, "
        f"got {ReplayBufferSamples._fields} and {DictReplayBufferSamples._fields}: upgrade sb3-distill"
    )

#: SB3's replay samples (its own fields, whatever they are) with the teacher's values of ``observations``
#: (None when they are not computed yet). They are the teacher's on the raw stored observations, also when a
#: ``VecNormalize`` env normalizes the sampled ``observations`` for the student
TeacherReplayBufferSamples = namedtuple(  # type: ignore[misc]  # the fields are SB3's: mypy cannot read them
    "TeacherReplayBufferSamples", [*ReplayBufferSamples._fields, "teacher_q_values"]
)

# Attributes the mixin adds to SB3's buffer: left out of the SB3 buffer it saves
TEACHER_ATTRIBUTES = ("teacher_q_values", "n_uncached", "teacher")


class TeacherValuesMixin:
    """
    Keeps ``teacher_q_values[pos, env]`` beside each stored transition and returns it with each sample.

    Used on top of SB3's ``ReplayBuffer``, ``DictReplayBuffer`` and ``NStepReplayBuffer`` (``sb3_class``);
    it takes the same constructor arguments, and allocates one float32 per discrete action per transition.
    """

    #: The SB3 buffer class this one extends
    sb3_class: ClassVar[type[ReplayBuffer]]
    # Attributes of the SB3 buffer this is mixed into
    buffer_size: int
    n_envs: int
    pos: int
    full: bool
    device: th.device
    action_space: spaces.Space
    observations: np.ndarray | dict[str, np.ndarray]
    # Added here
    teacher_q_values: np.ndarray
    n_uncached: int
    #: The teacher that evaluates the newest transitions when a batch first samples one of them (None: such a batch
    #: comes without values); ``DistilledDQN.train`` sets it
    teacher: Teacher | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_teacher_values()

    def _init_teacher_values(self) -> None:
        """
        Allocate the values, none of them computed yet: ``Teacher.values`` per stored transition, ``n_actions`` float32
        for a Discrete action space, the mean and log-std of the teacher's action distribution for a Box one.
        """
        if not isinstance(self.action_space, (spaces.Discrete, spaces.Box)):
            raise TypeError(
                f"{type(self).__name__} keeps the teacher's values of each stored transition for a Discrete or Box action "
                f"space, got {self.action_space}"
            )
        width = teacher_value_width(self.action_space)
        self.teacher_q_values = np.zeros((self.buffer_size, self.n_envs, width), dtype=np.float32)
        self.invalidate_teacher_values()

    @classmethod
    def from_sb3_buffer(cls: type[SelfTeacherValuesMixin], buffer: ReplayBuffer) -> SelfTeacherValuesMixin:
        """
        The transitions of an SB3 buffer (e.g. one loaded with ``load_replay_buffer``) with teacher values.

        The new buffer shares the SB3 buffer's storage; none of its values are computed yet.

        :param buffer: A buffer of exactly ``cls.sb3_class``
        :return: The same transitions in a buffer of this class
        """
        if type(buffer) is not cls.sb3_class:
            raise TypeError(f"{cls.__name__} is built from a {cls.sb3_class.__name__}, got a {type(buffer).__name__}")
        # What unpickling does: a new object of this class with the buffer's state, then the values
        teacher_buffer = cls.__new__(cls)
        teacher_buffer.__dict__.update(buffer.__dict__)
        teacher_buffer._init_teacher_values()
        return teacher_buffer

    def sb3_buffer(self) -> ReplayBuffer:
        """
        The same transitions as a buffer of SB3's own class, without the teacher's values.

        It shares this buffer's storage: pickle it (``DistilledDQN.save_replay_buffer`` does) for a file that plain
        SB3 loads, without sb3_distill.

        :return: A ``sb3_class`` buffer
        """
        return self._sb3_view(env_index=None)

    def _sb3_view(self, env_index: int | None) -> ReplayBuffer:
        """
        A ``sb3_class`` buffer sharing this buffer's storage, of all envs or of one.

        :param env_index: None for all envs, else the env whose column the view holds (as its only env)
        :return: The view
        """
        state = {name: value for name, value in self.__dict__.items() if name not in TEACHER_ATTRIBUTES}
        if env_index is not None:
            state = {name: self._env_column(value, env_index) for name, value in state.items()}
            state["n_envs"] = 1
        view = self.sb3_class.__new__(self.sb3_class)
        view.__dict__.update(state)
        return view

    def _env_column(self, value: Any, env_index: int) -> Any:
        """``value[:, env_index]`` (as a view, keeping the axis) if it is stored per (position, env), else ``value``."""
        if isinstance(value, dict):
            return {key: self._env_column(item, env_index) for key, item in value.items()}
        if isinstance(value, np.ndarray) and value.shape[:2] == (self.buffer_size, self.n_envs):
            return value[:, env_index : env_index + 1]
        return value

    def invalidate_teacher_values(self) -> None:
        """Mark every stored transition as not evaluated, and forget the teacher (e.g. after the teacher changed)."""
        self.n_uncached = self.buffer_size if self.full else self.pos
        self.teacher = None

    def add(self, *args: Any, **kwargs: Any) -> None:
        super().add(*args, **kwargs)  # type: ignore[misc]
        self.n_uncached = min(self.n_uncached + 1, self.buffer_size)

    def _uncached(self, batch_inds: np.ndarray) -> bool:
        """Whether any of the stored positions ``batch_inds`` is among the newest ``n_uncached``, not evaluated yet."""
        return self.n_uncached > 0 and bool(((self.pos - 1 - batch_inds) % self.buffer_size < self.n_uncached).any())

    def _observations_at(self, positions: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        """Stored observations at ``positions`` for all envs, flattened to one batch."""
        stored = self.observations
        if isinstance(stored, dict):
            return {key: obs[positions].reshape(-1, *obs.shape[2:]) for key, obs in stored.items()}
        return stored[positions].reshape(-1, *stored.shape[2:])

    def update_teacher_values(self, teacher: Teacher, batch_size: int = 1024) -> int:
        """
        Evaluate the teacher on the transitions added since the last evaluation, in batched forward passes.

        :param teacher: The teacher
        :param batch_size: Most observations per forward pass (bounds the memory of one pass)
        :return: Number of stored positions evaluated
        """
        n_positions = self.n_uncached
        # The newest n_positions positions, oldest first
        all_positions = (self.pos - n_positions + np.arange(n_positions)) % self.buffer_size
        positions_per_pass = max(batch_size // self.n_envs, 1)
        for start in range(0, n_positions, positions_per_pass):
            positions = all_positions[start : start + positions_per_pass]
            observations = self.to_torch_obs(self._observations_at(positions))
            values = teacher.values(observations).cpu().numpy()
            self.teacher_q_values[positions] = values.reshape(len(positions), self.n_envs, -1)
        self.n_uncached = 0
        return n_positions

    def to_torch_obs(self, observations: np.ndarray | dict[str, np.ndarray]) -> th.Tensor | dict[str, th.Tensor]:
        """
        Observations as tensors on the buffer's device.

        :param observations: An array, or a dict of arrays
        :return: A tensor, or a dict of tensors
        """
        if isinstance(observations, dict):
            return {key: self.to_torch(obs) for key, obs in observations.items()}  # type: ignore[attr-defined]
        return self.to_torch(observations)  # type: ignore[attr-defined]

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        samples: ReplayBufferSamples | DictReplayBufferSamples
        env_indices: np.ndarray | int
        if self.n_envs == 1:
            # One env: SB3's own draw of env indices has a single choice (it consumes nothing from the generator), no
            # per-env views needed
            samples = self.sb3_class._get_samples(self, batch_inds, env)  # type: ignore[arg-type]
            env_indices = 0
        else:
            # One env index per sample, drawn as SB3's _get_samples draws it (same generator, same call), and used for
            # both the transition and its stored values
            env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
            samples = self._sb3_samples(batch_inds, env_indices, env)
        # The values come from the raw stored observations whatever ``env`` does to the sampled ones: a teacher sees
        # what it saw in its own training, not the student's VecNormalize statistics
        teacher_q_values = None
        uncached = self._uncached(batch_inds)
        if uncached and self.teacher is not None:
            # The first batch to include a new transition: one teacher pass over all those added since the last
            # pass. Passes are then rare (a batch of 128 from 10,000 transitions includes one of the 4 a rollout
            # adds with probability 5%), where a pass before every update cost a small student about 5% of it
            self.update_teacher_values(self.teacher)
            uncached = False
        if not uncached:
            # Fancy indexing already copied: share that array with torch rather than copying it again
            teacher_q_values = th.from_numpy(self.teacher_q_values[batch_inds, env_indices]).to(self.device)
        # Positional: the fields of SB3's samples, then the teacher's values (a few microseconds less than by name)
        return TeacherReplayBufferSamples(*samples, teacher_q_values)  # type: ignore[call-arg]

    def _sb3_samples(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
    ) -> ReplayBufferSamples | DictReplayBufferSamples:
        """
        SB3's samples of the transitions ``(batch_inds[i], env_indices[i])``, in that order.

        SB3's ``_get_samples`` draws its own env indices: run it on one-env views of the storage, one per env in
        the batch, so that its draw has a single choice (and leaves the global generator as it is).

        :param batch_inds: Stored positions
        :param env_indices: Env of each position
        :param env: The ``VecNormalize`` env that normalizes observations and rewards, if any
        :return: The samples, built by ``sb3_class._get_samples``
        """
        per_env = []
        for env_index in np.unique(env_indices):
            selected = np.flatnonzero(env_indices == env_index)
            per_env.append((selected, self._sb3_view(int(env_index))._get_samples(batch_inds[selected], env)))
        if len(per_env) == 1:
            return per_env[0][1]
        # Back to the order of the draw: sample i of the batch is the (batch_inds[i], env_indices[i]) transition
        drawn_order = th.as_tensor(np.argsort(np.concatenate([selected for selected, _ in per_env])), device=self.device)
        parts = [samples for _, samples in per_env]
        fields = {name: _concatenate([getattr(part, name) for part in parts], drawn_order) for name in parts[0]._fields}
        return type(parts[0])(**fields)


def _concatenate(values: list[Any], order: th.Tensor) -> Any:
    """One field of several samples, concatenated along the batch and put in ``order`` (tensors, dicts, Nones)."""
    if values[0] is None:
        return None
    if isinstance(values[0], dict):
        return {key: _concatenate([value[key] for value in values], order) for key in values[0]}
    return th.cat(values)[order]


class TeacherValuesReplayBuffer(TeacherValuesMixin, ReplayBuffer):  # type: ignore[misc]
    """``ReplayBuffer`` that keeps the teacher's values of each transition."""

    sb3_class = ReplayBuffer


class TeacherValuesDictReplayBuffer(TeacherValuesMixin, DictReplayBuffer):  # type: ignore[misc]
    """``DictReplayBuffer`` that keeps the teacher's values of each transition."""

    sb3_class = DictReplayBuffer


class TeacherValuesNStepReplayBuffer(TeacherValuesMixin, NStepReplayBuffer):  # type: ignore[misc]
    """``NStepReplayBuffer`` that keeps the teacher's values of each transition."""

    sb3_class = NStepReplayBuffer


# SB3 buffer class -> the same buffer with teacher values
TEACHER_VALUES_BUFFERS: dict[type[ReplayBuffer], type[TeacherValuesMixin]] = {
    buffer_class.sb3_class: buffer_class
    for buffer_class in (TeacherValuesReplayBuffer, TeacherValuesDictReplayBuffer, TeacherValuesNStepReplayBuffer)
}
