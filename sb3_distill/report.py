"""Measure and show what distillation gave: parameter counts, returns, learning curves."""

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv


def count_parameters(module: th.nn.Module) -> int:
    """
    Number of parameters of a network.

    :param module: The network (for a DQN, its ``q_net``: the part used for acting)
    """
    return sum(parameter.numel() for parameter in module.parameters())


@dataclass
class AgentResult:
    """What one agent is measured by in a comparison."""

    name: str
    parameters: int
    mean_return: float
    std_return: float
    n_episodes: int
    env_steps: int


def evaluate_agent(name: str, model: Any, network: th.nn.Module | int, env: GymEnv, n_episodes: int) -> AgentResult:
    """
    Mean and std of the undiscounted return of deterministic episodes.

    :param name: Label in the comparison
    :param model: The agent: an SB3 model, or anything with SB3's ``predict`` and a ``num_timesteps``
    :param network: Its acting network, for the parameter count (or the count itself)
    :param env: Evaluation env (seeded by the caller)
    :param n_episodes: Number of episodes
    """
    episode_returns, _ = evaluate_policy(
        model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True
    )
    mean_return, std_return = np.mean(episode_returns), np.std(episode_returns)
    return AgentResult(
        name=name,
        parameters=network if isinstance(network, int) else count_parameters(network),
        mean_return=float(mean_return),
        std_return=float(std_return),
        n_episodes=n_episodes,
        env_steps=int(model.num_timesteps),
    )


class GreedyAgent:
    """
    Acts greedily on a map from a batch of observations to per-action values (a teacher's Q-values or action logits),
    with SB3's ``predict`` signature, so that ``evaluate_policy`` evaluates a teacher without its SB3 model.

    :param values: Observations (tensors on ``device``, as the replay buffer gives them) -> ``(batch, n_actions)``
    :param device: Where the observations go
    :param num_timesteps: The agent's training steps, for the comparison
    """

    def __init__(self, values: Callable[[Any], th.Tensor], device: th.device | str, num_timesteps: int = 0):
        self.values = values
        self.device = th.device(device)
        self.num_timesteps = num_timesteps

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True) -> tuple:
        with th.no_grad():
            actions = self.values(obs_as_tensor(observation, self.device)).argmax(dim=1)
        return actions.cpu().numpy(), state


class TeacherAgent:
    """
    Acts as a teacher does when evaluated deterministically, with SB3's ``predict`` signature: greedy on its per-action
    values (discrete teachers), or its mean action (continuous teachers, ``Teacher.scaled_mean_actions`` mapped from
    [-1, 1] to the env's bounds as SB3's ``unscale_action`` does). Its SB3 model is never needed.

    :param teacher: A prepared ``sb3_distill.Teacher``
    :param device: Where the observations go
    :param num_timesteps: The teacher's training steps, for the comparison
    """

    def __init__(self, teacher: Any, device: th.device | str, num_timesteps: int = 0):
        self.teacher = teacher
        self.device = th.device(device)
        self.num_timesteps = num_timesteps
        self._greedy = None if teacher.is_continuous else GreedyAgent(teacher.q_values, device, num_timesteps)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True) -> tuple:
        if self._greedy is not None:
            return self._greedy.predict(observation, state, episode_start, deterministic)
        with th.no_grad():
            scaled = self.teacher.scaled_mean_actions(obs_as_tensor(observation, self.device)).cpu().numpy()
        low, high = self.teacher.action_space.low, self.teacher.action_space.high
        return low + 0.5 * (scaled + 1.0) * (high - low), state


class RandomAgent:
    """
    Uniformly random actions: the zero of the normalized score.

    :param action_space: The env's action space
    :param seed: Seed of the action space's sampler
    """

    def __init__(self, action_space: spaces.Space, seed: int = 0):
        self.action_space = action_space
        self.action_space.seed(seed)

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False) -> tuple:
        n_envs = len(next(iter(observation.values()))) if isinstance(observation, dict) else len(observation)
        return np.array([self.action_space.sample() for _ in range(n_envs)]), state


