"""
Turn what the user gives as a teacher into a frozen map from observations to per-action values.

A teacher is a path (an SB3 ``.zip``, the same without ``.zip``, or an RL Zoo log folder), a loaded SB3 model, or a
``TeacherPolicy`` read by :func:`sb3_distill.common.teacher_zip.read_teacher_zip`. Its values are Q-values (DQN), the mean
over quantiles (QR-DQN) or the action logits of an actor-critic policy (PPO, A2C, TRPO, MaskablePPO), see
:mod:`sb3_distill.common.teacher_values`.

**Safe by default**: a path is read without unpickling anything (the network is rebuilt from the zip's readable
fields and ``policy.pth`` loaded with ``weights_only=True``). SB3's full loader, which unpickles the zip and can run
arbitrary code from it, is used only with ``trust=True``; so are the pickled ``vecnormalize.pkl`` statistics of a Zoo
run trained on normalized observations.
"""

import copy
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any, Union

import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_distill.common.space_match import bounds_differ, space_mismatch
from sb3_distill.common.teacher_values import (
    CONTINUOUS_KINDS,
    TEACHER_KINDS,
    ActionDistribution,
    ObservationNormalizer,
    critic_estimate,
    critic_network,
    value_width,
    values_network,
)
from sb3_distill.common.teacher_zip import TeacherPolicy, preserve_global_rng, read_teacher_zip
from sb3_distill.common.trusted_zip import load_trusted_zip
from sb3_distill.common.zoo_folder import find_zoo_model, load_observation_normalizer, read_zoo_saved_config

__all__ = [
    "ActionDistribution",
    "Teacher",
    "TeacherLike",
    "check_teacher_spaces",
    "find_zoo_model",
    "load_model_zip",
    "load_teacher",
    "preserve_global_rng",
    "read_zoo_saved_config",
    "resolve_model_path",
    "scale_actions",
    "teacher_value_width",
]

TeacherLike = Union[str, os.PathLike, BaseAlgorithm, TeacherPolicy, "Teacher"]

#: The width of a teacher's values for an action space, known before the teacher (replay buffers allocate by it)
teacher_value_width = value_width


def scale_actions(actions: th.Tensor, action_space: spaces.Box) -> th.Tensor:
    """
    Actions in a Box space's units mapped to the scaled [-1, 1] space (SB3's ``scale_action``), then clipped to it as
    SB3 clips a Gaussian policy's actions to the bounds.

    :param actions: ``(batch, action_dim)`` in the env's units
    :param action_space: The Box space
    :return: The same shape, in [-1, 1]
    """
    low = th.as_tensor(action_space.low, dtype=actions.dtype, device=actions.device)
    high = th.as_tensor(action_space.high, dtype=actions.dtype, device=actions.device)
    return th.clamp(2.0 * (actions - low) / (high - low) - 1.0, -1.0, 1.0)


def resolve_model_path(path: str | os.PathLike) -> Path:
    """
    The SB3 zip a path names: the file itself, the file with ``.zip`` added (SB3's rule), or the final
    model of an RL Zoo log folder.

    :param path: Path to an SB3 model zip or an RL Zoo log folder
    :return: The existing file
    """
    candidate = Path(path).expanduser()
    if candidate.is_file():
        return candidate
    with_suffix = candidate.with_name(candidate.name + ".zip")
    if candidate.suffix != ".zip" and with_suffix.is_file():
        return with_suffix
    if candidate.is_dir():
        zoo_model = find_zoo_model(candidate)
        if zoo_model is None:
            raise IsADirectoryError(
                f"Teacher path {str(path)!r} is a folder but not an RL Zoo log folder (expected <env>.zip beside "
                "<env>/config.yml): pass the path of an SB3 model .zip file or of a Zoo run folder such as "
                "logs/dqn/CartPole-v1_1"
            )
        return zoo_model
    raise FileNotFoundError(f"Teacher file {str(path)!r} does not exist (expected an SB3 model .zip saved with model.save())")


