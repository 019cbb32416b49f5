"""
The one Optuna search space for distillation: alpha and temperature, and for size searches the student's architecture.

Used by the RL Zoo's ``-optimize`` (registered as ``HYPERPARAMS_SAMPLER["distilled_dqn"]``) and by the scripts
in ``tuning/``. The Zoo's sampler samples only the distillation weights: the student's architecture and its other DQN
hyperparameters stay as the config gives them (the Zoo's DQN sampler would replace ``net_arch``). Multi-objective
studies (``sb3-distill tune --objectives score params``) add the architecture, :func:`architecture_search_space`.

A student whose entry has ``alpha: performance`` (QDagger's performance-based weight) keeps it: its studies sample
``alpha_0``, the weight while the student scores 0, in place of alpha. rl_zoo3 calls a sampler without the
hyperparameters, so the objective records the entry's kind of alpha on the trial first (:func:`record_alpha_kind`).
"""

from collections.abc import Callable
from typing import Any

import optuna

from sb3_distill.common.alpha import PERFORMANCE, is_performance_alpha

# alpha weighs the distillation term: uniform over the whole range
ALPHA_RANGE = (0.0, 1.0)
# alpha_0, the performance-based weight while the student scores 0, is a weight of the same range
ALPHA_0_RANGE = ALPHA_RANGE
# Rusu et al. (2016) used T = 0.01, QDagger T = 0.1, Hinton et al. T > 1: log-uniform and wide
TEMPERATURE_RANGE = (0.01, 10.0)
# The student's hidden layers in a size search: 1 to 3 of them, each as wide as one of a log-spaced set
DEPTH_RANGE = (1, 3)
LAYER_WIDTHS = (4, 8, 16, 32, 64, 128, 256)
# The trial user attribute that says whether the student's entry has alpha "performance" (the sampler reads it)
PERFORMANCE_ALPHA_ATTR = "performance_alpha"
# The students whose terms have no temperature (SAC's Gaussian KL, TD3's action MSE): their studies sample alpha alone
WITHOUT_TEMPERATURE = ("distilled_sac", "distilled_td3")


def has_temperature(algo: str) -> bool:
    """
    Whether the distillation term of the student ``algo`` (a Zoo name) has a temperature, which its studies search.

    :param algo: The student's Zoo name, e.g. ``distilled_dqn``
    """
    return algo not in WITHOUT_TEMPERATURE


def search_space(
    performance_alpha: bool = False, temperature: bool = True
) -> dict[str, optuna.distributions.FloatDistribution]:
    """
    The distributions :func:`sample_distilled_dqn_params` samples from, by parameter name.

    :param performance_alpha: The student's alpha is ``"performance"``: sample its ``alpha_0`` rather than alpha
    :param temperature: Whether the term has a temperature (the categorical ones); the Gaussian KL and the action MSE
        of SAC and TD3 students have none
    """
    weight = (
        {"alpha_0": optuna.distributions.FloatDistribution(*ALPHA_0_RANGE)}
        if performance_alpha
        else {"alpha": optuna.distributions.FloatDistribution(*ALPHA_RANGE)}
    )
    if not temperature:
        return weight
    return {**weight, "temperature": optuna.distributions.FloatDistribution(*TEMPERATURE_RANGE, log=True)}


def check_not_searched(hyperparams: dict[str, Any] | None, performance_alpha: bool, temperature: bool = True) -> None:
    """
    Fail if ``-params`` fixes a hyperparameter the study searches (it would be silently replaced by the sampled one).

    :param hyperparams: The ``-params`` values
    :param performance_alpha: The student's alpha is ``"performance"`` (the study searches alpha_0)
    :param temperature: Whether the study searches a temperature (:func:`has_temperature`)
    """
    space = search_space(performance_alpha, temperature)
    searched = sorted(set(hyperparams or {}) & set(space))
    if not searched:
        return
    hint = (
        " (the student's alpha is 'performance')"
        if performance_alpha
        else " (for QDagger's performance-based weight pass -params alpha:\"'performance'\": the study samples alpha_0)"
    )
    raise ValueError(
        f"Hyperparameters {searched} are what the study searches ({', '.join(space)}): leave them out of -params{hint}"
    )


def record_alpha_kind(trial: optuna.Trial, alpha: Any) -> None:
    """
    Record on the trial whether the student's entry has alpha ``"performance"``, for the sampler to sample alpha_0.

    :param trial: The trial, before it samples
    :param alpha: The entry's alpha
    """
    trial.set_user_attr(PERFORMANCE_ALPHA_ATTR, is_performance_alpha(alpha))


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


