"""
Read a teacher's SB3 zip without running code from it.

SB3's own loader (``BaseAlgorithm.load``) unpickles the zip's ``data`` entries, and a pickle can run any code when
it is loaded; it also fails on SB3 1.x zips made under ``gym`` when ``gym`` is not installed. ``read_teacher_zip``
reads only what needs no unpickling: ``data`` as JSON text, the readable fields SB3 writes beside each pickle, and
``policy.pth`` as a weights-only state dict. It rebuilds the network with SB3's (or sb3-contrib's) own policy class,
from allow-lists of policies, activations and features extractors, and loads the weights strictly. What it cannot
rebuild is refused with a ``TeacherFileError`` naming the opt-in to SB3's full loader for trusted files.
"""

import contextlib
import importlib
import io
import json
import os
import pickle
import random
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy

from sb3_distill.common.teacher_spaces import UnreadableField, class_path, read_space

TRUST_HINT = (
    "if you trust this file, load it with SB3's full loader, which unpickles it: trust_teacher=True (Python), "
    "--trust-teacher (CLI) or trust_teacher: true (Zoo YAML)"
)
# SB3's and sb3-contrib's policy classes by module, then by kind (the kind decides the default features extractor)
_POLICY_CLASSES = {
    "stable_baselines3.dqn.policies": {"Mlp": "DQNPolicy", "Cnn": "CnnPolicy", "MultiInput": "MultiInputPolicy"},
    "sb3_contrib.qrdqn.policies": {"Mlp": "QRDQNPolicy", "Cnn": "CnnPolicy", "MultiInput": "MultiInputPolicy"},
    "stable_baselines3.common.policies": {
        "Mlp": "ActorCriticPolicy",
        "Cnn": "ActorCriticCnnPolicy",
        "MultiInput": "MultiInputActorCriticPolicy",
    },
    "sb3_contrib.common.maskable.policies": {
        "Mlp": "MaskableActorCriticPolicy",
        "Cnn": "MaskableActorCriticCnnPolicy",
        "MultiInput": "MaskableMultiInputActorCriticPolicy",
    },
    "stable_baselines3.sac.policies": {"Mlp": "SACPolicy", "Cnn": "CnnPolicy", "MultiInput": "MultiInputPolicy"},
    "stable_baselines3.td3.policies": {"Mlp": "TD3Policy", "Cnn": "CnnPolicy", "MultiInput": "MultiInputPolicy"},
    "sb3_contrib.tqc.policies": {"Mlp": "TQCPolicy", "Cnn": "CnnPolicy", "MultiInput": "MultiInputPolicy"},
}
# The algorithm that saves each policy module (actor-critic and TD3 policies are shared: told apart by what each saves)
_MODULE_ALGORITHMS = {
    "stable_baselines3.dqn.policies": "DQN",
    "sb3_contrib.qrdqn.policies": "QRDQN",
    "sb3_contrib.common.maskable.policies": "MaskablePPO",
    "stable_baselines3.sac.policies": "SAC",
    "sb3_contrib.tqc.policies": "TQC",
    "sb3_contrib.common.recurrent.policies": "RecurrentPPO",
}
_ACTIVATIONS = frozenset({"ReLU", "Tanh", "ELU", "LeakyReLU", "SELU", "SiLU", "GELU", "Mish", "Sigmoid", "Softplus"})
_ACTIVATION_MODULES = ("torch.nn.modules.activation.", "torch.nn.")
_FEATURES_EXTRACTORS = frozenset({"NatureCNN", "FlattenExtractor", "CombinedExtractor"})
_FEATURES_EXTRACTOR_MODULE = "stable_baselines3.common.torch_layers."
# SB3's extractors, and the project's own, whose settings are plain integers (features_extractor_kwargs) like SB3's
_FEATURES_EXTRACTORS_BY_MODULE = {
    _FEATURES_EXTRACTOR_MODULE: _FEATURES_EXTRACTORS,
    "sb3_distill.minatar.": frozenset({"MinAtarCNN"}),
}
# Settings passed on as they are (JSON values); the optimizer's settings do not change the network
_PLAIN_SETTINGS = frozenset(
    {
        "net_arch",
        "normalize_images",
        "share_features_extractor",
        "ortho_init",
        "n_quantiles",
        "features_extractor_kwargs",
        # Gaussian and squashed-Gaussian actors, twin critics
        "log_std_init",
        "use_sde",
        "use_expln",
        "clip_mean",
        "full_std",
        "squash_output",
        "n_critics",
    }
)
_TRAINING_SETTINGS = frozenset({"optimizer_class", "optimizer_kwargs", "device"})
_INIT_TEXT = re.compile(r"<function (\w+)\.__init__ at ")
_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*([^\n]+)")
MAX_DATA_BYTES = 64 * 2**20


