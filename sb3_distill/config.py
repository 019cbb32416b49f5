"""Where the project's data lives and how its RL Zoo style YAML configs are read."""

import os
from pathlib import Path
from typing import Any

import torch as th
import yaml

PACKAGE_DIR = Path(__file__).resolve().parent

# Keys of a Zoo config entry that describe the run rather than the algorithm's constructor
ZOO_RUN_KEYS = ("n_timesteps", "policy", "n_envs", "env_wrapper", "frame_stack", "normalize", "env_kwargs", "callback")
# Keys whose values the Zoo evaluates as Python expressions
ZOO_EVALUATED_KEYS = ("policy_kwargs", "replay_buffer_class", "replay_buffer_kwargs")


def project_data_dir(name: str) -> Path:
    """
    A data folder of the project (``zoo_configs``, ``tuning``): at the top of a source checkout (and an editable
    install), or copied into the package as ``sb3_distill/data/<name>`` by a regular install (see setup.py).

    :param name: The folder's name
    """
    installed = PACKAGE_DIR / "data" / name
    return installed if installed.is_dir() else PACKAGE_DIR.parent / name


def zoo_configs_dir() -> Path:
    """The folder of the project's Zoo configs (``zoo_configs/``)."""
    return project_data_dir("zoo_configs")


def shipped_teachers() -> list[str]:
    """The env ids that have a teacher shipped with the package (``zoo_configs/teachers/<env>_dqn.zip``), sorted."""
    suffix = "_dqn.zip"
    return sorted(path.name[: -len(suffix)] for path in (zoo_configs_dir() / "teachers").glob(f"*{suffix}"))


def shipped_teacher(env_id: str) -> Path:
    """
    The teacher zip that ships with the package for an env, e.g. ``shipped_teacher("CartPole-v1")``: found in a
    source checkout (and an editable install) as in a regular install. Give it as ``DistilledDQN(teacher=...)``.

    :param env_id: The env id (``CartPole-v1``)
    :return: The path of ``zoo_configs/teachers/<env_id>_dqn.zip``
    """
    path = zoo_configs_dir() / "teachers" / f"{env_id}_dqn.zip"
    if not path.is_file():
        raise ValueError(
            f"No teacher ships for env {env_id!r} (no {str(path)!r}); the envs with a shipped teacher are "
            f"{shipped_teachers()}. Train one with `sb3-distill teacher --env {env_id}` and pass its path instead."
        )
    return path


def zoo_config_path(algo: str) -> Path:
    """
    The project's config file for an algorithm, e.g. ``zoo_configs/distilled_dqn.yml``.

    :param algo: Zoo algorithm name (``dqn`` or ``distilled_dqn``)
    """
    return zoo_configs_dir() / f"{algo}.yml"


def read_zoo_config(path: str | os.PathLike, env_id: str) -> dict[str, Any]:
    """
    The hyperparameters of one env entry of a Zoo YAML file, as written (strings not evaluated).

    :param path: The YAML file
    :param env_id: The env key (``CartPole-v1``)
    :return: A copy of the entry
    """
    with open(path) as file_handler:
        config = yaml.safe_load(file_handler) or {}
    if env_id not in config:
        raise KeyError(f"{str(path)!r} has no entry for env {env_id!r}; its entries are {sorted(config)}")
    return dict(config[env_id])


def evaluate_zoo_value(key: str, value: Any) -> Any:
    """
    Turn a Zoo string value such as ``"dict(net_arch=[64])"`` into the object it describes, as the Zoo does
    (with ``nn`` and ``th`` in scope, no builtins beyond ``dict``, ``list`` and ``tuple``).

    :param key: The hyperparameter's name, for messages
    :param value: The value from the YAML file
    """
    if not isinstance(value, str):
        return value
    namespace = {"dict": dict, "list": list, "tuple": tuple, "nn": th.nn, "th": th}
    try:
        return eval(value, {"__builtins__": {}}, namespace)
    except Exception as error:
        raise ValueError(f"{key}={value!r} is not a valid expression ({error})") from error


def resolve_relative_to(path: str | os.PathLike, base_dir: str | os.PathLike) -> Path:
    """
    An absolute path: ``path`` itself when absolute (``~`` expanded), else ``base_dir / path``.

    :param path: The path as written
    :param base_dir: The folder relative paths are taken from
    """
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else (Path(base_dir) / expanded).resolve()
