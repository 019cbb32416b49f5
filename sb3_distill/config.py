"""Where the project's data lives: the Zoo configs, the shipped teachers and the study settings."""

import os
from pathlib import Path


PACKAGE_DIR = Path(__file__).resolve().parent


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


def shipped_teachers(algo: str = "dqn") -> list[str]:
    """
    The env ids that have a teacher of ``algo`` shipped with the package (``zoo_configs/teachers/<env>_<algo>.zip``),
    sorted.

    :param algo: The teacher's algorithm, by its Zoo name (``dqn``, ``sac``)
    """
    suffix = f"_{algo}.zip"
    return sorted(path.name[: -len(suffix)] for path in (zoo_configs_dir() / "teachers").glob(f"*{suffix}"))


def shipped_teacher(env_id: str, algo: str = "dqn") -> Path:
    """
    The teacher zip that ships with the package for an env, e.g. ``shipped_teacher("CartPole-v1")`` or
    ``shipped_teacher("Pendulum-v1", algo="sac")``: found in a source checkout (and an editable install) as in a regular
    install. Give it as ``DistilledDQN(teacher=...)``.

    :param env_id: The env id (``CartPole-v1``; ``MinAtar/Breakout-v1`` is filed as ``MinAtar-Breakout-v1``)
    :param algo: The teacher's algorithm, by its Zoo name (``dqn``, ``sac``)
    :return: The path of ``zoo_configs/teachers/<env_id>_<algo>.zip``, ``/`` in the id written ``-`` as in the Zoo's file
        names
    """
    path = zoo_configs_dir() / "teachers" / f"{env_id.replace('/', '-')}_{algo}.zip"
    if not path.is_file():
        raise ValueError(
            f"No {algo} teacher ships for env {env_id!r} (no {str(path)!r}); the envs with a shipped {algo} teacher are "
            f"{shipped_teachers(algo)}. Train one with `sb3-distill teacher --algo {algo} --env {env_id}` and pass its "
            "path instead."
        )
    return path


def zoo_config_path(algo: str) -> Path:
    """
    The project's config file for an algorithm, e.g. ``zoo_configs/distilled_dqn.yml``.

    :param algo: Zoo algorithm name (``dqn`` or ``distilled_dqn``)
    """
    return zoo_configs_dir() / f"{algo}.yml"


def resolve_relative_to(path: str | os.PathLike, base_dir: str | os.PathLike) -> Path:
    """
    An absolute path: ``path`` itself when absolute (``~`` expanded), else ``base_dir / path``.

    :param path: The path as written
    :param base_dir: The folder relative paths are taken from
    """
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else (Path(base_dir) / expanded).resolve()


def display_path(path: str | os.PathLike) -> str:
    """
    A path as the project shows it in messages and in the files it writes: relative to the project (``zoo_configs/...``)
    for its own data, relative to the working directory for a path under it, else as it is. No output names a folder of
    the machine it ran on unless the user gave one.

    :param path: The path
    """
    resolved = Path(path).expanduser().resolve()
    for name in ("zoo_configs", "tuning"):
        data_dir = project_data_dir(name).resolve()
        if resolved.is_relative_to(data_dir):
            return str(Path(name) / resolved.relative_to(data_dir))
    cwd = Path.cwd().resolve()
    return str(resolved.relative_to(cwd)) if resolved.is_relative_to(cwd) else str(path)
