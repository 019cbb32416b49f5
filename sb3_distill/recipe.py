"""
The one place that turns (env id, Zoo-format config, ``-params`` overrides, options) into a run's settings.

Everything that reads a ``zoo_configs`` entry goes through here: the ``sb3-distill`` command, the Optuna studies, the
benchmarks and the RL Zoo glue. The entry is read and preprocessed by rl_zoo3's own ``ExperimentManager``
(``lin_*`` schedules, ``train_freq`` lists, ``policy_kwargs`` strings, env and VecEnv wrappers, frame stacking,
normalization, callbacks, ``.py`` configs), and its envs are built by the Zoo's ``create_envs``, so a config means the
same thing under ``sb3-distill distill`` as under ``python -m sb3_distill.zoo train``.
"""

import argparse
import contextlib
import copy
import difflib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import optuna
import yaml
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import get_latest_run_id
from stable_baselines3.common.vec_env import VecEnv

from sb3_distill.algorithms import STUDENT_ALGOS, TEACHER_ALGOS, check_algo, is_student
from sb3_distill.common.alpha import is_performance_alpha
from sb3_distill.common.teacher import find_zoo_model, load_teacher, read_zoo_saved_config
from sb3_distill.config import resolve_relative_to, zoo_config_path
from sb3_distill.hyperparams_opt import check_not_searched, record_alpha_kind
from sb3_distill.recipe_checks import check_config_file, check_model_kwargs, check_written_values
from sb3_distill.teacher_recipe import RECIPE_KEYS, apply_teacher_recipe

DEFAULT_ENV = "CartPole-v1"
# The default student and teacher (the main job's)
ALGO_NAME = "distilled_dqn"
TEACHER_ALGO = "dqn"
# The algorithms a recipe can build, by their Zoo name
RECIPE_ALGOS: dict[str, type[BaseAlgorithm]] = {**TEACHER_ALGOS, **STUDENT_ALGOS}


def default_config(algo: str) -> Path:
    """
    The config a recipe of ``algo`` reads when none is given: the project's ``zoo_configs/<algo>.yml`` (every student,
    and the teachers the project tuned: ``dqn``, ``sac``), else the RL Zoo's own ``hyperparams/<algo>.yml``.

    :param algo: A Zoo algorithm name
    """
    project_config = zoo_config_path(algo)
    if project_config.is_file() or is_student(algo):
        return project_config
    import rl_zoo3

    return Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml"


# What decides the observations a policy sees: a teacher trained on other ones gives meaningless values
ENV_PIPELINE_KEYS = ("env_wrapper", "vec_env_wrapper", "frame_stack", "normalize")


def check_env_id(env_id: str) -> None:
    """
    Fail unless ``env_id`` is a registered Gymnasium id (after the Zoo's imports register Atari, MinAtar, ...),
    suggesting the closest registered ids.

    :param env_id: The env id, e.g. ``CartPole-v1``
    """
    if env_id.startswith("MinAtar/"):
        from sb3_distill.minatar import register_minatar_envs  # lazily: only MinAtar runs import minatar

        register_minatar_envs()
    registry = gym.envs.registry
    if env_id in registry:
        return
    close = difflib.get_close_matches(env_id, list(registry), n=5, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(name) for name in close)}?" if close else "see gymnasium.pprint_registry()"
    raise ValueError(f"Unknown env id {env_id!r}: {hint}")


def check_teacher_pipeline(teacher_config: dict[str, Any], student_hyperparams: dict[str, Any], context: str) -> None:
    """
    Fail if a Zoo teacher saw its observations through other wrappers, frame stacking or normalization than the student.

    :param teacher_config: The hyperparameters the teacher's Zoo run saved
    :param student_hyperparams: The student's hyperparameters
    :param context: Where the teacher was named, for the message
    """
    differences = []
    for key in ENV_PIPELINE_KEYS:
        teacher_value, student_value = teacher_config.get(key), student_hyperparams.get(key)
        # An absent key, None and False all mean "not used"
        if (teacher_value or None) != (student_value or None):
            differences.append(f"{key}: teacher {teacher_value!r}, student {student_value!r}")
    if differences:
        raise ValueError(
            f"{context}: the teacher was trained on differently processed observations ("
            + "; ".join(differences)
            + "): make the student's config match the teacher's, or use another teacher"
        )


