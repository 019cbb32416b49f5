"""
Turn what the user gives as a teacher into a frozen map from observations to per-action values.

Teachers are SB3 ``.zip`` files, which are unpickled when loaded: unpickling can run arbitrary code,
so only load teachers from sources you trust.
"""

import contextlib
import copy
import os
import random
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch as th
import yaml
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

TeacherLike = Union[str, os.PathLike, BaseAlgorithm, "Teacher"]


class QRDQNValues(nn.Module):
    """
    Q-values of a QR-DQN quantile network: the mean over its quantiles.

    :param quantile_net: The teacher's ``QuantileNetwork``
    """

    def __init__(self, quantile_net: nn.Module):
        super().__init__()
        self.quantile_net = quantile_net

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        # (batch, n_quantiles, n_actions) -> (batch, n_actions)
        return self.quantile_net(observations).mean(dim=1)


def _values_network(model: BaseAlgorithm) -> nn.Module:
    """
    The network of a supported teacher that maps observations to per-action values.

    :param model: A loaded SB3 model
    :return: A module returning a ``(batch_size, n_actions)`` tensor
    """
    from sb3_contrib import QRDQN

    if isinstance(model, DQN):
        return model.q_net
    if isinstance(model, QRDQN):
        return QRDQNValues(model.quantile_net)
    raise TypeError(
        f"A teacher of type {type(model).__name__} is not supported: "
        "pass a DQN (stable_baselines3) or QRDQN (sb3_contrib) model with a Discrete action space"
    )


def _algorithm_for_policy(policy_class: type) -> type[BaseAlgorithm] | None:
    """The SB3 algorithm whose zip stores this policy class, for the supported teachers."""
    module = policy_class.__module__
    if module.startswith("stable_baselines3.dqn"):
        return DQN
    if module.startswith("sb3_contrib.qrdqn"):
        from sb3_contrib import QRDQN

        return QRDQN
    return None


@contextlib.contextmanager
def preserve_global_rng() -> Iterator[None]:
    """
    Restore Python's, NumPy's and PyTorch's global random states on exit.

    Loading an SB3 zip re-seeds the global generators with the teacher's saved seed and draws from them
    to initialise weights; the student's run must not depend on whether a teacher was loaded.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    with th.random.fork_rng():
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def find_zoo_model(folder: str | os.PathLike) -> Path | None:
    """
    The final model of an RL Zoo log folder (``logs/dqn/CartPole-v1_1/``): the ``<name>.zip`` that has a
    ``<name>/config.yml`` beside it, as ``rl_zoo3 train`` writes them.

    :param folder: The log folder
    :return: The model zip, or None if the folder is not a Zoo log folder
    """
    candidates = [
        zip_file for zip_file in sorted(Path(folder).glob("*.zip")) if (zip_file.with_suffix("") / "config.yml").is_file()
    ]
    return candidates[0] if len(candidates) == 1 else None


def read_zoo_saved_config(folder: str | os.PathLike) -> dict[str, Any]:
    """
    The hyperparameters an RL Zoo run saved in its log folder (``<name>/config.yml``), with the Zoo's loader.

    :param folder: The log folder
    :return: The saved hyperparameters
    """
    model = find_zoo_model(folder)
    if model is None:
        raise ValueError(f"{str(folder)!r} is not an RL Zoo log folder (expected <env>.zip beside <env>/config.yml)")
    with open(model.with_suffix("") / "config.yml") as file_handler:
        # The Zoo writes an OrderedDict with Python tags and reads it back the same way (trusted files only)
        return dict(yaml.load(file_handler, Loader=yaml.UnsafeLoader) or {})


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


def load_model_zip(path: str | os.PathLike, device: th.device | str = "cpu") -> BaseAlgorithm:
    """
    Load a trusted SB3 model zip as a supported teacher algorithm, with clear errors for anything else.

    :param path: Path to an SB3 model zip (the ``.zip`` suffix may be omitted) or an RL Zoo log folder
    :param device: Device to load the model on
    :return: The loaded model
    """
    file = resolve_model_path(path)
    if not zipfile.is_zipfile(file):
        raise ValueError(f"Teacher file {str(file)!r} is not an SB3 model zip (not a zip archive at all)")
    with zipfile.ZipFile(file) as archive:
        members = set(archive.namelist())
    if "data" not in members or "policy.pth" not in members:
        raise ValueError(
            f"Teacher file {str(file)!r} is a zip archive but not an SB3 model zip "
            f"(it has {sorted(members)[:5]}, expected 'data' and 'policy.pth' as written by model.save())"
        )
    with preserve_global_rng():
        data, _, _ = load_from_zip_file(file, device="cpu", load_data=True)
    if data is None or "policy_class" not in data or "action_space" not in data:
        raise ValueError(f"Teacher file {str(file)!r} holds no policy class or action space: it is not an SB3 model zip")
    action_space = data["action_space"]
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(
            f"Teacher {str(file)!r} has action space {action_space}, but a DQN student needs a teacher with a "
            "Discrete action space (a continuous-action teacher has no per-action values to distill)"
        )
    algorithm = _algorithm_for_policy(data["policy_class"])
    if algorithm is None:
        raise ValueError(
            f"Teacher {str(file)!r} was saved with policy {data['policy_class'].__module__}."
            f"{data['policy_class'].__name__}; supported teachers are DQN (stable_baselines3) and QRDQN (sb3_contrib)"
        )
    with preserve_global_rng():
        return algorithm.load(file, device=device)


class Teacher:
    """
    A frozen teacher: maps a batch of observations to per-action values, without gradients.

    It holds its own copy of the teacher's value network, in ``eval()`` mode with ``requires_grad=False``,
    so the model it was made from is left untouched and nothing of it reaches the student's optimizer.

    :param model: A loaded SB3 model with a Discrete action space (DQN or QRDQN)
    :param source: Where the teacher came from, for messages
    """

    def __init__(self, model: BaseAlgorithm, source: str = "<model>"):
        if not isinstance(model.action_space, spaces.Discrete):
            raise ValueError(
                f"Teacher {source} has action space {model.action_space}, but a DQN student needs a teacher "
                "with a Discrete action space"
            )
        self.source = source
        self.algorithm = type(model).__name__
        self.observation_space = model.observation_space
        self.action_space = model.action_space
        self.network = copy.deepcopy(_values_network(model))
        self.network.eval()
        self.network.requires_grad_(False)

    @property
    def device(self) -> th.device:
        """Device of the teacher's weights."""
        return next(self.network.parameters()).device

    def to(self, device: th.device | str) -> "Teacher":
        """
        Move the teacher's network to ``device``.

        :param device: Target device
        :return: self
        """
        self.network.to(device)
        return self

    def num_parameters(self) -> int:
        """Number of parameters of the teacher's value network (the part used for acting)."""
        return sum(parameter.numel() for parameter in self.network.parameters())

    @th.no_grad()
    def q_values(self, observations: PyTorchObs) -> th.Tensor:
        """
        Per-action values of the teacher.

        :param observations: A batch of observations as tensors on the teacher's device, as sampled
            from the replay buffer (the teacher's network applies its own preprocessing)
        :return: Tensor of shape ``(batch_size, n_actions)``
        """
        return self.network(observations)

    __call__ = q_values

    def __repr__(self) -> str:
        return f"Teacher({self.algorithm} from {self.source}, {self.num_parameters()} parameters)"