def _check_sb3_zip(file: Path) -> None:
    """Fail unless ``file`` is a zip archive with SB3's ``data`` and ``policy.pth`` members."""
    if not zipfile.is_zipfile(file):
        raise ValueError(f"Teacher file {str(file)!r} is not an SB3 model zip (not a zip archive at all)")
    with zipfile.ZipFile(file) as archive:
        members = set(archive.namelist())
    if "data" not in members or "policy.pth" not in members:
        raise ValueError(
            f"Teacher file {str(file)!r} is a zip archive but not an SB3 model zip "
            f"(it has {sorted(members)[:5]}, expected 'data' and 'policy.pth' as written by model.save())"
        )


def load_model_zip(
    path: str | os.PathLike, device: th.device | str = "cpu", trust: bool = False
) -> BaseAlgorithm | TeacherPolicy:
    """
    Load an SB3 model zip as a teacher, with clear errors for anything else.

    Without ``trust`` the zip is read by :func:`sb3_distill.common.teacher_zip.read_teacher_zip`, which unpickles nothing and
    returns a ``TeacherPolicy``. With ``trust=True`` it is loaded by SB3's own loader (``DQN.load``, ``PPO.load``, ...
    for the zip's algorithm), which unpickles the zip and can run arbitrary code from it; the spaces are rebuilt
    from the zip's readable fields and the schedules replaced by placeholders, so that ``gym``-era zips load that way too.

    :param path: Path to an SB3 model zip (the ``.zip`` suffix may be omitted) or an RL Zoo log folder
    :param device: Device to load the model on
    :param trust: Whether the file comes from a source you trust (use SB3's unpickling loader)
    :return: The ``TeacherPolicy`` (safe) or the loaded model (trusted)
    """
    file = resolve_model_path(path)
    _check_sb3_zip(file)
    if trust:
        return load_trusted_zip(file, device)
    return read_teacher_zip(file, device=device)


def _policy_of(model: BaseAlgorithm | TeacherPolicy) -> tuple[Any, str, str]:
    """The policy of a loaded teacher, the name of its algorithm, and where it came from (for messages)."""
    if isinstance(model, BaseAlgorithm):
        return model.policy, type(model).__name__, f"<{type(model).__name__} model>"
    if isinstance(model, TeacherPolicy):
        return model.policy, str(model.algorithm), repr(str(model.path))
    raise TypeError(
        f"A teacher of type {type(model).__name__} is not supported: pass a loaded SB3 model or a TeacherPolicy "
        "(sb3_distill.common.teacher_zip.read_teacher_zip)"
    )


