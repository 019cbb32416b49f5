"""The objective of a study: train a student with a trial's alpha and temperature, report to the pruner, score it."""

import os
from typing import Any

import optuna
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from sb3_distill.hyperparams_opt import sample_distilled_dqn_params, search_space
from sb3_distill.recipe import Recipe, make_recipe
from sb3_distill.report import evaluate_agent
from sb3_distill.teacher import Teacher, load_teacher


def make_study_recipe(
    env_id: str,
    teacher: str | os.PathLike | None = None,
    conf_file: str | os.PathLike | None = None,
    hyperparams: dict[str, Any] | None = None,
    n_timesteps: int | None = None,
) -> Recipe:
    """
    The student of every trial, but for alpha and temperature: the env's entry of ``zoo_configs/distilled_dqn.yml``
    (or ``conf_file``) with ``hyperparams`` in place of its values, read by :func:`sb3_distill.recipe.make_recipe`.

    :param env_id: The env
    :param teacher: The teacher (None: the entry's, relative to the config file's folder)
    :param conf_file: Zoo-format config (None: ``zoo_configs/distilled_dqn.yml``)
    :param hyperparams: Values that replace the entry's, as the Zoo's ``-params`` gives them
    :param n_timesteps: Environment steps per trial (None: the entry's)
    """
    searched = sorted(set(hyperparams or {}) & set(search_space()))
    if searched:
        raise ValueError(f"Hyperparameters {searched} are what the study searches: leave them out of -params")
    recipe = make_recipe(env_id, conf_file=conf_file, hyperparams=hyperparams, teacher=teacher, n_timesteps=n_timesteps)
    if isinstance(recipe.model_kwargs.get("alpha"), str):
        # The search space samples a constant alpha: it would silently replace the entry's performance-based one
        raise ValueError(
            f"The student's entry has alpha={recipe.model_kwargs['alpha']!r}, but studies search a constant alpha in "
            "[0, 1]: give the entry a number (or -params alpha:0.5) to tune alpha and temperature"
        )
    for name in search_space():
        recipe.model_kwargs.pop(name, None)  # sampled by every trial
    return recipe


def prepare_teacher(recipe: Recipe, device: str) -> Teacher:
    """
    Load the teacher once for all trials, and build one student, so that a teacher that does not fit the env or a
    hyperparameter DistilledDQN refuses fails now rather than in every trial.

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
    The objective of a study: train a student with the trial's alpha and temperature, report its intermediate
    evaluations to the pruner, and return its mean return over ``eval_episodes`` deterministic episodes at the end of
    the budget. Trial ``n``'s student is seeded with ``seed + n``.

    :param recipe: The student
    :param teacher: The prepared teacher, shared by the trials (frozen, read only)
    :param eval_freq: Environment steps between intermediate evaluations
    :param eval_episodes: Deterministic episodes per evaluation
    :param seed: Seed of trial 0's student
    :param device: The students' device
    """

    def __init__(self, recipe: Recipe, teacher: Teacher, eval_freq: int, eval_episodes: int, seed: int, device: str):
        self.recipe = recipe
        self.teacher = teacher
        self.eval_freq = eval_freq
        self.eval_episodes = eval_episodes
        self.seed = seed
        self.device = device

    def __call__(self, trial: optuna.Trial) -> float:
        recipe = self.recipe
        sampled = sample_distilled_dqn_params(trial)
        trial_seed = self.seed + trial.number
        trial.set_user_attr("seed", trial_seed)
        env = recipe.make_env(seed=trial_seed)
        eval_env = recipe.make_env(seed=trial_seed + 1_000, n_envs=1, eval_env=True)
        final_env = recipe.make_env(seed=trial_seed + 10_000, n_envs=1, eval_env=True)
        try:
            student = recipe.make_model(env, seed=trial_seed, teacher=self.teacher, device=self.device, **sampled)
            callback = TrialEvalCallback(eval_env, trial, self.eval_episodes, max(self.eval_freq // recipe.n_envs, 1))
            student.learn(recipe.n_timesteps, callback=[*recipe.callbacks, callback])
            if callback.is_pruned:
                raise optuna.TrialPruned(f"mean return {callback.last_mean_reward:.1f} at {student.num_timesteps} steps")
            sync_envs_normalization(env, final_env)
            result = evaluate_agent("student", student, student.q_net, final_env, self.eval_episodes)  # type: ignore[attr-defined]
        finally:
            for vec_env in (env, eval_env, final_env):
                vec_env.close()
        trial.set_user_attr("std_return", result.std_return)
        trial.set_user_attr("env_steps", result.env_steps)
        return result.mean_return
