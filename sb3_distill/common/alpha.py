"""
The weight of the distillation term: checks of a fixed or scheduled alpha, and QDagger's performance-based alpha.

Paper: https://arxiv.org/abs/2206.01626 (Reincarnating RL, QDagger: alpha decays as the student's score nears 1)
"""

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from sb3_distill.report import TeacherAgent, normalized_score, random_policy_return
from sb3_distill.common.teacher import Teacher

#: The value of ``alpha`` that selects the performance-based weight
PERFORMANCE = "performance"

AlphaLike = float | Schedule | Literal["performance"]


def is_performance_alpha(alpha: Any) -> bool:
    """Whether ``alpha`` selects QDagger's performance-based weight (the string ``"performance"``)."""
    return isinstance(alpha, str) and alpha == PERFORMANCE


def _is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float, np.floating, np.integer))


def check_alpha(alpha: AlphaLike, progress_remaining: float | None = None) -> None:
    """
    Fail unless ``alpha`` is a number in [0, 1], a schedule (a callable of progress_remaining) or ``"performance"``.

    :param alpha: The value to check
    :param progress_remaining: When ``alpha`` is a value a schedule returned, the progress it was asked for
    """
    if is_performance_alpha(alpha) and progress_remaining is None:
        return
    where = (
        "" if progress_remaining is None else f" (returned by the alpha schedule at progress_remaining={progress_remaining})"
    )
    if callable(alpha) and progress_remaining is None:
        # Check the schedule where it starts and ends; every value is checked again when used
        for progress in (1.0, 0.0):
            check_alpha(alpha(progress), progress_remaining=progress)
        return
    if not _is_real(alpha):
        raise TypeError(
            f"alpha={alpha!r}{where} must be a float in [0, 1], a schedule of progress_remaining, or {PERFORMANCE!r}"
        )
    if math.isnan(alpha) or not 0.0 <= alpha <= 1.0:  # type: ignore[arg-type, operator]  # a real number here
        raise ValueError(f"alpha={alpha!r}{where} is outside [0, 1]: alpha weighs the distillation term against the TD loss")


def check_temperature(temperature: float) -> None:
    """
    Fail unless ``temperature`` is a finite number > 0.

    :param temperature: The value to check
    """
    if not _is_real(temperature):
        raise TypeError(f"temperature={temperature!r} must be a float > 0")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r} must be a finite float > 0 (e.g. 0.01 to 10)")


def check_performance_settings(
    alpha_0: float, teacher_return: float | None, random_return: float | None, eval_episodes: int, alpha_min: float = 0.0
) -> None:
    """
    Fail unless the settings of the performance-based alpha are valid (checked whatever ``alpha`` is).

    :param alpha_0: The weight while the student scores 0 (QDagger's c), in [0, 1]
    :param teacher_return: The teacher's mean return, or None to measure it
    :param random_return: A random policy's mean return, or None to measure it
    :param eval_episodes: Episodes of each measurement, >= 1
    :param alpha_min: The least weight, once the student scores 1 or more, in [0, alpha_0]
    """
    if not _is_real(alpha_0) or math.isnan(alpha_0) or not 0.0 <= alpha_0 <= 1.0:
        raise ValueError(f"alpha_0={alpha_0!r} must be a float in [0, 1]: the distillation weight while the student scores 0")
    if not _is_real(alpha_min) or math.isnan(alpha_min) or not 0.0 <= alpha_min <= alpha_0:
        raise ValueError(
            f"alpha_min={alpha_min!r} must be a float in [0, alpha_0={alpha_0!r}]: the least distillation weight, once the "
            "student scores at its teacher's level"
        )
    for name, value in (("teacher_return", teacher_return), ("random_return", random_return)):
        if value is not None and not (_is_real(value) and math.isfinite(value)):
            raise ValueError(f"{name}={value!r} must be a finite float (a mean episode return), or None to measure it")
    if teacher_return is not None and random_return is not None:
        check_reference_returns(teacher_return, random_return)
    if isinstance(eval_episodes, bool) or not isinstance(eval_episodes, (int, np.integer)) or eval_episodes < 1:
        raise ValueError(f"performance_eval_episodes={eval_episodes!r} must be an int >= 1")


