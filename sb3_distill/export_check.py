"""
The check an export must pass before its file is kept: the student zip is a DQN's, the observations of the check
(a seeded random-action rollout of the env and seeded samples of the observation space), and the parity of the
exported network with SB3's ``predict`` and the torch Q-network.
"""

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecTransposeImage

from sb3_distill.export_runtimes import Runner, input_arrays
from sb3_distill.recipe import make_recipe
from sb3_distill.common.teacher_zip import actor_critic_algorithm

# Largest difference allowed between the exported Q-values and the torch Q-network's: absolute for |Q| <= 1, relative
# above (float32's spacing is 3.8e-6 at |Q| = 32, and onnxruntime sums a matrix product in another order than torch)
Q_TOLERANCE = 1e-5
DQN_POLICY_MODULE = "stable_baselines3.dqn.policies"

Observations = np.ndarray | dict[str, np.ndarray]


class ExportError(ValueError):
    """An export that failed its check, or that the exporter could not write; the message names the file."""


def check_student_zip(path: str | os.PathLike) -> None:
    """
    Refuse a file that is not a DQN-family student zip, from the zip's readable ``data`` JSON (nothing unpickled).

    :param path: The student's zip
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"Student file {str(file)!r} does not exist (expected a DQN student .zip)")
    expected = f"a DQN or DistilledDQN zip written by model.save() (policy class from {DQN_POLICY_MODULE})"
    try:
        with zipfile.ZipFile(file) as archive:
            data = json.loads(archive.read("data").decode("utf-8"))
        record = data["policy_class"]
        module, name = record["__module__"], str(record.get("__init__", "")).split(".")[0].removeprefix("<function ")
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError) as error:
        raise ValueError(f"Student file {str(file)!r} is not an SB3 model zip ({error}): expected {expected}") from error
    if module != DQN_POLICY_MODULE:
        algorithm = "QRDQN" if "qrdqn" in module else "another algorithm"
        if module in ("stable_baselines3.common.policies", "sb3_contrib.common.maskable.policies"):
            algorithm = "MaskablePPO" if "maskable" in module else actor_critic_algorithm(data)
        raise ValueError(f"Student file {str(file)!r} holds {module}.{name} (saved by {algorithm}): expected {expected}")


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


def _observation_env(env: str | gym.Env | VecEnv, model: DQN, seed: int) -> VecEnv:
    """The env of the rollout, with the student's observation space (a registered id: built as the Zoo does)."""
    if isinstance(env, str):
        vec_env = make_recipe(env).make_env(seed=seed, n_envs=1, eval_env=True)
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


def check_observations(model: DQN, env: str | gym.Env | VecEnv | None, n_observations: int, seed: int = 0) -> Observations:
    """
    Observations of the parity check: half from a rollout of the env with random actions, half sampled from the
    observation space (values a rollout may never reach), both seeded; all sampled from the observation space the zip
    records when there is no env.

    :param model: The student
    :param env: A registered env id (built with the project's Zoo settings), a Gymnasium env or a VecEnv; None: none
    :param n_observations: How many (at least 2)
    :param seed: Seed of the env, its random actions and the space's sampler
    """
    if n_observations < 2:
        raise ValueError(f"n_check={n_observations!r}, expected at least 2 observations")
    rollout: list[Any] = []
    if env is not None:
        vec_env = _observation_env(env, model, seed)
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
    model: DQN, runner: Runner, observations: Observations, path: str | os.PathLike, tolerance: float = Q_TOLERANCE
) -> tuple[float, float]:
    """
    Compare an exported network with the student on a batch and on a single observation: its greedy actions must equal
    SB3's ``predict(deterministic=True)`` and its Q-values the torch Q-network's within ``tolerance * max(1, |Q|)``.

    :param model: The student
    :param runner: The exported network
    :param observations: The check's observations
    :param path: The file, for the message
    :param tolerance: Largest ``|difference| / max(1, |Q|)`` allowed
    :return: The largest absolute difference of Q-values, and the largest ``|difference| / max(1, |Q|)``
    :raises ExportError: If they disagree (the message names the largest difference)
    """
    max_difference, max_scaled, mismatched = 0.0, 0.0, 0
    for batch in (observations, select(observations, np.arange(1))):
        exported = runner(input_arrays(batch, model.observation_space))
        with th.no_grad():
            expected = model.q_net(model.policy.obs_to_tensor(batch)[0]).cpu().numpy()
        actions, _ = model.predict(batch, deterministic=True)
        difference = np.abs(exported - expected)
        max_difference = max(max_difference, float(difference.max()))
        max_scaled = max(max_scaled, float((difference / np.maximum(1.0, np.abs(expected))).max()))
        mismatched += int((exported.argmax(axis=1) != np.asarray(actions).reshape(-1)).sum())
    if not max_scaled <= tolerance or mismatched:
        raise ExportError(
            f"the exported {Path(path).name} disagrees with the student: max |Q difference| = {max_difference:.3g} "
            f"(max |Q difference| / max(1, |Q|) = {max_scaled:.3g}, tolerance {tolerance:g}), {mismatched} greedy "
            "action(s) differ from DQN.predict; no file was written"
        )
    return max_difference, max_scaled