def check_teacher_spaces(teacher: Teacher, observation_space: spaces.Space, action_space: spaces.Space) -> None:
    """
    Fail unless the teacher sees the same observations and picks from the same actions as the student.

    :param teacher: The prepared teacher
    :param observation_space: The student's observation space
    :param action_space: The student's action space
    """
    if teacher.action_space != action_space:
        raise ValueError(
            f"Teacher {teacher.source} has action space {teacher.action_space} but the student's env has "
            f"action space {action_space}: they must be equal"
        )
    if teacher.observation_space != observation_space:
        raise ValueError(
            f"Teacher {teacher.source} has observation space {teacher.observation_space} but the student's env has "
            f"observation space {observation_space}: they must be equal (same env, wrappers and frame stacking)"
        )


def load_teacher(
    teacher: TeacherLike,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    device: th.device | str = "cpu",
) -> Teacher:
    """
    Prepare a teacher for a student: load it, check its spaces against the student's, freeze it
    and move it to the student's device.

    :param teacher: Path to a trusted SB3 model zip or RL Zoo log folder, a loaded SB3 model (DQN or QRDQN),
        or a ``Teacher``
    :param observation_space: The student's observation space
    :param action_space: The student's action space
    :param device: The student's device
    :return: The frozen teacher
    """
    if isinstance(teacher, Teacher):
        prepared = teacher
    elif isinstance(teacher, BaseAlgorithm):
        prepared = Teacher(teacher, source=f"<{type(teacher).__name__} model>")
    elif isinstance(teacher, (str, os.PathLike)):
        prepared = Teacher(load_model_zip(teacher, device=device), source=repr(str(teacher)))
    else:
        raise TypeError(
            f"teacher={teacher!r} of type {type(teacher).__name__} is not supported: "
            "pass the path of an SB3 model .zip, a loaded SB3 DQN/QRDQN model, or a sb3_distill.Teacher"
        )
    check_teacher_spaces(prepared, observation_space, action_space)
    return prepared.to(device)
