"""
The one Optuna search space for distillation: alpha and temperature.

Used by the RL Zoo's ``-optimize`` (registered as ``HYPERPARAMS_SAMPLER["distilled_dqn"]``) and by the scripts
in ``tuning/``. It samples only the distillation weights: the student's architecture and its other DQN
hyperparameters stay as the config gives them (the Zoo's DQN sampler would replace ``net_arch``).
"""

from typing import Any

import optuna

# alpha weighs the distillation term: uniform over the whole range
ALPHA_RANGE = (0.0, 1.0)
# Rusu et al. (2016) used T = 0.01, QDagger T = 0.1, Hinton et al. T > 1: log-uniform and wide
TEMPERATURE_RANGE = (0.01, 10.0)


def search_space() -> dict[str, optuna.distributions.FloatDistribution]:
    """The distributions :func:`sample_distilled_dqn_params` samples from, by parameter name."""
    return {
        "alpha": optuna.distributions.FloatDistribution(*ALPHA_RANGE),
        "temperature": optuna.distributions.FloatDistribution(*TEMPERATURE_RANGE, log=True),
    }


def sample_distilled_dqn_params(
    trial: optuna.Trial,
    n_actions: int | None = None,
    n_envs: int | None = None,
    additional_args: dict | None = None,
) -> dict[str, Any]:
    """
    Sampler for DistilledDQN's distillation hyperparameters (the Zoo's sampler signature).

    :param trial: The Optuna trial
    :param n_actions: Unused (part of the Zoo's sampler signature)
    :param n_envs: Unused (part of the Zoo's sampler signature)
    :param additional_args: Unused (part of the Zoo's sampler signature)
    :return: ``{"alpha": ..., "temperature": ...}``, ready for DistilledDQN's constructor
    """
    return {
        name: trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)
        for name, distribution in search_space().items()
    }


def convert_distilled_dqn_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn a trial's stored params back into constructor arguments (the Zoo's ``--trial-id``).

    :param sampled_params: ``trial.params``
    :return: The constructor arguments (alpha and temperature are stored as they are used)
    """
    return {name: sampled_params[name] for name in search_space()}
