"""Shared pieces of the benchmark scripts: building the compared agents, evaluating them, writing results."""

import argparse
import csv
import inspect
import json
import os
import platform
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from matplotlib.figure import Figure
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

from sb3_distill import DistilledDQN
from sb3_distill.recipe import TEACHER_ALGO, make_recipe
from sb3_distill.report import count_parameters, random_policy_return

# The three agents of the sample-efficiency comparison
DISTILLED = "distilled student"
SCRATCH_STUDENT = "DQN scratch, student net"
SCRATCH_TEACHER = "DQN scratch, teacher net"
METHODS = (DISTILLED, SCRATCH_STUDENT, SCRATCH_TEACHER)


def build_agent(
    method: str, env_id: str, seed: int, overrides: dict[str, Any] | None = None, conf_file: str | None = None
) -> tuple[DQN, int]:
    """
    One of the compared agents with the project's settings, read by :func:`sb3_distill.recipe.make_recipe`.

    :param method: One of ``METHODS``
    :param env_id: Gymnasium env id
    :param seed: Random seed
    :param overrides: Hyperparameters replacing the configured ones, as the Zoo's ``-params`` (smoke runs)
    :param conf_file: The students' config (None: zoo_configs/distilled_dqn.yml); the teacher's is always the project's
    :return: (the model, its configured budget in environment steps)
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}, expected one of {METHODS}")
    teacher_recipe = make_recipe(env_id, TEACHER_ALGO, hyperparams=overrides)
    if method == SCRATCH_TEACHER:
        return teacher_recipe.make_model(teacher_recipe.make_env(seed), seed=seed), teacher_recipe.n_timesteps
    recipe = make_recipe(env_id, conf_file=conf_file, hyperparams=overrides)
    if method == DISTILLED:
        return recipe.make_model(recipe.make_env(seed), seed=seed), recipe.n_timesteps
    # From scratch, the student's net gets the Zoo's budget for the env, as the teacher's net does
    return DQN(env=recipe.make_env(seed), seed=seed, **dqn_kwargs(recipe.model_kwargs)), teacher_recipe.n_timesteps


def dqn_kwargs(model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """A student's constructor arguments without DistilledDQN's own (teacher, alpha, offline phase...): plain DQN's."""
    own = set(inspect.signature(DistilledDQN).parameters) - set(inspect.signature(DQN).parameters)
    return {key: value for key, value in model_kwargs.items() if key not in own}


def mean_return(model: Any, env_id: str, n_episodes: int, seed: int) -> tuple[float, float]:
    """Mean and std of deterministic episode returns on an env seeded with ``seed``."""
    return return_stats(model, make_vec_env(env_id, n_envs=1, seed=seed), n_episodes)


def return_stats(model: Any, env: VecEnv, n_episodes: int) -> tuple[float, float]:
    """Mean and std of deterministic episode returns on ``env`` (an agent with SB3's ``predict``)."""
    returns, _ = evaluate_policy(model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True)
    return float(np.mean(returns)), float(np.std(returns))


def reference_returns(env_id: str, n_episodes: int, seed: int, teacher_path: Any = None) -> dict[str, Any]:
    """The teacher's (None: the env's entry's) and a random policy's mean returns, and the teacher's size."""
    teacher_path = make_recipe(env_id).teacher if teacher_path is None else teacher_path
    teacher = DQN.load(teacher_path, device="cpu")
    teacher_mean, teacher_std = mean_return(teacher, env_id, n_episodes, seed)
    random_mean = random_policy_return(make_vec_env(env_id, n_envs=1, seed=seed), n_episodes, seed)
    return {
        "teacher_return": teacher_mean,
        "teacher_std": teacher_std,
        "random_return": random_mean,
        "teacher_parameters": count_parameters(teacher.q_net),
        "teacher_path": str(teacher_path),
    }


# Bootstrap resamples of every rliable confidence interval
BOOTSTRAP_REPS = 2_000


@contextmanager
def numpy_global_seed(seed: int) -> Iterator[None]:
    """
    NumPy's global generator seeded with ``seed`` inside the block, and put back as it was after it.

    rliable's stratified bootstraps draw their resampling indices from the global generator (``np.random.choice``),
    whatever ``random_state`` they are given: without this, a confidence interval depends on what drew from it before
    (e.g. the other arms aggregated in the same run).
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm_ci(scores: np.ndarray, reps: int = BOOTSTRAP_REPS) -> tuple[float, float, float]:
    """
    rliable's IQM of the scores with its 95% stratified bootstrap confidence interval, the same for the same scores.

    :param scores: One per run (1-D), or ``(runs, tasks)``: the bootstrap resamples runs within each task
    :param reps: Bootstrap resamples
    :return: (IQM, CI low, CI high)
    """
    from rliable import library as rly
    from rliable import metrics

    matrix = scores.reshape(-1, 1) if scores.ndim == 1 else scores
    with numpy_global_seed(0), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # rliable passes random_state on to arch, which renames it
        point, interval = rly.get_interval_estimates(
            {"arm": matrix},
            lambda runs: np.array([metrics.aggregate_iqm(runs)]),
            reps=reps,
            random_state=np.random.RandomState(0),
        )
    return float(point["arm"][0]), float(interval["arm"][0, 0]), float(interval["arm"][1, 0])


def bar_chart(categories: list[str], series: dict[str, list[float]], ylabel: str, path: Path, log_scale: bool = False) -> None:
    """Grouped bars: one group per category, one bar per series."""
    figure = Figure(figsize=(max(5.0, 2.2 * len(categories)), 4))
    axis = figure.subplots()
    width = 0.8 / len(series)
    for index, (label, values) in enumerate(series.items()):
        axis.bar(np.arange(len(categories)) + (index - (len(series) - 1) / 2) * width, values, width, label=label)
    axis.set_xticks(np.arange(len(categories)), categories, fontsize=8)
    axis.set_ylabel(ylabel)
    if log_scale:
        axis.set_yscale("log")
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def machine_description() -> str:
    """What the figures were measured on."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{'GPU ' + th.cuda.get_device_name() if th.cuda.is_available() else 'no GPU'}, "
        f"Python {platform.python_version()}, torch {th.__version__}, {platform.system()}"
    )


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file_handler:
        writer = csv.DictWriter(file_handler, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def base_parser(description: str, default_output: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="Tiny budgets: seconds, to check the script works")
    parser.add_argument("--output-dir", default=default_output, help="Where the CSV, PNG and JSON go (default: %(default)s)")
    return parser


def command_line() -> str:
    return "python " + " ".join(sys.argv)
