"""
The one Optuna search space for distillation: alpha and temperature, and for size searches the student's architecture.

Used by the RL Zoo's ``-optimize`` (registered as ``HYPERPARAMS_SAMPLER["distilled_dqn"]``) and by the scripts
in ``tuning/``. The Zoo's sampler samples only the distillation weights: the student's architecture and its other DQN
hyperparameters stay as the config gives them (the Zoo's DQN sampler would replace ``net_arch``). Multi-objective
studies (``sb3-distill tune --objectives score params``) add the architecture, :func:`architecture_search_space`.
"""

from typing import Any

import optuna

# alpha weighs the distillation term: uniform over the whole range
ALPHA_RANGE = (0.0, 1.0)
# Rusu et al. (2016) used T = 0.01, QDagger T = 0.1, Hinton et al. T > 1: log-uniform and wide
TEMPERATURE_RANGE = (0.01, 10.0)
# The student's hidden layers in a size search: 1 to 3 of them, each as wide as one of a log-spaced set
DEPTH_RANGE = (1, 3)
LAYER_WIDTHS = (4, 8, 16, 32, 64, 128, 256)


def search_space() -> dict[str, optuna.distributions.FloatDistribution]:
    """The distributions :func:`sample_distilled_dqn_params` samples from, by parameter name."""
    return {
        "alpha": optuna.distributions.FloatDistribution(*ALPHA_RANGE),
        "temperature": optuna.distributions.FloatDistribution(*TEMPERATURE_RANGE, log=True),
    }


def architecture_search_space() -> dict[str, optuna.distributions.BaseDistribution]:
    """
    The student's architecture in a size search: ``n_layers`` hidden layers, layer ``i`` ``width_<i>`` wide. Every
    trial samples all ``width_<i>`` (those past ``n_layers`` are unused), so that the space is the same for every
    trial: NSGA-II's crossover and the check of a resumed study need that.
    """
    space: dict[str, optuna.distributions.BaseDistribution] = {"n_layers": optuna.distributions.IntDistribution(*DEPTH_RANGE)}
    for index in range(DEPTH_RANGE[1]):
        space[f"width_{index}"] = optuna.distributions.CategoricalDistribution(LAYER_WIDTHS)
    return space


def size_search_space() -> dict[str, optuna.distributions.BaseDistribution]:
    """The distributions of a size search (multi-objective study): alpha, temperature and the architecture."""
    return {**search_space(), **architecture_search_space()}


def trial_net_arch(params: dict[str, Any]) -> list[int]:
    """
    The hidden layers a size-search trial's params stand for.

    :param params: ``trial.params`` (or the sampled values) with ``n_layers`` and ``width_<i>``
    """
    return [int(params[f"width_{index}"]) for index in range(int(params["n_layers"]))]


def sample_size_search_params(trial: optuna.Trial) -> dict[str, Any]:
    """
    Sampler of a size search: alpha and temperature as :func:`sample_distilled_dqn_params`, and the student's hidden
    layers.

    :param trial: The Optuna trial
    :return: ``{"alpha": ..., "temperature": ..., "net_arch": [...]}``
    """
    sampled = sample_distilled_dqn_params(trial)
    architecture: dict[str, Any] = {}
    for name, distribution in architecture_search_space().items():
        if isinstance(distribution, optuna.distributions.IntDistribution):
            architecture[name] = trial.suggest_int(name, distribution.low, distribution.high)
        else:
            architecture[name] = trial.suggest_categorical(name, distribution.choices)  # type: ignore[attr-defined]
    return {**sampled, "net_arch": trial_net_arch(architecture)}


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
