"""
SB3's own loader for teacher zips the user trusts: it unpickles the zip's ``data``, which can run arbitrary code, so
:mod:`sb3_distill.common.teacher` only calls it on an explicit opt-in (``trust=True``, ``trust_teacher=True``).
"""

import contextlib
from pathlib import Path
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file

from sb3_distill.common.teacher_spaces import UnreadableField, read_space
from sb3_distill.common.teacher_zip import actor_critic_algorithm, preserve_global_rng, read_zip_data, td3_algorithm

# Replace the pickled schedules of a trusted zip (a teacher is never trained): legacy zips load without them
SCHEDULE_PLACEHOLDERS: dict[str, Any] = {
    "learning_rate": 0.0,
    "lr_schedule": lambda _: 0.0,
    "exploration_schedule": lambda _: 0.0,
    "clip_range": lambda _: 0.0,
}


def _trusted_algorithm(file: Path, policy_class: Any, data: dict[str, Any]) -> type[BaseAlgorithm]:
    """
    The SB3 class that loads a trusted zip, from its (unpickled) policy class and the settings it saved.

    :param file: The zip, for messages
    :param policy_class: The zip's policy class
    :param data: The zip's ``data``
    """
    from sb3_contrib import QRDQN, TQC, TRPO, MaskablePPO
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
    from sb3_contrib.qrdqn.policies import QRDQNPolicy
    from sb3_contrib.tqc.policies import TQCPolicy
    from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.dqn.policies import DQNPolicy
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    if isinstance(policy_class, type):
        if issubclass(policy_class, DQNPolicy):
            return DQN
        if issubclass(policy_class, QRDQNPolicy):
            return QRDQN
        if issubclass(policy_class, MaskableActorCriticPolicy):
            return MaskablePPO
        if issubclass(policy_class, SACPolicy):
            return SAC
        if issubclass(policy_class, TQCPolicy):
            return TQC
        if issubclass(policy_class, TD3Policy):
            return DDPG if td3_algorithm(data) == "DDPG" else TD3
        if issubclass(policy_class, ActorCriticPolicy) and not issubclass(policy_class, RecurrentActorCriticPolicy):
            # They share the policy class: what each saves tells them apart
            algorithms: dict[str, type[BaseAlgorithm]] = {"TRPO": TRPO, "PPO": PPO, "A2C": A2C}
            return algorithms[actor_critic_algorithm(data)]
    raise ValueError(
        f"Teacher {str(file)!r} was saved with policy {getattr(policy_class, '__module__', '?')}."
        f"{getattr(policy_class, '__name__', policy_class)}; supported teachers are DQN (stable_baselines3), QRDQN "
        "(sb3_contrib), SAC, TD3, DDPG, TQC and actor-critic agents (PPO, A2C, TRPO, MaskablePPO)"
    )


def _readable_spaces(file: Path) -> dict[str, spaces.Space]:
    """
    The zip's spaces rebuilt from the readable fields SB3 writes beside their pickles (so ``gym``-era zips load without
    ``gym``); a space that cannot be rebuilt so is left to SB3's unpickling.

    :param file: The zip
    """
    data = read_zip_data(file)
    rebuilt = {}
    for key in ("observation_space", "action_space"):
        with contextlib.suppress(UnreadableField):
            rebuilt[key] = read_space(data.get(key), key)
    return rebuilt


def load_trusted_zip(file: Path, device: th.device | str) -> BaseAlgorithm:
    """
    Load a trusted SB3 zip with SB3's own loader (which unpickles it) for the zip's algorithm.

    :param file: The zip
    :param device: Device to load the model on
    """
    custom_objects = {**SCHEDULE_PLACEHOLDERS, **_readable_spaces(file)}
    with preserve_global_rng():
        data, _, _ = load_from_zip_file(file, device="cpu", load_data=True, custom_objects=custom_objects)
    if data is None or "policy_class" not in data:
        raise ValueError(f"Teacher file {str(file)!r} holds no policy class: it is not an SB3 model zip")
    algorithm = _trusted_algorithm(file, data["policy_class"], data)
    with preserve_global_rng():
        return algorithm.load(file, device=device, custom_objects=custom_objects)
