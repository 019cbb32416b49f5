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
from sb3_distill.common.teacher_values import TEACHER_KINDS, ObservationNormalizer, values_network
from sb3_distill.common.teacher_zip import TeacherPolicy, preserve_global_rng, read_teacher_zip
from sb3_distill.common.trusted_zip import load_trusted_zip
from sb3_distill.common.zoo_folder import find_zoo_model, load_observation_normalizer, read_zoo_saved_config

__all__ = [
    "Teacher",
    "TeacherLike",
    "check_teacher_spaces",
    "find_zoo_model",
    "load_model_zip",
    "load_teacher",
    "preserve_global_rng",
    "read_zoo_saved_config",
    "resolve_model_path",
]

TeacherLike = Union[str, os.PathLike, BaseAlgorithm, TeacherPolicy, "Teacher"]


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
    A frozen teacher: maps a batch of observations to per-action values, without gradients.

    It holds its own copy of the teacher's value network (see :mod:`sb3_distill.common.teacher_values`), in ``eval()`` mode
    with ``requires_grad=False``, so the model it was made from is left untouched and nothing of it reaches the
    student's optimizer. Its values play the part of Q_T in the distillation loss: Q-values (``kind == "q_values"``),
    the mean over quantiles (``"quantiles"``) or the policy's action logits (``"logits"``).

    :param model: A loaded SB3 model or a ``TeacherPolicy``, with a Discrete action space (DQN, QRDQN, PPO, A2C, TRPO,
        MaskablePPO)
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
        if not isinstance(self.action_space, spaces.Discrete):
            raise ValueError(
                f"Teacher {self.source} has action space {self.action_space}, but a DQN student needs a teacher "
                "with a Discrete action space (a continuous-action teacher has no per-action values to distill)"
            )
        try:
            self.kind, network = values_network(policy)
        except TypeError as error:
            raise TypeError(f"Teacher {self.source}: {error}") from error
        self.network = copy.deepcopy(network)
        self.network.eval()
        self.network.requires_grad_(False)
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
        if self.observation_normalizer is not None:
            self.observation_normalizer.to(device)
        return self

    def num_parameters(self) -> int:
        """Number of parameters of the teacher's value network (the part used for acting)."""
        return sum(parameter.numel() for parameter in self.network.parameters())

    @th.no_grad()
    def q_values(self, observations: PyTorchObs) -> th.Tensor:
        """
        Per-action values of the teacher (its Q-values, mean quantiles or action logits, see ``kind``).

        :param observations: A batch of observations as tensors on the teacher's device, as sampled
            from the replay buffer (normalized here with the teacher's own frozen statistics if it has them;
            the network applies its own preprocessing)
        :return: Tensor of shape ``(batch_size, n_actions)``
        """
        if self.observation_normalizer is not None:
            observations = self.observation_normalizer(observations)
        values = self.network(observations)
        # One check per call: a NaN or inf here would silently poison the student's update
        if not th.isfinite(values).all():
            raise ValueError(
                f"Teacher {self.source} gave non-finite {TEACHER_KINDS[self.kind]} (NaN or inf) on a batch of "
                f"{len(values)} observations: its weights (or its inputs) are broken; check the teacher file or model"
            )
        return values

    __call__ = q_values

    def __repr__(self) -> str:
        normalized = ", normalized observations" if self.observation_normalizer is not None else ""
        return f"Teacher({self.algorithm} {self.kind} from {self.source}, {self.num_parameters()} parameters{normalized})"


def check_teacher_spaces(teacher: Teacher, observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """
    Fail unless the teacher sees the same kind of observations and picks from the same actions as the student:
    same kind, shape and dtype (``n`` for Discrete, sub-spaces for Dict). Other Box bounds only warn.

    :param teacher: The prepared teacher
    :param observation_space: The student's observation space
    :param action_space: The student's action space
    """
    for name, teacher_space, student_space in (
        ("action space", teacher.action_space, action_space),
        ("observation space", teacher.observation_space, observation_space),
    ):
        reason = space_mismatch(teacher_space, student_space)
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
        MaskablePPO), a ``TeacherPolicy``, or a ``Teacher``
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