def random_policy_return(env: VecEnv, n_episodes: int, seed: int = 0) -> float:
    """
    Mean return of uniformly random actions.

    :param env: Evaluation env (seeded by the caller)
    :param n_episodes: Number of episodes
    :param seed: Seed of the random actions
    """
    returns, _ = evaluate_policy(
        RandomAgent(env.action_space, seed), env, n_eval_episodes=n_episodes, return_episode_rewards=True
    )
    return float(np.mean(returns))


def normalized_score(mean_return: float, teacher_return: float, random_return: float) -> float:
    """
    A return on the scale where a random policy scores 0 and the teacher 1: meaningful for negative returns too.

    :param mean_return: The return to score
    :param teacher_return: The teacher's return
    :param random_return: A random policy's return
    """
    if teacher_return == random_return:
        return float("nan")
    return (mean_return - random_return) / (teacher_return - random_return)


def format_score(score: float) -> str:
    """A normalized score as a percentage, or ``n/a`` where it is undefined (a teacher no better than random)."""
    return "n/a" if math.isnan(score) else f"{score:.1%}"


def comparison_table(teacher: AgentResult, student: AgentResult, random_return: float, teacher_transitions: int = 0) -> str:
    """
    The side-by-side comparison printed after a distillation run.

    :param teacher: The teacher's measurements
    :param student: The student's measurements
    :param random_return: A random policy's mean return on the same evaluation, over as many episodes as the teacher
    :param teacher_transitions: Transitions the teacher acted in the student's offline phase (shown apart from the
        student's own env steps when there were any)
    """
    header = f"{'':<16}{'parameters':>12}{'mean return':>14}{'std':>9}{'episodes':>10}{'env steps':>12}"
    rows = [
        f"{result.name:<16}{result.parameters:>12,}{result.mean_return:>14.1f}{result.std_return:>9.1f}"
        f"{result.n_episodes:>10}{result.env_steps:>12,}"
        for result in (teacher, student)
    ]
    rows.append(f"{'random policy':<16}{'':>12}{random_return:>14.1f}{'':>9}{teacher.n_episodes:>10}")
    score = normalized_score(student.mean_return, teacher.mean_return, random_return)
    rows.append(f"{'student/teacher':<16}{student.parameters / teacher.parameters:>12.2%}{format_score(score):>14}")
    footnote = "(return as a share of the teacher's: random policy = 0%, teacher = 100%; n/a: teacher no better than random)"
    if teacher_transitions:
        footnote += (
            f"\n(offline phase: {teacher_transitions:,} transitions acted by the teacher, not counted in the student's "
            "env steps)"
        )
    return "\n".join([header, *rows, footnote])


def comparison_dict(teacher: AgentResult, student: AgentResult, random_return: float) -> dict:
    """The comparison as JSON-ready data."""
    return {
        "teacher": asdict(teacher),
        "student": asdict(student),
        "random_return": random_return,
        "parameter_ratio": student.parameters / teacher.parameters,
        "normalized_score": normalized_score(student.mean_return, teacher.mean_return, random_return),
    }


def plot_learning_curve(
    evaluations_file: str | os.PathLike,
    teacher_return: float,
    output_file: str | os.PathLike,
    title: str,
) -> Path:
    """
    Plot the student's evaluation returns against environment steps, with the teacher's return as a line.

    :param evaluations_file: ``evaluations.npz`` written by SB3's ``EvalCallback``
    :param teacher_return: The teacher's mean return
    :param output_file: The PNG to write
    :param title: Plot title
    :return: The PNG's path
    """
    # A Figure of its own, not pyplot: draws without touching the caller's backend or pyplot's open figures
    from matplotlib.figure import Figure

    evaluations = np.load(evaluations_file)
    timesteps, returns = evaluations["timesteps"], evaluations["results"]
    mean, std = returns.mean(axis=1), returns.std(axis=1)
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    axes.plot(timesteps, mean, marker="o", label="student")
    axes.fill_between(timesteps, mean - std, mean + std, alpha=0.25)
    axes.axhline(teacher_return, color="black", linestyle="--", label="teacher")
    axes.set_xlabel("environment steps")
    axes.set_ylabel(f"mean return ({returns.shape[1]} episodes)")
    axes.set_title(title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(output_file, dpi=100)
    return Path(output_file)