def size_search_space(
    performance_alpha: bool = False, temperature: bool = True
) -> dict[str, optuna.distributions.BaseDistribution]:
    """
    The distributions of a size search (multi-objective study): alpha (or alpha_0), temperature and the architecture.

    :param performance_alpha: The student's alpha is ``"performance"``: sample its ``alpha_0`` rather than alpha
    :param temperature: Whether the term has a temperature (:func:`has_temperature`)
    """
    return {**search_space(performance_alpha, temperature), **architecture_search_space()}


def trial_net_arch(params: dict[str, Any]) -> list[int]:
    """
    The hidden layers a size-search trial's params stand for.

    :param params: ``trial.params`` (or the sampled values) with ``n_layers`` and ``width_<i>``
    """
    return [int(params[f"width_{index}"]) for index in range(int(params["n_layers"]))]


def sample_size_search_params(trial: optuna.Trial, temperature: bool = True) -> dict[str, Any]:
    """
    Sampler of a size search: alpha (or alpha_0) and temperature as :func:`sample_distilled_dqn_params`, and the
    student's hidden layers (``net_arch``: for actor-critic students, SB3 gives the actor and the critic these layers).

    :param trial: The Optuna trial
    :param temperature: Whether the term has a temperature (:func:`has_temperature`)
    :return: ``{"alpha": ..., "temperature": ..., "net_arch": [...]}`` (with ``"alpha_0"`` too for a performance alpha)
    """
    sampled = _sample_weights(trial, temperature)
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
    Sampler for DistilledDQN's distillation hyperparameters (the Zoo's sampler signature): alpha and temperature, or
    alpha_0 and temperature where :func:`record_alpha_kind` recorded a performance-based alpha on the trial.

    :param trial: The Optuna trial
    :param n_actions: Unused (part of the Zoo's sampler signature)
    :param n_envs: Unused (part of the Zoo's sampler signature)
    :param additional_args: Unused (part of the Zoo's sampler signature)
    :return: ``{"alpha": ..., "temperature": ...}`` or ``{"alpha": "performance", "alpha_0": ..., "temperature": ...}``,
        ready for DistilledDQN's constructor
    """
    return _sample_weights(trial, temperature=True)


def sample_distilled_alpha_params(
    trial: optuna.Trial,
    n_actions: int | None = None,
    n_envs: int | None = None,
    additional_args: dict | None = None,
) -> dict[str, Any]:
    """
    Sampler for the students whose terms have no temperature (SAC, TD3: Gaussian KL, action MSE): alpha, or alpha_0
    for a performance-based alpha; the Zoo's sampler signature.

    :param trial: The Optuna trial
    :param n_actions: Unused (part of the Zoo's sampler signature)
    :param n_envs: Unused (part of the Zoo's sampler signature)
    :param additional_args: Unused (part of the Zoo's sampler signature)
    :return: ``{"alpha": ...}`` or ``{"alpha": "performance", "alpha_0": ...}``
    """
    return _sample_weights(trial, temperature=False)


def distillation_sampler(algo: str) -> Callable[..., dict[str, Any]]:
    """
    The sampler of the student ``algo`` (the Zoo's sampler signature): :func:`sample_distilled_dqn_params`, or
    :func:`sample_distilled_alpha_params` for a student whose term has no temperature.

    :param algo: The student's Zoo name
    """
    return sample_distilled_dqn_params if has_temperature(algo) else sample_distilled_alpha_params


def _sample_weights(trial: optuna.Trial, temperature: bool) -> dict[str, Any]:
    performance_alpha = bool(trial.user_attrs.get(PERFORMANCE_ALPHA_ATTR, False))
    sampled = {
        name: trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)
        for name, distribution in search_space(performance_alpha, temperature).items()
    }
    return {"alpha": PERFORMANCE, **sampled} if performance_alpha else sampled


def convert_distilled_dqn_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn a trial's stored params back into constructor arguments (the Zoo's ``--trial-id``).

    :param sampled_params: ``trial.params``
    :return: The constructor arguments (alpha or alpha_0, and temperature, are stored as they are used); a trial that
        sampled alpha_0 gives ``alpha="performance"`` with it
    """
    performance_alpha = "alpha_0" in sampled_params
    space = search_space(performance_alpha, temperature="temperature" in sampled_params)
    params = {name: sampled_params[name] for name in space}
    return {"alpha": PERFORMANCE, **params} if performance_alpha else params
