"""
The check an export must pass before its file is kept: the student zip is of a family that can be exported, the
observations of the check (a seeded random-action rollout of the env and seeded samples of the observation space), and
the parity of the exported network with SB3's ``predict`` and SB3's own torch networks.
"""

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecTransposeImage

from sb3_distill.common.teacher_spaces import class_path
from sb3_distill.common.teacher_zip import saving_algorithm
from sb3_distill.export_families import FAMILIES, SUPPORTED, ExportFamily
from sb3_distill.export_runtimes import Observations, Runner, input_arrays
from sb3_distill.recipe import ALGO_NAME, make_recipe

# Largest difference allowed between the exported output and SB3's: absolute for |output| <= 1, relative above
# (float32's spacing is 3.8e-6 at |Q| = 32, and onnxruntime sums a matrix product in another order than torch)
Q_TOLERANCE = 1e-5
# Why the algorithms that save a policy of SB3's or sb3-contrib's, but are not exported, are refused
NOT_EXPORTED = {
    "RecurrentPPO": "a recurrent policy carries its LSTM state from one step to the next, which a network of the "
    "observations alone does not",
    "MaskablePPO": "its actions depend on the action masks given beside the observation",
}


class ExportError(ValueError):
    """An export that failed its check, or that the exporter could not write; the message names the file."""


def check_student_zip(path: str | os.PathLike) -> ExportFamily:
    """
    The family of a student zip, decided from the zip's readable ``data`` JSON (nothing unpickled): its policy class,
    what its algorithm saves, and its action space. A zip of no family in ``FAMILIES`` is refused.

    :param path: The student's zip
    :return: How to export and check it
    """
    file = Path(path)
    expected = f"an SB3 model zip written by model.save(), of {SUPPORTED}"
    if not file.is_file():
        raise FileNotFoundError(f"Student file {str(file)!r} does not exist (expected {expected})")
    try:
        with zipfile.ZipFile(file) as archive:
            data = json.loads(archive.read("data").decode("utf-8"))
        record = data["policy_class"]
        module, name = record["__module__"], str(record.get("__init__", "")).split(".")[0].removeprefix("<function ")
        space_path = class_path(data["action_space"][":type:"], "the action space's type")
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as error:
        raise ValueError(f"Student file {str(file)!r} is not an SB3 model zip ({error}): expected {expected}") from error
    algorithm = saving_algorithm(module, data)
    if algorithm is None:
        raise ValueError(
            f"Student file {str(file)!r} holds {module}.{name}, a policy of no SB3 or sb3-contrib algorithm: "
            f"expected {expected}"
        )
    space_name = space_path.rsplit(".", 1)[-1]
    family = FAMILIES.get((algorithm, getattr(gym.spaces, space_name, gym.spaces.Space)))
    if family is None:
        if algorithm in NOT_EXPORTED:
            why = NOT_EXPORTED[algorithm]
        elif any(known == algorithm for known, _ in FAMILIES):
            why = f"{algorithm} is exported with Discrete or Box actions, not {space_name}"
        else:
            why = f"no export is written for {algorithm}"
        raise ValueError(
            f"Student file {str(file)!r} holds {module}.{name} (saved by {algorithm}, {space_name} actions), which "
            f"sb3-distill export does not export: {why}. Exported: {SUPPORTED}"
        )
    return family


def recorded_env_id(path: str | os.PathLike) -> str | None:
    """
    The env id that ``sb3-distill distill`` records beside the student (``comparison.json``); None when there is no
    such file. A ``comparison.json`` that is there but unreadable, or records no env id, is an error naming it.
    """
    record = Path(path).with_name("comparison.json")
    if not record.exists():
        return None
    try:
        comparison = json.loads(record.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{str(record)!r} beside the student is not readable JSON ({error}): repair or remove it, or pass --env"
        ) from None
    env_id = comparison.get("env_id") if isinstance(comparison, dict) else None
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(
            f"{str(record)!r} beside the student records no env id (expected a JSON object with an 'env_id' string, "
            f"as sb3-distill distill writes): repair or remove it, or pass --env"
        )
    return env_id


def same_kind(space: gym.Space, other: gym.Space) -> bool:
    """Whether two observation spaces have the same kind, keys, shapes and dtypes (bounds may differ)."""
    if isinstance(space, gym.spaces.Dict) and isinstance(other, gym.spaces.Dict):
        return list(space.spaces) == list(other.spaces) and all(same_kind(space[key], other[key]) for key in space.spaces)
    return type(space) is type(other) and space.shape == other.shape and space.dtype == other.dtype