class DistillExperimentManager(ExperimentManager):
    """
    rl_zoo3's ExperimentManager, which for a student (``distilled_dqn``, ``distilled_sac``, ...) also: reads
    ``zoo_configs/<algo>.yml`` when no config is given, resolves the teacher's path (relative to the YAML file that
    names it, or to the working directory when given with ``-params``), and checks that a Zoo log folder teacher saw
    the same observations. Under ``-optimize`` it tells the sampler whether the entry's alpha is ``"performance"``
    (then alpha_0 is searched).
    """

    def __init__(self, *args: Any, config: str | None = None, **kwargs: Any):
        algo = kwargs.get("algo", args[1] if len(args) > 1 else None)
        if isinstance(algo, str) and is_student(algo) and config is None:
            config = str(zoo_config_path(algo))
        super().__init__(*args, config=config, **kwargs)  # type: ignore[misc]

    def config_entry_key(self) -> str:
        """The key of the config entry the Zoo uses for this env (the env id, ``atari`` or ``default``), as it picks it."""
        if not self.config.endswith((".yml", ".yaml")):
            return self.env_name.gym_id
        with open(self.config) as file_handler:
            entries = yaml.safe_load(file_handler) or {}
        if self.env_name.gym_id in entries:
            return self.env_name.gym_id
        return "atari" if self._is_atari and "atari" in entries else "default"

    def _resolve_teacher(self, hyperparams: dict[str, Any]) -> str:
        from_command_line = bool(self.custom_hyperparams) and "teacher" in self.custom_hyperparams  # type: ignore[operator]
        where = (
            "-params teacher"
            if from_command_line
            else f"{self.config}, entry {self.config_entry_key()!r} (for env {self.env_name.gym_id!r})"
        )
        teacher = hyperparams.get("teacher")
        if not isinstance(teacher, (str, os.PathLike)):
            raise ValueError(
                f"{where}: teacher={teacher!r}, expected the path of a teacher zip or Zoo log folder "
                "(add `teacher: path/to/teacher.zip` to the entry, "
                "or pass --teacher / -params teacher:\"'path/to/teacher.zip'\")"
            )
        # {env_id} stands for the env's file-safe name, as in the Zoo's own file names (ALE/Pong-v5 -> ALE-Pong-v5)
        written = str(teacher).replace("{env_id}", str(self.env_name))
        base_dir = Path.cwd() if from_command_line else Path(self.config).resolve().parent
        path = resolve_relative_to(written, base_dir)
        is_zip = path.is_file() or path.with_name(path.name + ".zip").is_file()
        if not is_zip and not (path.is_dir() and find_zoo_model(path) is not None):
            raise FileNotFoundError(
                f"{where}: teacher {str(teacher)!r} (resolved to {str(path)!r}) is neither an SB3 model zip nor an RL Zoo "
                "log folder; train one first, e.g. `sb3-distill teacher --env "
                f"{self.env_name.gym_id}` or `python -m sb3_distill.zoo train --algo dqn --env {self.env_name.gym_id} "
                "--conf-file zoo_configs/dqn.yml`"
            )
        if path.is_dir():
            check_teacher_pipeline(read_zoo_saved_config(path), hyperparams, f"{where}: teacher {str(path)!r}")
        return str(path)

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        hyperparams, saved_hyperparams = super().read_hyperparameters()
        self.recipe_notes: list[str] = []
        if is_student(self.algo):
            # The saved config.yml records the resolved path, so the run can be reproduced from anywhere
            hyperparams["teacher"] = saved_hyperparams["teacher"] = self._resolve_teacher(hyperparams)
            # An entry that takes its settings or its student's size from the teacher (the default entry): filled now,
            # before rl_zoo3 preprocesses it; config.yml records the values, not the options
            before = set(hyperparams)
            self.recipe_notes = apply_teacher_recipe(
                hyperparams,
                before,
                self.env_name.gym_id,
                hyperparams["teacher"],
                trust=bool(hyperparams.get("trust_teacher", False)),
            )
            if self.recipe_notes:
                for key in RECIPE_KEYS:
                    saved_hyperparams.pop(key, None)
                saved_hyperparams.update({key: hyperparams[key] for key in set(hyperparams) - before})
                for note in self.recipe_notes:
                    print(f"Recipe from the teacher: {note}")
        return hyperparams, saved_hyperparams

    def hyperparameters_optimization(self) -> None:
        if is_student(self.algo):
            # Each trial builds its own model, and the Zoo prunes trials whose construction fails:
            # check the teacher against the env once, so a wrong teacher fails now rather than every trial silently
            check_not_searched(self.custom_hyperparams, is_performance_alpha(self._hyperparams.get("alpha")))
            env = self.create_envs(1, no_log=True)
            try:
                trust = bool(self._hyperparams.get("trust_teacher", False))
                load_teacher(self._hyperparams["teacher"], env.observation_space, env.action_space, trust=trust)
            finally:
                env.close()
        super().hyperparameters_optimization()

    def objective(self, trial: optuna.Trial) -> float:
        if is_student(self.algo):
            # rl_zoo3 calls the sampler without the hyperparameters: the trial tells it which alpha to sample
            record_alpha_kind(trial, self._hyperparams.get("alpha"))
        return super().objective(trial)


