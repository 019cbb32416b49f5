"""
Replay buffers that keep the teacher's values of each stored transition.

Without them, every gradient step runs the teacher on the whole sampled batch (with the Zoo's CartPole
settings, about 30 teacher evaluations per environment step). With them, the teacher sees each stored
observation once: before an update, the transitions added since the last update are evaluated in one
batched forward pass, and their values are sampled with the batch. The cost is ``n_actions`` float32
values per stored transition (Atari: 18 at most, 72 bytes; a 100k-transition buffer: 7.2 MB).
"""

from abc import ABC
from typing import Any, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.common.vec_env import VecNormalize

from sb3_distill.teacher import Teacher


class TeacherReplayBufferSamples(NamedTuple):
    """SB3's replay samples with the teacher's values of ``observations`` (None when not cached)."""

    observations: PyTorchObs
    actions: th.Tensor
    next_observations: PyTorchObs
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
    teacher_q_values: th.Tensor | None


class TeacherValuesMixin(ABC):  # an ABC like SB3's BaseBuffer, so that an SB3 buffer can become one in place
    """
    Keeps ``teacher_q_values[pos, env]`` beside each stored transition and returns it with each sample.

    Used on top of SB3's ``ReplayBuffer``, ``DictReplayBuffer`` and ``NStepReplayBuffer``.
    """

    # Attributes of the SB3 buffer this is mixed into
    buffer_size: int
    n_envs: int
    pos: int
    full: bool
    # Added here
    teacher_q_values: np.ndarray
    n_uncached: int

    def init_teacher_values(self, n_actions: int) -> None:
        """
        Allocate the values: ``n_actions`` float32 per stored transition, none of them computed yet.

        :param n_actions: Number of discrete actions
        """
        self.teacher_q_values = np.zeros((self.buffer_size, self.n_envs, n_actions), dtype=np.float32)
        self.invalidate_teacher_values()

    def invalidate_teacher_values(self) -> None:
        """Mark every stored transition as not evaluated (e.g. after the teacher changed)."""
        self.n_uncached = self.buffer_size if self.full else self.pos

    def add(self, *args: Any, **kwargs: Any) -> None:
        super().add(*args, **kwargs)  # type: ignore[misc]
        self.n_uncached = min(self.n_uncached + 1, self.buffer_size)

    def _observations_at(self, positions: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        """Stored observations at ``positions`` for all envs, flattened to one batch."""
        stored = self.observations  # type: ignore[attr-defined]
        if isinstance(stored, dict):
            return {key: obs[positions].reshape(-1, *obs.shape[2:]) for key, obs in stored.items()}
        return stored[positions].reshape(-1, *stored.shape[2:])

    def update_teacher_values(self, teacher: Teacher, batch_size: int = 1024) -> int:
        """
        Evaluate the teacher on the transitions added since the last update, in batched forward passes.

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
            values = teacher.q_values(observations).cpu().numpy()
            self.teacher_q_values[positions] = values.reshape(len(positions), self.n_envs, -1)
        self.n_uncached = 0
        return n_positions

    def to_torch_obs(self, observations: np.ndarray | dict[str, np.ndarray]) -> PyTorchObs:
        if isinstance(observations, dict):
            return {key: self.to_torch(obs) for key, obs in observations.items()}  # type: ignore[attr-defined]
        return self.to_torch(observations)  # type: ignore[attr-defined]

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> TeacherReplayBufferSamples:
        if self.n_envs == 1:
            env_indices = np.zeros(len(batch_inds), dtype=np.int64)
        else:
            # SB3's buffers draw each sample's env index first thing in _get_samples: draw the same indices here
            # and rewind the generator, so the stored values line up with the sampled observations
            # (saving the generator's state costs about 0.1 ms, hence the single-env shortcut)
            random_state = np.random.get_state()
            env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
            np.random.set_state(random_state)
        samples = super()._get_samples(batch_inds, env)  # type: ignore[misc]
        teacher_q_values = None
        if self.n_uncached == 0 and env is None:
            # Fancy indexing already copied: share that array with torch rather than copying it again
            teacher_q_values = th.as_tensor(self.teacher_q_values[batch_inds, env_indices], device=self.device)  # type: ignore[attr-defined]
        return TeacherReplayBufferSamples(
            samples.observations,
            samples.actions,
            samples.next_observations,
            samples.dones,
            samples.rewards,
            samples.discounts,
            teacher_q_values,
        )


class TeacherValuesReplayBuffer(TeacherValuesMixin, ReplayBuffer):  # type: ignore[misc]
    """``ReplayBuffer`` that keeps the teacher's values of each transition."""


class TeacherValuesDictReplayBuffer(TeacherValuesMixin, DictReplayBuffer):  # type: ignore[misc]
    """``DictReplayBuffer`` that keeps the teacher's values of each transition."""


class TeacherValuesNStepReplayBuffer(TeacherValuesMixin, NStepReplayBuffer):  # type: ignore[misc]
    """``NStepReplayBuffer`` that keeps the teacher's values of each transition."""


# SB3 buffer class -> the same buffer with teacher values
TEACHER_VALUES_BUFFERS: dict[type[ReplayBuffer], type[ReplayBuffer]] = {
    ReplayBuffer: TeacherValuesReplayBuffer,
    DictReplayBuffer: TeacherValuesDictReplayBuffer,
    NStepReplayBuffer: TeacherValuesNStepReplayBuffer,
}


def add_teacher_values(buffer: ReplayBuffer, n_actions: int) -> bool:
    """
    Turn an SB3 replay buffer, in place, into the same buffer with teacher values.

    :param buffer: A freshly created ``ReplayBuffer``, ``DictReplayBuffer`` or ``NStepReplayBuffer``
    :param n_actions: Number of discrete actions
    :return: Whether the buffer now keeps teacher values (False for other buffer classes)
    """
    if isinstance(buffer, TeacherValuesMixin):
        return True
    cached_class = TEACHER_VALUES_BUFFERS.get(type(buffer))
    if cached_class is None:
        return False
    # Same attributes, one more mixin: the buffer keeps its storage and only gains the values
    buffer.__class__ = cached_class
    buffer.init_teacher_values(n_actions)  # type: ignore[attr-defined]
    return True
