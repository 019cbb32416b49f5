"""
The objective of a study: train a student (of any family: ``distilled_dqn``, ``distilled_ppo``, ``distilled_sac``, ...)
with a trial's alpha (or, for a performance-based alpha, alpha_0) and temperature (for the students whose term has one),
report to the pruner, score it; in a size search, with a sampled architecture too, scored by its normalized score and
the size of its acting network.
"""

import os
from dataclasses import asdict, dataclass
from typing import Any

import optuna
import torch as th
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from sb3_distill.algorithms import acting_network, check_algo
from sb3_distill.interrupts import StopOnRequest, StopRequest
from sb3_distill.common.alpha import is_performance_alpha
from sb3_distill.common.teacher import Teacher, load_teacher
from sb3_distill.export_latency import median_latency
from sb3_distill.hyperparams_opt import (
    check_not_searched,
    distillation_sampler,
    has_temperature,
    record_alpha_kind,
    sample_size_search_params,
    search_space,
)
from sb3_distill.recipe import ALGO_NAME, Recipe, make_recipe
from sb3_distill.report import TeacherAgent, evaluate_agent, normalized_score, random_policy_return


def interrupted_trial(trial: optuna.Trial) -> float:
    """
    A trial that Ctrl-C or SIGTERM stopped: the study stops after it, and its NaN value makes Optuna record it FAIL (to
    be run again by the same command) with one warning line, not a traceback.
    """
    trial.set_user_attr("interrupted", True)
    trial.study.stop()
    return float("nan")


# The final evaluation of trial n runs on an env seeded with seed + n + FINAL_EVAL_SEED_OFFSET
FINAL_EVAL_SEED_OFFSET = 10_000
# Timed batch-1 calls of a student's policy in a latency objective
LATENCY_REPEATS = 200


def make_study_recipe(
    env_id: str,
    algo: str = ALGO_NAME,
    *,
    teacher: str | os.PathLike | None = None,
    conf_file: str | os.PathLike | None = None,
    hyperparams: dict[str, Any] | None = None,
    n_timesteps: int | None = None,
) -> Recipe:
    """
    The student of every trial, but for what the trials sample (:func:`weight_search_space`): the env's entry of
    ``zoo_configs/<algo>.yml`` (or ``conf_file``) with ``hyperparams`` in place of its values, read by
    :func:`sb3_distill.recipe.make_recipe`. An entry with ``alpha: performance`` keeps it, and the trials sample its
    ``alpha_0``.

    :param env_id: The env
    :param algo: The student's Zoo name (``distilled_dqn``, ``distilled_qrdqn``, ``distilled_ppo``, ``distilled_sac``,
        ``distilled_td3``)
    :param teacher: The teacher (None: the entry's, relative to the config file's folder)
    :param conf_file: Zoo-format config (None: ``zoo_configs/<algo>.yml``)
    :param hyperparams: Values that replace the entry's, as the Zoo's ``-params`` gives them
    :param n_timesteps: Environment steps per trial (None: the entry's)
    """
    check_algo(algo, "student")
    recipe = make_recipe(env_id, algo, conf_file=conf_file, hyperparams=hyperparams, teacher=teacher, n_timesteps=n_timesteps)
    alpha = recipe.model_kwargs.get("alpha")
    if isinstance(alpha, str) and not is_performance_alpha(alpha):
        searched = ", ".join(weight_search_space(recipe))
        raise ValueError(
            f"The student's entry has alpha={alpha!r}: expected a number (the study samples {searched}) or "
            "'performance' (the study samples alpha_0 in place of alpha)"
        )
    check_not_searched(hyperparams, searches_alpha_0(recipe), has_temperature(algo))
    for name in weight_search_space(recipe):
        recipe.model_kwargs.pop(name, None)  # sampled by every trial
    return recipe


def searches_alpha_0(recipe: Recipe) -> bool:
    """Whether the studies of ``recipe`` sample ``alpha_0`` (its alpha is ``"performance"``) rather than alpha."""
    return is_performance_alpha(recipe.model_kwargs.get("alpha"))