def next_run_dir(log_folder: str | os.PathLike, env_id: str) -> Path:
    """A new run folder ``<log_folder>/<env_id>_<n>``, numbered after the existing ones as the Zoo does."""
    name = env_id.replace("/", "-")
    run_id = get_latest_run_id(str(log_folder), name) + 1
    run_dir = Path(log_folder) / f"{name}_{run_id}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


@dataclass
class Recipe:
    """
    One run's settings, read from a Zoo-format config entry and preprocessed by rl_zoo3.

    :param algo: A teacher's Zoo name (``dqn``, ``sac``, ...) or a student's (``distilled_dqn``, ``distilled_sac``, ...)
    :param env_id: The env
    :param config_file: The config the entry comes from
    :param entry_key: The entry used: the env id, ``atari`` or ``default``
    :param hyperparams: The entry with the overrides, as written (what a YAML entry and the Zoo's ``config.yml`` hold)
    :param model_kwargs: The constructor's keyword arguments (``policy`` included), as rl_zoo3 preprocessed them
    :param n_timesteps: Environment steps of the run
    :param n_envs: Training envs
    :param callbacks: Callbacks the entry names (its ``callback`` key)
    :param manager: The Zoo's experiment manager that read the entry; it builds the envs
    """

    algo: str
    env_id: str
    config_file: Path
    entry_key: str
    hyperparams: dict[str, Any]
    model_kwargs: dict[str, Any]
    n_timesteps: int
    n_envs: int
    callbacks: list[BaseCallback]
    manager: ExperimentManager
    #: What the entry took from its teacher (``teacher_settings``, ``student_share``), one line each
    notes: list[str] = field(default_factory=list)

    @property
    def teacher(self) -> str | None:
        """The resolved teacher path of a student recipe (None for a teacher's)."""
        return self.model_kwargs.get("teacher")

    @property
    def policy(self) -> Any:
        """The policy name (or class)."""
        return self.model_kwargs["policy"]

    @property
    def net_arch(self) -> Any:
        """The policy's ``net_arch`` (None: SB3's default)."""
        return (self.model_kwargs.get("policy_kwargs") or {}).get("net_arch")

    def make_env(self, seed: int, n_envs: int | None = None, eval_env: bool = False) -> VecEnv:
        """
        The env as the Zoo builds it for this entry: env kwargs, wrappers, VecEnv wrapper, normalization, frame stacking.

        :param seed: Seed of the first env
        :param n_envs: Number of envs (None: the entry's)
        :param eval_env: An evaluation env (normalization statistics frozen, rewards not normalized)
        """
        self.manager.seed = seed
        return self.manager.create_envs(n_envs or self.n_envs, eval_env=eval_env, no_log=True)

    def make_model(self, env: VecEnv, seed: int | None = None, **overrides: Any) -> BaseAlgorithm:
        """
        The recipe's model on ``env``.

        :param env: The training env (see :meth:`make_env`)
        :param seed: The model's seed
        :param overrides: Constructor arguments that replace the recipe's (``device``, ``verbose``, a loaded teacher, ...)
        """
        # The Zoo turns `noise_type`/`noise_std` into an action noise object once it knows the env, as here
        kwargs = self.manager._preprocess_action_noise(copy.deepcopy(self.model_kwargs), {}, env)
        return RECIPE_ALGOS[self.algo](env=env, seed=seed, **{**kwargs, **overrides})