class Teacher:
    """
    A frozen teacher: maps a batch of observations to per-action values (Discrete actions) or to an action distribution
    (Box actions), without gradients.

    It holds its own copy of the teacher's acting network (see :mod:`sb3_distill.common.teacher_values`), and of its
    critic where it has one (SAC, TQC, TD3, DDPG), in ``eval()`` mode with ``requires_grad=False``, so the model it was
    made from is left untouched and nothing of it reaches the student's optimizer. Its ``kind`` says what it gives:
    Q-values (``"q_values"``), the mean over quantiles (``"quantiles"``) or the policy's action logits (``"logits"``),
    which play the part of Q_T in a discrete student's loss; or a Gaussian (``"gaussian"``: PPO, A2C, TRPO), a
    tanh-squashed Gaussian (``"squashed_gaussian"``: SAC, TQC) or a deterministic action (``"deterministic"``: TD3,
    DDPG) for a continuous student.

    :param model: A loaded SB3 model or a ``TeacherPolicy``: DQN, QRDQN, PPO, A2C, TRPO, MaskablePPO with a Discrete
        action space; SAC, TQC, TD3, DDPG, PPO, A2C, TRPO with a Box action space
    :param source: Where the teacher came from, for messages (None: the TeacherPolicy's file, or the model's class)
    :param observation_normalizer: Frozen normalization of the observations before the network, for a teacher
        trained behind ``VecNormalize`` (None: observations are used as they are)
    """

    def __init__(
        self,
        model: BaseAlgorithm | TeacherPolicy,
        source: str | None = None,
        observation_normalizer: ObservationNormalizer | None = None,
    ):
        policy, self.algorithm, default_source = _policy_of(model)
        self.source = source if source is not None else default_source
        self.observation_space: spaces.Space = model.observation_space
        self.action_space: spaces.Space = model.action_space
        try:
            self.kind, network = values_network(policy)
        except TypeError as error:
            raise TypeError(f"Teacher {self.source}: {error}") from error
        self.network = _frozen_copy(network)
        critic = critic_network(policy)
        #: The teacher's critic (SAC, TQC, TD3, DDPG), None for other teachers
        self.critic = _frozen_copy(critic) if critic is not None else None
        if observation_normalizer is not None:
            try:
                observation_normalizer.check_space(self.observation_space)
            except ValueError as error:
                raise ValueError(f"Teacher {self.source}: {error}") from error
        self.observation_normalizer = observation_normalizer

    @property
    def device(self) -> th.device:
        """Device of the teacher's weights."""
        return next(self.network.parameters()).device

    def to(self, device: th.device | str) -> "Teacher":
        """
        Move the teacher's network (and normalization statistics) to ``device``.

        :param device: Target device
        :return: self
        """
        self.network.to(device)
        if self.critic is not None:
            self.critic.to(device)
        if self.observation_normalizer is not None:
            self.observation_normalizer.to(device)
        return self

    def num_parameters(self) -> int:
        """Number of parameters of the teacher's acting network (its value network or actor; not its critic)."""
        return sum(parameter.numel() for parameter in self.network.parameters())

    def num_critic_parameters(self) -> int:
        """Number of parameters of the teacher's critic (0 without one)."""
        return 0 if self.critic is None else sum(parameter.numel() for parameter in self.critic.parameters())

    @property
    def is_continuous(self) -> bool:
        """Whether the teacher acts in a Box action space (it gives an action distribution, not per-action values)."""
        return self.kind in CONTINUOUS_KINDS

    @property
    def has_critic(self) -> bool:
        """Whether the teacher has a critic of (observation, action) pairs (SAC, TQC, TD3, DDPG)."""
        return self.critic is not None

    @property
    def value_width(self) -> int:
        """The width of :meth:`values`: ``n_actions``, or ``2 * action_dim`` for a continuous teacher."""
        return teacher_value_width(self.action_space)

    def _normalized(self, observations: PyTorchObs) -> PyTorchObs:
        """Observations normalized with the teacher's own frozen statistics, if it has them."""
        return observations if self.observation_normalizer is None else self.observation_normalizer(observations)

    @th.no_grad()
    def q_values(self, observations: PyTorchObs) -> th.Tensor:
        """
        Per-action values of a discrete teacher (its Q-values, mean quantiles or action logits, see ``kind``).

        :param observations: A batch of observations as tensors on the teacher's device, as sampled
            from the replay buffer (normalized here with the teacher's own frozen statistics if it has them;
            the network applies its own preprocessing)
        :return: Tensor of shape ``(batch_size, n_actions)``
        """
        if self.is_continuous:
            raise TypeError(
                f"Teacher {self.source} is a {self.algorithm} teacher with Box actions (kind {self.kind!r}): it has no "
                "per-action values; use action_distribution() or values()"
            )
        return self.values(observations)

    @th.no_grad()
    def values(self, observations: PyTorchObs) -> th.Tensor:
        """
        The teacher's values in the flat form the replay buffers keep per stored transition: per-action values
        ``(batch, n_actions)``, or ``cat([mean, log_std])`` of a continuous teacher, ``(batch, 2 * action_dim)`` (zeros
        in the log_std's place for a deterministic teacher; :meth:`split_values` splits them).

        :param observations: A batch of observations as tensors on the teacher's device (raw: normalized here with the
            teacher's own frozen statistics if it has them)
        """
        values = self.network(self._normalized(observations))
        # One check per call: a NaN or inf here would silently poison the student's update
        if not th.isfinite(values).all():
            raise ValueError(
                f"Teacher {self.source} gave non-finite {TEACHER_KINDS[self.kind]} (NaN or inf) on a batch of "
                f"{len(values)} observations: its weights (or its inputs) are broken; check the teacher file or model"
            )
        return values

    def split_values(self, values: th.Tensor) -> ActionDistribution:
        """
        A continuous teacher's action distribution from its :meth:`values` (computed now or kept by a buffer).

        :param values: ``(batch, 2 * action_dim)``
        :return: The mean and log_std (None for a deterministic teacher), ``(batch, action_dim)`` each
        """
        if not self.is_continuous:
            raise TypeError(f"Teacher {self.source} gives per-action values (kind {self.kind!r}), not an action distribution")
        action_dim = values.shape[1] // 2
        return ActionDistribution(values[:, :action_dim], None if self.kind == "deterministic" else values[:, action_dim:])

    def action_distribution(self, observations: PyTorchObs) -> ActionDistribution:
        """
        A continuous teacher's action distribution on a batch of observations (see :class:`ActionDistribution`).

        :param observations: A batch of observations as tensors on the teacher's device
        """
        return self.split_values(self.values(observations))

    def scaled_actions_of(self, values: th.Tensor) -> th.Tensor:
        """
        A continuous teacher's mean actions in the env's scaled [-1, 1] space, from its :meth:`values`: the tanh of a
        squashed Gaussian's pre-tanh mean, a Gaussian's mean scaled by the bounds and clipped (as SB3 clips the actions
        of a Gaussian policy), a deterministic actor's action as it is.

        :param values: ``(batch, 2 * action_dim)``
        :return: ``(batch, action_dim)``
        """
        mean = self.split_values(values).mean
        if self.kind == "squashed_gaussian":
            return th.tanh(mean)
        if self.kind == "gaussian":
            return scale_actions(mean, self.action_space)  # type: ignore[arg-type]
        return mean

    def scaled_mean_actions(self, observations: PyTorchObs) -> th.Tensor:
        """
        A continuous teacher's mean (deterministic) actions in the env's scaled [-1, 1] space.

        :param observations: A batch of observations as tensors on the teacher's device
        :return: ``(batch, action_dim)``
        """
        return self.scaled_actions_of(self.values(observations))

    @th.no_grad()
    def critic_values(self, observations: PyTorchObs, scaled_actions: th.Tensor) -> th.Tensor:
        """
        The teacher critic's values of (observation, action) pairs: the minimum over SAC's and TD3's critics, the mean
        over TQC's quantiles.

        :param observations: A batch of raw observations as tensors on the teacher's device
        :param scaled_actions: Actions in the scaled [-1, 1] space, as SB3 stores them, ``(batch, action_dim)``
        :return: ``(batch, 1)``
        """
        if self.critic is None:
            raise TypeError(f"Teacher {self.source} ({self.algorithm}) has no critic of (observation, action) pairs")
        values = critic_estimate(self.critic, self._normalized(observations), scaled_actions)
        if not th.isfinite(values).all():
            raise ValueError(f"Teacher {self.source} gave non-finite critic values (NaN or inf): check the teacher file")
        return values

    __call__ = values

    def __repr__(self) -> str:
        normalized = ", normalized observations" if self.observation_normalizer is not None else ""
        return f"Teacher({self.algorithm} {self.kind} from {self.source}, {self.num_parameters()} parameters{normalized})"