def check_reference_returns(teacher_return: float, random_return: float, how: str = "given") -> None:
    """
    Fail unless the teacher's return is above a random policy's: the student's score divides by their difference.

    :param teacher_return: The teacher's mean return
    :param random_return: A random policy's mean return
    :param how: How they were obtained, for the message ("given" or "measured over N episodes")
    """
    if not teacher_return > random_return:
        raise ValueError(
            f"teacher_return={teacher_return!r} must exceed random_return={random_return!r} ({how}): the performance-based "
            "alpha scores the student from random (0) to teacher (1); give both returns, or use a float alpha"
        )


class PerformanceAlpha:
    """
    QDagger's weight of the distillation term: ``alpha_t = max(alpha_min, alpha_0 * clip(1 - s, 0, 1))``, where ``s``
    is the student's normalized score ``(G_student - G_random) / (G_teacher - G_random)`` on its recent training
    episodes. QDagger's own rule has ``alpha_min = 0``: the student leaves the teacher once it matches it.

    :param alpha_0: The weight while the student scores 0 or less (QDagger's c), in [0, 1]
    :param teacher_return: The teacher's mean return G_teacher
    :param random_return: A random policy's mean return G_random, below ``teacher_return``
    :param alpha_min: The least weight, in [0, alpha_0]: the student keeps that much of the teacher's guidance once it
        scores at the teacher's level (0: QDagger's rule)
    """

    def __init__(self, alpha_0: float, teacher_return: float, random_return: float, alpha_min: float = 0.0):
        check_performance_settings(alpha_0, teacher_return, random_return, eval_episodes=1, alpha_min=alpha_min)
        self.alpha_0 = float(alpha_0)
        self.alpha_min = float(alpha_min)
        self.teacher_return = float(teacher_return)
        self.random_return = float(random_return)

    def __call__(self, episode_returns: Iterable[float]) -> tuple[float, float | None]:
        """
        The weight for the student's recent returns.

        :param episode_returns: Returns of the student's recent training episodes (SB3's ``ep_info_buffer``)
        :return: (alpha_t, the student's score s, or None before any episode finished, when alpha_t = alpha_0)
        """
        returns = list(episode_returns)
        if not returns:
            return self.alpha_0, None
        # s: 0 for a random policy's return, 1 for the teacher's
        score = normalized_score(float(np.mean(returns)), self.teacher_return, self.random_return)
        # Distill fully while the student is no better than random, down to alpha_min once it matches the teacher
        return max(self.alpha_min, self.alpha_0 * float(np.clip(1.0 - score, 0.0, 1.0))), score

    def __repr__(self) -> str:
        return (
            f"PerformanceAlpha(alpha_0={self.alpha_0}, teacher_return={self.teacher_return}, "
            f"random_return={self.random_return}, alpha_min={self.alpha_min})"
        )


def evaluation_copy(env: VecEnv, observation_space: spaces.Space, action_space: spaces.Space) -> VecEnv | None:
    """
    A one-env copy of the training env, made from its first env's spec: ``gym.make`` with the same id, kwargs, time
    limit and wrappers, with SB3's ``Monitor`` (without log file) where the training env has it, else outermost, and
    vectorized as SB3 wraps a training env (channels first for images).

    :param env: The training env
    :param observation_space: The student's observation space, which the copy must have
    :param action_space: The student's action space, which the copy must have
    :return: The copy, or None where the env cannot be remade that way (not made by ``gym.make``, a wrapper that
        records no constructor arguments such as SB3's ``AtariWrapper``, VecEnv wrappers such as ``VecFrameStack``)
    """
    spec = env.get_attr("spec", indices=0)[0]
    if not isinstance(spec, gym.envs.registration.EnvSpec):
        return None
    monitor_entry_point = f"{Monitor.__module__}:{Monitor.__name__}"
    # SB3's Monitor records no constructor arguments (its spec has kwargs=None): remake it without a log file
    wrappers = tuple(
        dataclasses.replace(wrapper, kwargs={}) if wrapper.entry_point == monitor_entry_point else wrapper
        for wrapper in spec.additional_wrappers
    )
    if any(wrapper.kwargs is None for wrapper in wrappers):
        return None
    try:
        single_env = gym.make(dataclasses.replace(spec, additional_wrappers=wrappers))
    except Exception:  # whatever gym.make cannot remake: the caller asks for the returns instead
        return None
    if all(wrapper.entry_point != monitor_entry_point for wrapper in wrappers):
        single_env = Monitor(single_env)
    vec_env = BaseAlgorithm._wrap_env(DummyVecEnv([lambda: single_env]), verbose=0, monitor_wrapper=False)
    if vec_env.observation_space != observation_space or vec_env.action_space != action_space:
        vec_env.close()
        return None
    return vec_env