def _override_net_arch(written: Any, net_arch: list[int]) -> Any:
    """``policy_kwargs`` as written, with another ``net_arch``, in a form the Zoo evaluates the same way."""
    if written is None:
        return f"dict(net_arch={list(net_arch)})"
    if isinstance(written, str):
        # dict(mapping, **kwargs): the keyword wins
        return f"dict({written}, net_arch={list(net_arch)})"
    return {**written, "net_arch": list(net_arch)}


def make_recipe(
    env_id: str,
    algo: str = ALGO_NAME,
    *,
    conf_file: str | os.PathLike | None = None,
    hyperparams: dict[str, Any] | None = None,
    teacher: str | os.PathLike | None = None,
    n_timesteps: int | None = None,
    net_arch: list[int] | None = None,
    verbose: int = 0,
) -> Recipe:
    """
    Read an env's entry of a Zoo-format config the way rl_zoo3 does, with overrides.

    :param env_id: The env; an env without an entry of its own uses the ``default`` (or ``atari``) entry
    :param algo: A student's Zoo name (``distilled_dqn``, ``distilled_sac``, ...) or a teacher's (``dqn``, ``sac``, ...)
    :param conf_file: Zoo-format ``.yml`` or ``.py`` config (None: :func:`default_config`)
    :param hyperparams: Values that replace the entry's, as the Zoo's ``-params`` gives them
    :param teacher: The student's teacher (None: the entry's), relative to the working directory
    :param n_timesteps: Environment steps (None: the entry's)
    :param net_arch: The policy's hidden layers (None: the entry's)
    :param verbose: Print what the Zoo prints while reading the entry
    """
    check_algo(algo)
    check_env_id(env_id)
    if n_timesteps is not None and n_timesteps < 1:
        raise ValueError(f"n_timesteps={n_timesteps!r} must be >= 1")
    config = Path(conf_file) if conf_file is not None else default_config(algo)
    check_config_file(config)
    overrides = dict(hyperparams or {})
    check_written_values(overrides, "-params")
    if teacher is not None:
        overrides["teacher"] = str(teacher)
    manager = DistillExperimentManager(
        argparse.Namespace(),
        algo,
        env_id,
        log_folder="logs",
        n_timesteps=n_timesteps or 0,
        hyperparams=overrides or None,
        config=str(config),
        verbose=verbose,
    )
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        try:
            written, saved = manager.read_hyperparameters()
        except ValueError as error:
            if "Hyperparameters not found" not in str(error):
                raise
            raise ValueError(
                f"{str(config)!r} has no entry for {env_id!r} and no 'default' entry: add one, or pass --conf-file"
            ) from error
        if "n_timesteps" not in written:
            if n_timesteps is None:
                raise ValueError(
                    f"Entry {manager.config_entry_key()!r} of {str(config)!r} has no n_timesteps: add one, or pass -n"
                )
            written["n_timesteps"] = saved["n_timesteps"] = n_timesteps
        if net_arch is not None:
            written["policy_kwargs"] = saved["policy_kwargs"] = _override_net_arch(written.get("policy_kwargs"), net_arch)
        saved_hyperparams = dict(saved)
        where = f"entry {manager.config_entry_key()!r} of {str(config)!r} (with -params)"
        check_written_values(written, where)
        model_kwargs, manager.env_wrapper, callbacks, manager.vec_env_wrapper = manager._preprocess_hyperparams(
            copy.deepcopy(written)
        )
        check_model_kwargs(model_kwargs, manager.n_envs, where)
    return Recipe(
        algo=algo,
        env_id=env_id,
        config_file=config,
        entry_key=manager.config_entry_key(),
        hyperparams=saved_hyperparams,
        model_kwargs=model_kwargs,
        n_timesteps=manager.n_timesteps,
        n_envs=manager.n_envs,
        callbacks=callbacks,
        manager=manager,
        notes=list(getattr(manager, "recipe_notes", [])),
    )