def check_teacher_spaces(teacher: Teacher, observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """
    Fail unless the teacher sees the same kind of observations and picks from the same actions as the student:
    same kind, shape and dtype (``n`` for Discrete, sub-spaces for Dict), and the same bounds of a Box action space
    (actions are compared in the space scaled by them). Other bounds of a Box observation space only warn.

    :param teacher: The prepared teacher
    :param observation_space: The student's observation space
    :param action_space: The student's action space
    """
    for name, teacher_space, student_space in (
        ("action space", teacher.action_space, action_space),
        ("observation space", teacher.observation_space, observation_space),
    ):
        reason = space_mismatch(teacher_space, student_space)
        if reason is None and name == "action space" and bounds_differ(teacher_space, student_space):
            reason = "other bounds: actions would be scaled differently"
        if reason is not None and name == "action space":
            continuous = {isinstance(space, spaces.Box) for space in (teacher_space, student_space)}
            if continuous == {True, False}:
                which = "continuous" if isinstance(teacher_space, spaces.Box) else "discrete"
                other = "discrete" if which == "continuous" else "continuous"
                reason += f": a {which}-action teacher cannot teach a {other}-action student"
        if reason is not None:
            raise ValueError(
                f"Teacher {teacher.source} has {name} {teacher_space} but the student's env has {name} {student_space} "
                f"({reason}): they must have the same kind, shape and dtype (same env, wrappers and frame stacking)"
            )
        if bounds_differ(teacher_space, student_space):
            warnings.warn(
                f"Teacher {teacher.source} has {name} {teacher_space} and the student's env has {name} {student_space}: "
                "same kind, shape and dtype but other bounds; the teacher is used as it is (check that the envs agree)",
                UserWarning,
            )


def load_teacher(
    teacher: TeacherLike,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    device: th.device | str = "cpu",
    trust: bool = False,
) -> Teacher:
    """
    Prepare a teacher for a student: load it, check its spaces against the student's, freeze it
    and move it to the student's device.

    :param teacher: Path to an SB3 model zip or RL Zoo log folder, a loaded SB3 model (DQN, QRDQN, PPO, A2C, TRPO,
        MaskablePPO, SAC, TQC, TD3, DDPG), a ``TeacherPolicy``, or a ``Teacher``
    :param observation_space: The student's observation space
    :param action_space: The student's action space
    :param device: The student's device
    :param trust: For a path: whether it comes from a source you trust. False (default) reads the zip without
        unpickling anything; True uses SB3's loader, which can run arbitrary code from the file, and also reads a Zoo
        run's pickled ``vecnormalize.pkl``. Objects are used as they are.
    :return: The frozen teacher
    """
    if isinstance(teacher, Teacher):
        prepared = teacher
    elif isinstance(teacher, (str, os.PathLike)):
        file = resolve_model_path(teacher)
        # Refused before loading anything when its statistics need trust
        normalizer = load_observation_normalizer(file, trust=trust)
        prepared = Teacher(
            load_model_zip(file, device=device, trust=trust), source=repr(str(file)), observation_normalizer=normalizer
        )
    elif isinstance(teacher, (BaseAlgorithm, TeacherPolicy)):
        prepared = Teacher(teacher)
    else:
        raise TypeError(
            f"teacher={teacher!r} of type {type(teacher).__name__} is not supported: pass the path of an SB3 model "
            ".zip or RL Zoo log folder, a loaded SB3 model (DQN, QRDQN, PPO, A2C, ...), a TeacherPolicy "
            "or a sb3_distill.Teacher"
        )
    check_teacher_spaces(prepared, observation_space, action_space)
    return prepared.to(device)


def _frozen_copy(network: th.nn.Module) -> th.nn.Module:
    """A copy of a network in ``eval()`` mode with no gradients: the model it came from is left untouched."""
    frozen = copy.deepcopy(network)
    frozen.eval()
    frozen.requires_grad_(False)
    return frozen