def _observation_env(env: str | gym.Env | VecEnv, model: BaseAlgorithm, seed: int, zoo_algo: str) -> VecEnv:
    """The env of the rollout, with the student's observation space (a registered id: built as the Zoo does)."""
    if isinstance(env, str):
        vec_env = make_recipe(env, zoo_algo).make_env(seed=seed, n_envs=1, eval_env=True)
    else:
        vec_env = env if isinstance(env, VecEnv) else DummyVecEnv([lambda: env])
    space = vec_env.observation_space
    images = list(space.spaces.values()) if isinstance(space, gym.spaces.Dict) else [space]
    if any(is_image_space(image) and not is_image_space_channels_first(image) for image in images):  # type: ignore[arg-type]
        vec_env = VecTransposeImage(vec_env)  # SB3 does this when it trains on channel-last images
    if not same_kind(vec_env.observation_space, model.observation_space):
        raise ValueError(
            f"the env {env!r} has observation space {vec_env.observation_space}, but the student was trained on "
            f"{model.observation_space}: pass the env the student was trained on"
        )
    return vec_env


def check_observations(
    model: BaseAlgorithm,
    env: str | gym.Env | VecEnv | None,
    n_observations: int,
    seed: int = 0,
    zoo_algo: str = ALGO_NAME,
) -> Observations:
    """
    Observations of the parity check: half from a rollout of the env with random actions, half sampled from the
    observation space (values a rollout may never reach), both seeded; all sampled from the observation space the zip
    records when there is no env.

    :param model: The student
    :param env: A registered env id (built with the Zoo settings of ``zoo_algo``), a Gymnasium env or a VecEnv; None: none
    :param n_observations: How many (at least 2)
    :param seed: Seed of the env, its random actions and the space's sampler
    :param zoo_algo: The Zoo algorithm whose config entry builds a registered env (its wrappers, frame stacking, ...)
    """
    if n_observations < 2:
        raise ValueError(f"n_check={n_observations!r}, expected at least 2 observations")
    rollout: list[Any] = []
    if env is not None:
        vec_env = _observation_env(env, model, seed, zoo_algo)
        vec_env.seed(seed)
        vec_env.action_space.seed(seed)
        observation = vec_env.reset()
        while len(rollout) < n_observations // 2:
            rollout += [
                {key: value[0] for key, value in observation.items()} if isinstance(observation, dict) else observation[0]
            ]
            observation = vec_env.step(np.array([vec_env.action_space.sample()]))[0]
        vec_env.close()
    space = model.observation_space
    space.seed(seed)
    samples = rollout + [space.sample() for _ in range(n_observations - len(rollout))]
    if isinstance(space, gym.spaces.Dict):
        return {key: np.stack([sample[key] for sample in samples]) for key in space.spaces}
    return np.stack(samples)


def select(observations: Observations, indices: np.ndarray) -> Observations:
    """The observations at ``indices`` (of every key of a Dict observation)."""
    if isinstance(observations, dict):
        return {key: value[indices] for key, value in observations.items()}
    return observations[indices]


def check_parity(
    model: BaseAlgorithm,
    family: ExportFamily,
    runner: Runner,
    observations: Observations,
    path: str | os.PathLike,
    tolerance: float = Q_TOLERANCE,
) -> tuple[float, float]:
    """
    Compare an exported network with the student on a batch and on a single observation: its output must equal the
    family's reference (SB3's torch network's values, or ``predict``'s actions) within ``tolerance * max(1, |output|)``,
    and, for per-action values, their argmax SB3's ``predict(deterministic=True)``.

    :param model: The student
    :param family: Its family (what the output is, and what it must equal)
    :param runner: The exported network
    :param observations: The check's observations
    :param path: The file, for the message
    :param tolerance: Largest ``|difference| / max(1, |output|)`` allowed
    :return: The largest absolute difference of the outputs, and the largest ``|difference| / max(1, |output|)``
    :raises ExportError: If they disagree (the message names the largest difference)
    """
    max_difference, max_scaled, mismatched = 0.0, 0.0, 0
    for batch in (observations, select(observations, np.arange(1))):
        exported = runner(input_arrays(batch, model.observation_space))
        expected = family.reference(model, batch)
        if exported.shape != expected.shape:
            raise ExportError(
                f"the exported {Path(path).name} returns shape {exported.shape} where {family.name} gives "
                f"{expected.shape}; no file was written"
            )
        difference = np.abs(exported - expected)
        max_difference = max(max_difference, float(difference.max()))
        max_scaled = max(max_scaled, float((difference / np.maximum(1.0, np.abs(expected))).max()))
        if family.values is not None:
            actions, _ = model.predict(batch, deterministic=True)
            mismatched += int((exported.argmax(axis=1) != np.asarray(actions).reshape(-1)).sum())
    if not max_scaled <= tolerance or mismatched:
        label = family.label
        greedy = f", {mismatched} greedy action(s) differ from {family.name}.predict" if family.values is not None else ""
        reference = f"{family.name}.predict" if family.values is None else f"the torch {family.network_name}"
        raise ExportError(
            f"the exported {Path(path).name} disagrees with {reference}: max |{label} difference| = {max_difference:.3g} "
            f"(max |{label} difference| / max(1, |{label}|) = {max_scaled:.3g}, tolerance {tolerance:g}){greedy}; "
            "no file was written"
        )
    return max_difference, max_scaled