def measure_reference_returns(
    teacher: Teacher, env: VecEnv, n_episodes: int, seed: int | None, device: th.device | str
) -> tuple[float, float]:
    """
    The teacher's mean return over ``n_episodes`` deterministic episodes and a random policy's, on ``env``.

    :param teacher: The teacher, acting greedily on its values or with its mean action
    :param env: The evaluation env (one env), closed by the caller
    :param n_episodes: Episodes of each measurement
    :param seed: Seed of the env and of the random actions (None: unseeded env, random actions seeded with 0)
    :param device: Where the teacher's inputs go
    :return: (teacher's mean return, random policy's mean return)
    """
    env.seed(seed)
    teacher_return, _ = evaluate_policy(
        TeacherAgent(teacher, device), env, n_eval_episodes=n_episodes, deterministic=True, warn=False
    )
    random_return = random_policy_return(env, n_episodes, seed=0 if seed is None else seed)
    return float(teacher_return), random_return  # type: ignore[arg-type]  # a float without return_episode_rewards


def make_performance_alpha(
    alpha_0: float,
    teacher_return: float | None,
    random_return: float | None,
    teacher: Teacher | None,
    env: VecEnv | None,
    eval_episodes: int,
    seed: int | None,
    device: th.device | str,
    alpha_min: float = 0.0,
) -> tuple[PerformanceAlpha, str]:
    """
    The performance-based alpha, with the given returns, the missing ones measured by :func:`measure_reference_returns`
    on :func:`evaluation_copy` of the training env.

    :param alpha_0: The weight while the student scores 0 or less
    :param teacher_return: The teacher's mean return, or None to measure it
    :param random_return: A random policy's mean return, or None to measure it
    :param teacher: The teacher (needed to measure)
    :param env: The training env (needed to measure)
    :param eval_episodes: Episodes of each measurement
    :param seed: Seed of the measurement
    :param device: The teacher's device
    :param alpha_min: The least weight, once the student scores at the teacher's level
    :return: (the weight, how the returns were obtained)
    """
    how = "given"
    if teacher_return is None or random_return is None:
        env_copy = evaluation_copy(env, teacher.observation_space, teacher.action_space) if teacher and env else None
        if env_copy is None:
            raise ValueError(
                f"alpha={PERFORMANCE!r} with teacher_return={teacher_return!r}, random_return={random_return!r}: the "
                "missing returns are measured in a copy of the training env made from its spec, but there is no teacher "
                "or env yet, or the env cannot be remade that way (not made by gym.make, wrappers that record no "
                "arguments such as SB3's AtariWrapper, VecEnv wrappers such as VecFrameStack): pass teacher_return= "
                "and random_return= (mean episode returns on the scale of the training episodes)"
            )
        try:
            assert teacher is not None  # checked with env_copy
            measured = measure_reference_returns(teacher, env_copy, eval_episodes, seed, device)
        finally:
            env_copy.close()
        teacher_return = measured[0] if teacher_return is None else teacher_return
        random_return = measured[1] if random_return is None else random_return
        how = f"measured over {eval_episodes} episodes where not given"
    check_reference_returns(teacher_return, random_return, how)
    return PerformanceAlpha(alpha_0, teacher_return, random_return, alpha_min), how