class TeacherFileError(ValueError):
    """A teacher file that cannot be used; the message names the file and what is wrong with it."""


class _BrokenFile(ValueError):
    """What is wrong with a teacher file, before the file's name is added."""


@dataclass
class TeacherPolicy:
    """
    A teacher's network rebuilt from its zip without unpickling.

    :param policy: SB3's own policy class, loaded strictly, in ``eval()`` mode, on the requested device
    :param algorithm: The algorithm that saved it: "DQN", "QRDQN", "PPO", "A2C", "TRPO", "MaskablePPO", "SAC", "TQC",
        "TD3" or "DDPG"
    :param observation_space: The space the teacher was trained on
    :param action_space: The teacher's action space
    :param path: The zip file
    """

    policy: BasePolicy
    algorithm: str
    observation_space: spaces.Space
    action_space: spaces.Space
    path: Path


@contextlib.contextmanager
def preserve_global_rng() -> Iterator[None]:
    """
    Restore Python's, NumPy's and PyTorch's global random states on exit.

    Building or loading a teacher draws from the global generators (weight initialisation, SB3's re-seeding);
    the student's run must not depend on whether a teacher was loaded.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    with th.random.fork_rng():
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _readable(field: Any, what: str) -> dict[str, Any]:
    """The readable entries of a ``data`` field: a JSON dict as it is, or the attributes written beside a pickle."""
    if not isinstance(field, dict):
        raise UnreadableField(f"{what} is missing or not a readable record ({str(field)[:80]!r})")
    return {key: value for key, value in field.items() if key not in (":type:", ":serialized:")}


def read_zip_data(path: str | os.PathLike) -> dict[str, Any]:
    """
    An SB3 model zip's ``data`` member as JSON, nothing unpickled: the readable fields and plain numbers
    (``num_timesteps``, ...) that SB3 writes.

    :param path: Path to the SB3 model zip
    :raises TeacherFileError: If the file is not an SB3 model zip or its ``data`` is not JSON (the message names it)
    """
    file = Path(path)
    try:
        return _read_members(file, with_weights=False)[0]
    except _BrokenFile as error:
        raise TeacherFileError(f"Teacher file {str(file)!r} {error}") from error


def _read_members(file: Path, with_weights: bool = True) -> tuple[dict[str, Any], dict[str, th.Tensor]]:
    """The zip's ``data`` as JSON and (``with_weights``) its ``policy.pth`` as a weights-only state dict, else ``{}``."""
    if not zipfile.is_zipfile(file):
        raise _BrokenFile("is not a zip archive (an SB3 model zip written by model.save() was expected)")
    try:
        with zipfile.ZipFile(file) as archive:
            members = set(archive.namelist())
            if not {"data", "policy.pth"} <= members:
                raise _BrokenFile(f"has no 'data' and 'policy.pth' as model.save() writes them (it has {sorted(members)[:6]})")
            if archive.getinfo("data").file_size > MAX_DATA_BYTES:
                raise _BrokenFile(f"has a 'data' member over {MAX_DATA_BYTES} bytes")
            data_bytes = archive.read("data")
            weights_bytes = archive.read("policy.pth") if with_weights else b""
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as error:
        raise _BrokenFile(f"is a damaged zip archive ({error})") from error
    try:
        data = json.loads(data_bytes.decode("utf-8"))
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise _BrokenFile(f"has a 'data' member that is not JSON text ({error})") from error
    if not isinstance(data, dict):
        raise _BrokenFile("has a 'data' member that is not a JSON object")
    if not with_weights:
        return data, {}
    try:
        # Loaded on the CPU, moved with the policy at the end: a device error then reads as one, not as a broken file
        state_dict = th.load(io.BytesIO(weights_bytes), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        # Torch's message suggests weights_only=False; what matters here is the object it refused
        refused = _REFUSED_GLOBAL.search(str(error))
        if refused is None:
            reason = _UNPICKLER_REASON.search(str(error))
            detail = reason.group(1) if reason else type(error).__name__
            raise _BrokenFile(f"has a 'policy.pth' that is not a PyTorch state dict file ({detail})") from error
        raise UnreadableField(
            f"its policy.pth is not a plain state dict of tensors: it holds {refused.group(1)}, which a weights-only load "
            "refuses because unpickling it could run code"
        ) from error
    except Exception as error:  # malformed torch files fail in many ways (RuntimeError, EOFError, KeyError, ...)
        raise _BrokenFile(f"has a 'policy.pth' that is not a PyTorch file ({type(error).__name__}: {error})") from error
    if not isinstance(state_dict, dict) or not all(
        isinstance(key, str) and isinstance(value, th.Tensor) for key, value in state_dict.items()
    ):
        raise _BrokenFile("has a 'policy.pth' that is not a state dict (a mapping from layer names to tensors)")
    return data, state_dict


def actor_critic_algorithm(data: dict[str, Any]) -> str:
    """Which algorithm saved an actor-critic zip (PPO, A2C and TRPO share their policy classes): what each one saves."""
    return "TRPO" if "cg_max_steps" in data else "PPO" if "clip_range" in data else "A2C"


def td3_algorithm(data: dict[str, Any]) -> str:
    """Which algorithm saved a TD3-policy zip: DDPG is TD3 with one critic update per actor update and no target noise
    (its noise clipped to 0)."""
    return "DDPG" if data.get("policy_delay") == 1 and data.get("target_noise_clip") == 0.0 else "TD3"


def saving_algorithm(module: str, data: dict[str, Any]) -> str | None:
    """
    Which algorithm saved a zip, from its policy class's module and the settings it saved (readable JSON).

    :param module: The module of the zip's policy class (``data["policy_class"]["__module__"]``)
    :param data: The zip's ``data``
    :return: The algorithm's name (``DQN``, ``PPO``, ``DDPG``, ...), None for a module of no SB3 or sb3-contrib policy
    """
    if module == "stable_baselines3.common.policies":
        return actor_critic_algorithm(data)
    if module == "stable_baselines3.td3.policies":
        return td3_algorithm(data)
    return _MODULE_ALGORITHMS.get(module)


def _policy_class(data: dict[str, Any], state_dict: dict[str, th.Tensor], observation_space: spaces.Space) -> tuple[type, str]:
    """SB3's policy class named by the readable fields of ``policy_class``, and the algorithm that uses it."""
    record = _readable(data.get("policy_class"), "policy_class")
    module = record.get("__module__")
    if not isinstance(module, str) or module not in _POLICY_CLASSES:
        raise UnreadableField(
            f"its policy class comes from module {str(module)[:80]!r}, not one of SB3's or sb3-contrib's "
            f"(the safe reader rebuilds {', '.join(_POLICY_CLASSES)})"
        )
    names = _POLICY_CLASSES[module]
    init_text = _INIT_TEXT.match(str(record.get("__init__", "")))
    if init_text is not None:
        name = init_text.group(1)
        if name not in names.values():
            raise UnreadableField(f"its policy class {module}.{name} is not one of {sorted(names.values())}")
    elif isinstance(observation_space, spaces.Dict):
        name = names["MultiInput"]
    else:  # the name is not written: SB3's Cnn policies differ from the Mlp ones by their features extractor
        name = names["Cnn" if any(".cnn." in key for key in state_dict) else "Mlp"]
    algorithm = saving_algorithm(module, data)
    if algorithm is None:  # every module of _POLICY_CLASSES has its algorithm
        raise UnreadableField(f"no algorithm is known to save policies of {module}")
    try:
        return getattr(importlib.import_module(module), name), algorithm
    except ImportError as error:
        raise _BrokenFile(f"needs {module}, which cannot be imported here ({error})") from error


def _allowed_class(text: Any, modules: tuple[str, ...], names: frozenset[str], what: str) -> type:
    """A class from an allow-list, found from its readable name ``"<class 'module.Name'>"``."""
    path = class_path(text, what)
    module = next((prefix for prefix in modules if path.startswith(prefix) and path[len(prefix) :] in names), None)
    if module is None:
        raise UnreadableField(f"{what} {path} is not one the safe reader rebuilds ({', '.join(sorted(names))})")
    return getattr(importlib.import_module(module.rstrip(".")), path[len(module) :])


def _sizes(value: Any) -> Iterator[int]:
    """Every integer in a nested setting (layer widths, feature sizes)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, (list, tuple, dict)):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _sizes(item)


def _policy_kwargs(data: dict[str, Any], n_weights: int) -> dict[str, Any]:
    """The policy's constructor settings rebuilt from the readable entries of ``policy_kwargs``."""
    kwargs: dict[str, Any] = {}
    for key, value in _readable(data.get("policy_kwargs") or {}, "policy_kwargs").items():
        if key == "activation_fn":
            kwargs[key] = _allowed_class(value, _ACTIVATION_MODULES, _ACTIVATIONS, "policy_kwargs['activation_fn']")
        elif key == "features_extractor_class":
            extractors = _FEATURES_EXTRACTORS_BY_MODULE
            module = next(
                (name for name in extractors if str(value).startswith(f"<class '{name}")), _FEATURES_EXTRACTOR_MODULE
            )
            kwargs[key] = _allowed_class(value, (module,), extractors[module], f"policy_kwargs[{key!r}]")
        elif key in _PLAIN_SETTINGS and not isinstance(value, str):
            kwargs[key] = value
        elif key not in _TRAINING_SETTINGS:
            raise UnreadableField(f"policy_kwargs[{key!r}] = {value!r:.80} is not a setting the safe reader rebuilds")
    net_arch = kwargs.get("net_arch")
    if isinstance(net_arch, list) and net_arch and isinstance(net_arch[0], dict):
        kwargs["net_arch"] = net_arch[0]  # SB3 < 1.8's format, converted as BaseAlgorithm.load does
    if "n_quantiles" not in kwargs and isinstance(data.get("n_quantiles"), int):
        kwargs["n_quantiles"] = data["n_quantiles"]
    # On-policy algorithms pass their gSDE flag to the policy themselves: rebuild it so that such a policy is refused
    if data.get("use_sde") is True:
        kwargs["use_sde"] = True
    # No layer is wider than the file has weights: refuse before allocating a network the weights cannot fill
    too_large = [size for size in _sizes(kwargs) if size > max(n_weights, 1)]
    if too_large:
        raise _BrokenFile(f"asks for layers of size {too_large[:3]} but its policy.pth holds only {n_weights} weights")
    return kwargs


def _layer_mismatch(expected: dict[str, th.Tensor], loaded: dict[str, th.Tensor]) -> str:
    """The missing, unexpected and mis-shaped layers, or an empty string when the state dicts match."""

    def listed(keys: list[str]) -> str:
        return ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")

    missing = sorted(expected.keys() - loaded.keys())
    unexpected = sorted(loaded.keys() - expected.keys())
    misshaped = [
        f"{key} {tuple(loaded[key].shape)} (expected {tuple(expected[key].shape)})"
        for key in sorted(expected.keys() & loaded.keys())
        if loaded[key].shape != expected[key].shape
    ]
    found = (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
    return "; ".join(f"{what}: {listed(keys)}" for what, keys in found if keys)


def _rebuild(file: Path, device: th.device | str) -> TeacherPolicy:
    data, state_dict = _read_members(file)
    observation_space = read_space(data.get("observation_space"), "observation_space")
    action_space = read_space(data.get("action_space"), "action_space")
    if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
        raise _BrokenFile(f"has action space {action_space}: teachers act in a Discrete or a Box action space")
    policy_class, algorithm = _policy_class(data, state_dict, observation_space)
    kwargs = _policy_kwargs(data, sum(tensor.numel() for tensor in state_dict.values()))
    with preserve_global_rng():
        try:
            policy: BasePolicy = policy_class(observation_space, action_space, lambda _: 0.0, **kwargs)
        except Exception as error:  # SB3 asserts (NatureCNN without images), torch refuses sizes, kwargs mistyped, ...
            raise _BrokenFile(f"has settings {kwargs} that do not build a {policy_class.__name__}: {error}") from error
    expected = policy.state_dict()
    if getattr(policy, "share_features_extractor", False):
        # SB3 < 1.7 saved the shared extractor once, without its pi_/vf_ aliases (the same module)
        for key in expected.keys() - state_dict.keys():
            prefix, _, rest = key.partition(".")
            if prefix in ("pi_features_extractor", "vf_features_extractor") and f"features_extractor.{rest}" in state_dict:
                state_dict[key] = state_dict[f"features_extractor.{rest}"]
    mismatch = _layer_mismatch(expected, state_dict)
    if mismatch:
        raise _BrokenFile(f"has weights that do not fit the {policy_class.__name__} its data describes: {mismatch}")
    policy.load_state_dict(state_dict, strict=True)
    policy.eval()
    return TeacherPolicy(policy.to(device), algorithm, observation_space, action_space, file)


def read_teacher_zip(path: str | os.PathLike, device: th.device | str = "cpu") -> TeacherPolicy:
    """
    Rebuild a teacher's network from an SB3 model zip without unpickling anything from it.

    Reads SB3 2.x zips and SB3 1.x zips made under ``gym`` (``gym`` need not be installed). Uses SB3's own policy
    classes, the activations and features extractors SB3 ships, and leaves the global random states as they were.

    :param path: Path to the SB3 model zip
    :param device: Device to put the network on
    :return: The rebuilt policy, in ``eval()`` mode, with the spaces it was trained on
    :raises FileNotFoundError: If there is no such file
    :raises TeacherFileError: If the file is broken, acts in neither a Discrete nor a Box action space, or holds anything
        that cannot be rebuilt without unpickling (the message names SB3's full loader as the opt-in for trusted files)
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"Teacher file {str(file)!r} does not exist (expected an SB3 model .zip)")
    try:
        return _rebuild(file, device)
    except UnreadableField as error:
        message = f"Teacher file {str(file)!r} cannot be rebuilt without unpickling: {error}; {TRUST_HINT}"
        raise TeacherFileError(message) from error
    except _BrokenFile as error:
        raise TeacherFileError(f"Teacher file {str(file)!r} {error}") from error