def weight_search_space(recipe: Recipe) -> dict[str, optuna.distributions.FloatDistribution]:
    """
    What the trials of a study of ``recipe`` sample for its term: alpha (or alpha_0 for a performance-based alpha), and
    the temperature where the student's term has one (:func:`sb3_distill.hyperparams_opt.has_temperature`).

    :param recipe: The student
    """
    return search_space(searches_alpha_0(recipe), has_temperature(recipe.algo))


def prepare_teacher(recipe: Recipe, device: str) -> Teacher:
    """
    Load the teacher once for all trials, and build one student, so that a teacher that does not fit the env or a
    hyperparameter the student refuses fails now rather than in every trial.

    :param recipe: The student
    :param device: The students' device
    """
    env = recipe.make_env(seed=0)
    try:
        trust = bool(recipe.model_kwargs.get("trust_teacher", False))
        teacher = load_teacher(recipe.model_kwargs["teacher"], env.observation_space, env.action_space, device, trust=trust)
        recipe.make_model(env, teacher=teacher, device=device)
    finally:
        env.close()
    return teacher


class TrialEvalCallback(EvalCallback):
    """
    SB3's ``EvalCallback`` that reports each evaluation to an Optuna trial and stops training when the pruner says so,
    as rl_zoo3's, but with the step counted in environment steps (comparable across workers with other ``eval_freq``).

    :param eval_env: The evaluation env
    :param trial: The trial to report to
    :param n_eval_episodes: Deterministic episodes per evaluation
    :param eval_freq: Evaluate every this many calls (environment steps divided by the number of training envs)
    """

    def __init__(self, eval_env: VecEnv, trial: optuna.Trial, n_eval_episodes: int, eval_freq: int):
        super().__init__(eval_env, n_eval_episodes=n_eval_episodes, eval_freq=eval_freq, deterministic=True, verbose=0)
        self.trial = trial
        self.is_pruned = False

    def _on_step(self) -> bool:
        continue_training = super()._on_step()
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0:
            self.trial.report(self.last_mean_reward, self.num_timesteps)
            if self.trial.should_prune():
                self.is_pruned = True
                return False
        return continue_training


