"""Measure and show what distillation gave: parameter counts, returns, learning curves."""

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.type_aliases import GymEnv


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


def evaluate_agent(name: str, model: BaseAlgorithm, network: th.nn.Module, env: GymEnv, n_episodes: int) -> AgentResult:
    """
    Mean and std of the undiscounted return of deterministic episodes.

    :param name: Label in the comparison
    :param model: The agent
    :param network: Its acting network, for the parameter count
    :param env: Evaluation env (seeded by the caller)
    :param n_episodes: Number of episodes
    """
    episode_returns, _ = evaluate_policy(
        model, env, n_eval_episodes=n_episodes, deterministic=True, return_episode_rewards=True
    )
    mean_return, std_return = np.mean(episode_returns), np.std(episode_returns)
    return AgentResult(
        name=name,
        parameters=count_parameters(network),
        mean_return=float(mean_return),
        std_return=float(std_return),
        n_episodes=n_episodes,
        env_steps=int(model.num_timesteps),
    )


def comparison_table(teacher: AgentResult, student: AgentResult) -> str:
    """
    The side-by-side comparison printed after a distillation run.

    :param teacher: The teacher's measurements
    :param student: The student's measurements
    """
    header = f"{'':<10}{'parameters':>12}{'mean return':>14}{'std':>9}{'episodes':>10}{'env steps':>12}"
    rows = [
        f"{result.name:<10}{result.parameters:>12,}{result.mean_return:>14.1f}{result.std_return:>9.1f}"
        f"{result.n_episodes:>10}{result.env_steps:>12,}"
        for result in (teacher, student)
    ]
    parameter_ratio = student.parameters / teacher.parameters
    return_ratio = student.mean_return / teacher.mean_return if teacher.mean_return != 0 else float("nan")
    rows.append(f"{'ratio':<10}{parameter_ratio:>12.2%}{return_ratio:>14.1%}")
    return "\n".join([header, *rows])


def comparison_dict(teacher: AgentResult, student: AgentResult) -> dict:
    """The comparison as JSON-ready data."""
    return {
        "teacher": asdict(teacher),
        "student": asdict(student),
        "parameter_ratio": student.parameters / teacher.parameters,
        "return_ratio": student.mean_return / teacher.mean_return if teacher.mean_return != 0 else None,
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluations = np.load(evaluations_file)
    timesteps, returns = evaluations["timesteps"], evaluations["results"]
    mean, std = returns.mean(axis=1), returns.std(axis=1)
    figure, axes = plt.subplots(figsize=(6, 4))
    axes.plot(timesteps, mean, marker="o", label="student")
    axes.fill_between(timesteps, mean - std, mean + std, alpha=0.25)
    axes.axhline(teacher_return, color="black", linestyle="--", label="teacher")
    axes.set_xlabel("environment steps")
    axes.set_ylabel(f"mean return ({returns.shape[1]} episodes)")
    axes.set_title(title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(output_file, dpi=100)
    plt.close(figure)
    return Path(output_file)