class DistillationObjective:
    """
    The objective of a study: train a student with the trial's alpha (or alpha_0) and, where its term has one,
    temperature, report its intermediate evaluations to the pruner, and return its mean return over ``eval_episodes``
    deterministic episodes at the end of the budget. Trial ``n``'s student is seeded with ``seed + n``.

    :param recipe: The student
    :param teacher: The prepared teacher, shared by the trials (frozen, read only)
    :param eval_freq: Environment steps between intermediate evaluations
    :param eval_episodes: Deterministic episodes per evaluation
    :param seed: Seed of trial 0's student
    :param device: The students' device
    """

    def __init__(self, recipe: Recipe, teacher: Teacher, eval_freq: int, eval_episodes: int, seed: int, device: str):
        # Set by the study when Ctrl-C or SIGTERM asks it to stop: the running trials end at their next step
        self.stop = StopRequest()
        self.recipe = recipe
        self.teacher = teacher
        self.eval_freq = eval_freq
        self.eval_episodes = eval_episodes
        self.seed = seed
        self.device = device

    def __call__(self, trial: optuna.Trial) -> float:
        recipe = self.recipe
        record_alpha_kind(trial, recipe.model_kwargs.get("alpha"))
        sampled = distillation_sampler(recipe.algo)(trial)
        trial_seed = self.seed + trial.number
        trial.set_user_attr("seed", trial_seed)
        env = recipe.make_env(seed=trial_seed)
        eval_env = recipe.make_env(seed=trial_seed + 1_000, n_envs=1, eval_env=True)
        final_env = recipe.make_env(seed=trial_seed + FINAL_EVAL_SEED_OFFSET, n_envs=1, eval_env=True)
        try:
            student = recipe.make_model(env, seed=trial_seed, teacher=self.teacher, device=self.device, **sampled)
            callback = TrialEvalCallback(eval_env, trial, self.eval_episodes, max(self.eval_freq // recipe.n_envs, 1))
            student.learn(recipe.n_timesteps, callback=[*recipe.callbacks, callback, StopOnRequest(self.stop)])
            if self.stop.signal is not None:
                return interrupted_trial(trial)
            if callback.is_pruned:
                raise optuna.TrialPruned(f"mean return {callback.last_mean_reward:.1f} at {student.num_timesteps} steps")
            sync_envs_normalization(env, final_env)
            result = evaluate_agent("student", student, acting_network(student), final_env, self.eval_episodes)
        finally:
            for vec_env in (env, eval_env, final_env):
                vec_env.close()
        trial.set_user_attr("std_return", result.std_return)
        trial.set_user_attr("env_steps", result.env_steps)
        return result.mean_return


@dataclass
class ReferenceReturns:
    """
    The zero and the one of a size search's normalized score, measured once before the study on the final evaluation's
    env (seeded with the study's seed + ``FINAL_EVAL_SEED_OFFSET``).

    :param teacher_return: The teacher's mean return, acting greedily on its values or with its mean action
    :param random_return: A uniformly random policy's mean return
    :param teacher_parameters: The teacher's parameter count (its acting network's)
    :param n_episodes: Episodes of each mean
    """

    teacher_return: float
    random_return: float
    teacher_parameters: int
    n_episodes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return asdict(self)


def measure_references(recipe: Recipe, teacher: Teacher, n_episodes: int, seed: int, device: str) -> ReferenceReturns:
    """
    The teacher's and a random policy's mean returns on the final evaluation's env, the scale of the normalized score.

    :param recipe: The student
    :param teacher: The prepared teacher
    :param n_episodes: Deterministic episodes of each mean
    :param seed: The study's seed
    :param device: The teacher's device
    """
    env = recipe.make_env(seed=seed + FINAL_EVAL_SEED_OFFSET, n_envs=1, eval_env=True)
    try:
        teacher_result = evaluate_agent("teacher", TeacherAgent(teacher, device), teacher.num_parameters(), env, n_episodes)
    finally:
        env.close()
    env = recipe.make_env(seed=seed + FINAL_EVAL_SEED_OFFSET, n_envs=1, eval_env=True)
    try:
        random_return = random_policy_return(env, n_episodes, seed)
    finally:
        env.close()
    if teacher_result.mean_return == random_return:
        raise ValueError(
            f"The teacher {recipe.teacher!r} scores {random_return:g} on {recipe.env_id}, as a random policy does: a "
            "normalized score (return - random) / (teacher - random) is undefined; use a better teacher"
        )
    return ReferenceReturns(teacher_result.mean_return, random_return, teacher.num_parameters(), n_episodes)


def batch1_latency_us(policy: BasePolicy, observation: PyTorchObs, repeats: int = LATENCY_REPEATS) -> float:
    """
    Median microseconds of one deterministic action of a torch policy for one observation, on one thread (as an agent
    acts): SB3's ``policy._predict``, the acting network and the action it picks (DQN's argmax over its Q-network, an
    actor's mean action, ...), without the numpy conversions of ``predict``.

    :param policy: The student's policy, in evaluation mode
    :param observation: A batch of one observation, preprocessed as the policy takes it
    :param repeats: Timed calls
    """
    threads = th.get_num_threads()
    th.set_num_threads(1)

    def call() -> None:
        with th.inference_mode():
            policy._predict(observation, deterministic=True)

    try:
        seconds = median_latency({"policy": {1: call}}, repeats)["policy"][1]
    finally:
        th.set_num_threads(threads)
    return seconds * 1e6


class SizeSearchObjective:
    """
    The objectives of a size search: train a student with the trial's architecture, alpha and temperature for the whole
    budget (Optuna prunes no multi-objective study), then return its normalized score over ``eval_episodes``
    deterministic episodes (maximized) and its acting network's parameter count
    (:func:`sb3_distill.algorithms.acting_network`) or its batch-1 latency in microseconds (minimized). The sampled
    ``net_arch`` is the policy's: an actor-critic student (PPO, SAC, TD3) gets it for its actor and its critic alike,
    as SB3 reads a list ``net_arch``; only the actor is counted.
    Trial ``n``'s student is seeded with ``seed + n``; its net_arch, parameters, mean return and latency are stored as
    user attributes. A student with a performance-based alpha gets the references' returns (those its entry does not
    give), so that no trial measures them again.

    :param recipe: The student
    :param teacher: The prepared teacher, shared by the trials (frozen, read only)
    :param references: The teacher's and random returns of the normalized score
    :param objectives: ``("score", "params")`` or ``("score", "latency")``
    :param eval_episodes: Deterministic episodes of the final evaluation
    :param seed: Seed of trial 0's student
    :param device: The students' device
    """

    def __init__(
        self,
        recipe: Recipe,
        teacher: Teacher,
        references: ReferenceReturns,
        objectives: tuple[str, ...],
        eval_episodes: int,
        seed: int,
        device: str,
    ):
        self.stop = StopRequest()  # as DistillationObjective's
        self.recipe = recipe
        self.teacher = teacher
        self.references = references
        self.objectives = objectives
        self.eval_episodes = eval_episodes
        self.seed = seed
        self.device = device

    def reference_kwargs(self) -> dict[str, float]:
        """The teacher's and random returns for a performance-based alpha, where the entry does not give its own."""
        if not searches_alpha_0(self.recipe):
            return {}
        measured = {"teacher_return": self.references.teacher_return, "random_return": self.references.random_return}
        return {name: value for name, value in measured.items() if self.recipe.model_kwargs.get(name) is None}

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        recipe = self.recipe
        record_alpha_kind(trial, recipe.model_kwargs.get("alpha"))
        sampled = {**sample_size_search_params(trial, has_temperature(recipe.algo)), **self.reference_kwargs()}
        net_arch = sampled.pop("net_arch")
        trial_seed = self.seed + trial.number
        trial.set_user_attr("seed", trial_seed)
        trial.set_user_attr("net_arch", net_arch)
        policy_kwargs = {**(recipe.model_kwargs.get("policy_kwargs") or {}), "net_arch": net_arch}
        env = recipe.make_env(seed=trial_seed)
        final_env = recipe.make_env(seed=trial_seed + FINAL_EVAL_SEED_OFFSET, n_envs=1, eval_env=True)
        try:
            student = recipe.make_model(
                env, seed=trial_seed, teacher=self.teacher, device=self.device, policy_kwargs=policy_kwargs, **sampled
            )
            student.learn(recipe.n_timesteps, callback=[*recipe.callbacks, StopOnRequest(self.stop)])
            if self.stop.signal is not None:
                return interrupted_trial(trial), float("nan")
            sync_envs_normalization(env, final_env)
            result = evaluate_agent("student", student, acting_network(student), final_env, self.eval_episodes)
            latency = None
            if "latency" in self.objectives:
                student.policy.set_training_mode(False)
                observation, _ = student.policy.obs_to_tensor(final_env.reset())  # type: ignore[arg-type]
                latency = batch1_latency_us(student.policy, observation)
        finally:
            for vec_env in (env, final_env):
                vec_env.close()
        score = normalized_score(result.mean_return, self.references.teacher_return, self.references.random_return)
        trial.set_user_attr("parameters", result.parameters)
        trial.set_user_attr("mean_return", result.mean_return)
        trial.set_user_attr("std_return", result.std_return)
        trial.set_user_attr("env_steps", result.env_steps)
        if latency is not None:
            trial.set_user_attr("latency_us", latency)
        return score, float(result.parameters) if latency is None else latency
