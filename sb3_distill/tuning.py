"""
Optuna studies of DistilledDQN's alpha and temperature: resumable, pruned, and spread over many workers.

    python tuning/tune_distill.py --env CartPole-v1 --n-trials 50 --n-timesteps 10000
    sb3-distill tune --env CartPole-v1 --storage postgresql://user:password@host/optuna --study-name cartpole

A study lives in an Optuna RDB storage: a SQLite file by default, PostgreSQL (or any server SQLAlchemy speaks to)
to spread it over machines. Running the same command again continues the study, and every worker given the same
storage URL and study name adds its trials to it. A running trial records heartbeats; a worker killed mid-trial stops
sending them, and after the grace period the next trial started by any worker marks its trial FAIL and enqueues it
again (Optuna's ``RetryHeartbeatStaleTrialCallback``). The search space is the Zoo's ``-optimize`` one,
:func:`sb3_distill.hyperparams_opt.sample_distilled_dqn_params`; the study's defaults are data, ``tuning/study.yml``.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
import yaml
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv

from sb3_distill.cli import DEFAULT_ENV, next_run_dir, positive_int, run_teacher, zoo_recipe
from sb3_distill.config import ZOO_EVALUATED_KEYS, evaluate_zoo_value, project_data_dir, read_zoo_config, zoo_config_path
from sb3_distill.distilled_dqn import DistilledDQN
from sb3_distill.hyperparams_opt import sample_distilled_dqn_params, search_space
from sb3_distill.report import evaluate_agent
from sb3_distill.teacher import Teacher, load_teacher, resolve_model_path

STUDY_DEFAULTS_FILE = project_data_dir("tuning") / "study.yml"
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
# The objective is a mean over at least this many deterministic episodes
MIN_EVAL_EPISODES = 10
# Where the objective's settings and the search space are recorded in a study, to check a resumed study against
OBJECTIVE_ATTR, SEARCH_SPACE_ATTR = "sb3_distill_objective", "sb3_distill_search_space"
BEST_CONFIG_FILE = "distilled_dqn.yml"
PLOT_FILES = {
    "optimization_history": "optimization_history.png",
    "param_importances": "param_importances.png",
    "contour": "contour_alpha_temperature.png",
}


@dataclass
class StudySettings:
    """
    How a study runs: the defaults are ``tuning/study.yml``, which documents each field.

    :param n_trials: Trials this worker runs
    :param n_jobs: Trials run at once in this process (threads); -1 for one per CPU core
    :param sampler: ``tpe`` or ``random``
    :param pruner: ``median`` or ``none``
    :param n_startup_trials: Random trials before TPE models the results, finished trials before the pruner prunes
    :param pruner_warmup_fraction: Share of each trial's budget the median pruner leaves alone
    :param n_evaluations: Intermediate evaluations per trial when ``eval_freq`` is None
    :param eval_episodes: Deterministic episodes per evaluation (at least 10)
    :param log_folder: Where reports go (and the default SQLite storage)
    :param heartbeat_interval: Seconds between a running trial's heartbeats
    :param grace_period: Seconds without a heartbeat after which a running trial is marked FAIL and retried
    :param max_retry: How many times a trial whose worker died is retried
    :param eval_freq: Environment steps between intermediate evaluations (None: from ``n_evaluations``)
    """

    n_trials: int
    n_jobs: int
    sampler: str
    pruner: str
    n_startup_trials: int
    pruner_warmup_fraction: float
    n_evaluations: int
    eval_episodes: int
    log_folder: str
    heartbeat_interval: int
    grace_period: int
    max_retry: int
    eval_freq: int | None = None

    def __post_init__(self) -> None:
        minimums = dict(
            n_trials=1, n_startup_trials=0, n_evaluations=1, eval_episodes=MIN_EVAL_EPISODES, heartbeat_interval=1, max_retry=0
        )
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
        if self.eval_freq is not None and (not isinstance(self.eval_freq, int) or self.eval_freq < 1):
            raise ValueError(f"eval_freq={self.eval_freq!r} must be a number of environment steps >= 1")
        if not isinstance(self.n_jobs, int) or not (self.n_jobs >= 1 or self.n_jobs == -1):
            raise ValueError(f"n_jobs={self.n_jobs!r} must be >= 1, or -1 for one trial per CPU core")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r} is not one of {SAMPLERS}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner={self.pruner!r} is not one of {PRUNERS}")
        if not 0.0 <= self.pruner_warmup_fraction < 1.0:
            raise ValueError(f"pruner_warmup_fraction={self.pruner_warmup_fraction!r} must be in [0, 1)")
        if not isinstance(self.grace_period, int) or self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"grace_period={self.grace_period!r} must be an integer number of seconds > heartbeat_interval="
                f"{self.heartbeat_interval} (else live trials are taken for dead ones)"
            )


def load_study_settings(defaults_file: str | os.PathLike | None = None, **overrides: Any) -> StudySettings:
    """
    The study's settings: ``tuning/study.yml`` (or ``defaults_file``), with the values of ``overrides`` that are not None.

    :param defaults_file: YAML file with every field of :class:`StudySettings` but ``eval_freq``
    :param overrides: Field values that replace the file's
    """
    path = Path(defaults_file) if defaults_file is not None else STUDY_DEFAULTS_FILE
    with open(path) as file_handler:
        defaults = yaml.safe_load(file_handler) or {}
    names = {field.name for field in fields(StudySettings)}
    unknown = sorted(set(defaults) - names) + sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"Unknown study settings {unknown} (from {str(path)!r} or the caller); known: {sorted(names)}")
    settings = {**defaults, **{name: value for name, value in overrides.items() if value is not None}}
    missing = sorted(names - set(settings) - {"eval_freq"})
    if missing:
        raise ValueError(f"{str(path)!r} lacks the study settings {missing}")
    return StudySettings(**settings)


@dataclass
class StudentRecipe:
    """
    What every trial's student is, but for alpha and temperature.

    :param env_id: The env
    :param teacher_path: The teacher as given (a zip, the zip without ``.zip`` or an RL Zoo log folder)
    :param policy: The policy name
    :param n_envs: Training envs
    :param n_timesteps: Environment steps per trial
    :param kwargs: DistilledDQN's other constructor arguments, evaluated
    :param entry: The config entry as written (with the overrides), for the best trial's YAML
    :param config_file: Where the entry comes from
    """

    env_id: str
    teacher_path: Path
    policy: str
    n_envs: int
    n_timesteps: int
    kwargs: dict[str, Any]
    entry: dict[str, Any]
    config_file: Path


def parse_hyperparams(pairs: list[str]) -> dict[str, Any]:
    """
    The Zoo's ``-params key:value ...``, as a YAML entry would hold them: the Zoo's evaluated keys (``policy_kwargs``, ...)
    stay strings, other values are evaluated and must be numbers, strings or booleans.

    :param pairs: ``["learning_rate:1e-3", "policy_kwargs:dict(net_arch=[8])"]``
    """
    hyperparams: dict[str, Any] = {}
    for pair in pairs:
        key, separator, text = pair.partition(":")
        if not separator or not key:
            raise ValueError(f"Hyperparameter {pair!r} is not of the form key:value (e.g. learning_rate:1e-3)")
        if key in ZOO_EVALUATED_KEYS:
            evaluate_zoo_value(key, text)  # fail now on a bad expression
            hyperparams[key] = text
            continue
        value = evaluate_zoo_value(key, text)
        if not isinstance(value, (int, float, str)):  # bool is an int
            raise ValueError(
                f"Hyperparameter {key}={text!r} must be a number, a string or a boolean, got {type(value).__name__}"
            )
        hyperparams[key] = value
    return hyperparams


def make_student_recipe(
    env_id: str,
    teacher: str | os.PathLike | None = None,
    conf_file: str | os.PathLike | None = None,
    hyperparams: dict[str, Any] | None = None,
    n_timesteps: int | None = None,
) -> StudentRecipe:
    """
    The student of a study: the env's entry of ``zoo_configs/distilled_dqn.yml`` (or ``conf_file``), with ``hyperparams``
    and the other arguments in place of its values.

    :param env_id: The env
    :param teacher: The teacher (None: the entry's, relative to the config file's folder)
    :param conf_file: Zoo-format YAML file (None: ``zoo_configs/distilled_dqn.yml``)
    :param hyperparams: Values that replace the entry's, written as in the YAML file
    :param n_timesteps: Environment steps per trial (None: the entry's)
    """
    config_file = Path(conf_file) if conf_file is not None else zoo_config_path("distilled_dqn")
    overrides = dict(hyperparams or {})
    searched = sorted(set(overrides) & set(search_space()))
    if searched:
        raise ValueError(f"Hyperparameters {searched} are what the study searches: leave them out of -params")
    entry_n_timesteps, policy, n_envs, kwargs = zoo_recipe(config_file, env_id, overrides)
    teacher_path = run_teacher(None if teacher is None else str(teacher), kwargs.pop("teacher", None), config_file, env_id)
    for name in search_space():
        kwargs.pop(name, None)  # sampled by every trial
    if n_timesteps is not None and n_timesteps < 1:
        raise ValueError(f"n_timesteps={n_timesteps!r} must be >= 1")
    return StudentRecipe(
        env_id=env_id,
        teacher_path=teacher_path,
        policy=policy,
        n_envs=n_envs,
        n_timesteps=n_timesteps or entry_n_timesteps,
        kwargs=kwargs,
        entry={**read_zoo_config(config_file, env_id), **overrides},
        config_file=config_file,
    )


def prepare_teacher(recipe: StudentRecipe, device: str) -> Teacher:
    """
    Load the teacher once for all trials, and build one student, so that a teacher that does not fit the env or a
    hyperparameter DistilledDQN refuses fails now rather than in every trial.

    :param recipe: The student
    :param device: The students' device
    """
    env = make_vec_env(recipe.env_id, n_envs=recipe.n_envs)
    try:
        teacher = load_teacher(recipe.teacher_path, env.observation_space, env.action_space, device)
        DistilledDQN(recipe.policy, env, teacher=teacher, device=device, **recipe.kwargs)
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

    def __init__(self, recipe: StudentRecipe, teacher: Teacher, eval_freq: int, eval_episodes: int, seed: int, device: str):
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
        env = make_vec_env(recipe.env_id, n_envs=recipe.n_envs, seed=trial_seed)
        eval_env = make_vec_env(recipe.env_id, n_envs=1, seed=trial_seed + 1_000)
        final_env = make_vec_env(recipe.env_id, n_envs=1, seed=trial_seed + 10_000)
        try:
            student = DistilledDQN(
                recipe.policy, env, teacher=self.teacher, seed=trial_seed, device=self.device, **recipe.kwargs, **sampled
            )
            callback = TrialEvalCallback(eval_env, trial, self.eval_episodes, max(self.eval_freq // recipe.n_envs, 1))
            student.learn(recipe.n_timesteps, callback=callback)
            if callback.is_pruned:
                raise optuna.TrialPruned(f"mean return {callback.last_mean_reward:.1f} at {student.num_timesteps} steps")
            result = evaluate_agent("student", student, student.q_net, final_env, self.eval_episodes)
        finally:
            for vec_env in (env, eval_env, final_env):
                vec_env.close()
        trial.set_user_attr("std_return", result.std_return)
        trial.set_user_attr("env_steps", result.env_steps)
        return result.mean_return


def storage_display_name(url: str) -> str:
    """The storage URL without its password, for messages and files."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def open_storage(url: str, settings: StudySettings) -> RDBStorage:
    """
    Open (and if needed set up) an Optuna RDB storage with heartbeats and retries of the trials of dead workers.

    :param url: SQLAlchemy URL: ``sqlite:///path/studies.db``, ``postgresql://user:password@host:port/database``, ...
    :param settings: Heartbeat interval, grace period and retries
    """
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Workers on one machine wait for each other's writes rather than failing with "database is locked"
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    # Workers starting together may race to create the tables: the loser finds them made on a second try
    attempts = 3
    for attempt in range(attempts):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=settings.max_retry),
            )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(1.0 + attempt)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, RuntimeError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            if error.__cause__ is not None:  # Optuna's "Failed to import DB access module" names no module
                reason += f" ({error.__cause__})"
            raise ValueError(
                f"Cannot open the Optuna storage {storage_display_name(url)!r}: {reason} (expected a reachable database URL "
                "such as sqlite:///runs/tuning/studies.db or postgresql://user:password@host:5432/database)"
            ) from error
    raise AssertionError("unreachable")


def create_sampler(settings: StudySettings, seed: int | None) -> optuna.samplers.BaseSampler:
    """The study's sampler, as the Zoo makes them (seeded when ``seed`` is given)."""
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=settings.n_startup_trials, seed=seed, multivariate=True)


def create_pruner(settings: StudySettings, n_timesteps: int) -> optuna.pruners.BasePruner:
    """The study's pruner; the median pruner's warm-up is counted in environment steps, as the reports are."""
    if settings.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=settings.n_startup_trials, n_warmup_steps=int(n_timesteps * settings.pruner_warmup_fraction)
    )


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file_handler:
        for block in iter(lambda: file_handler.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def objective_settings(recipe: StudentRecipe, settings: StudySettings) -> dict[str, Any]:
    """
    What makes two trials' values comparable: a study continues only with the same ones. The teacher counts by its
    content, so workers on other machines may keep it elsewhere.
    """
    ignored = {"teacher", "n_timesteps", "policy", *search_space()}
    return {
        "env_id": recipe.env_id,
        "n_timesteps": recipe.n_timesteps,
        "eval_episodes": settings.eval_episodes,
        "policy": recipe.policy,
        "hyperparams": {key: str(value) for key, value in sorted(recipe.entry.items()) if key not in ignored},
        "teacher_sha256": file_sha256(resolve_model_path(recipe.teacher_path)),
    }


def check_search_space(study: optuna.Study, storage_name: str) -> None:
    """
    Fail unless every trial of ``study`` was sampled from :func:`sb3_distill.hyperparams_opt.search_space`.

    :param study: The loaded study
    :param storage_name: The storage, for the message
    """
    expected = search_space()
    for trial in study.get_trials(deepcopy=False):
        different = {
            name: distribution for name, distribution in trial.distributions.items() if expected.get(name) != distribution
        }
        missing = sorted(set(expected) - set(trial.distributions)) if trial.state == TrialState.COMPLETE else []
        if different or missing:
            found = ", ".join(f"{name}: {distribution}" for name, distribution in different.items())
            raise ValueError(
                f"Study {study.study_name!r} in {storage_name!r} has another search space: its trial {trial.number} has "
                f"{found or 'no ' + ', '.join(missing)}, but this study searches "
                + ", ".join(f"{name}: {distribution}" for name, distribution in expected.items())
                + ": pass another --study-name (or --storage)"
            )


def check_study(study: optuna.Study, storage_name: str, objective: dict[str, Any]) -> None:
    """
    Fail unless an existing study can be continued: maximized, same search space, same objective. A new study gets
    the search space and the objective's settings recorded.

    :param study: The created or loaded study
    :param storage_name: The storage, for messages
    :param objective: :func:`objective_settings`
    """
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ValueError(f"Study {study.study_name!r} in {storage_name!r} minimizes its objective: pass another --study-name")
    check_search_space(study, storage_name)
    recorded_space = study.user_attrs.get(SEARCH_SPACE_ATTR)
    space = {name: optuna.distributions.distribution_to_json(distribution) for name, distribution in search_space().items()}
    if recorded_space is not None and recorded_space != space:
        raise ValueError(
            f"Study {study.study_name!r} in {storage_name!r} was made for another search space ({recorded_space}, "
            f"this one is {space}): pass another --study-name (or --storage)"
        )
    # Compare as stored: JSON has no tuples
    current = json.loads(json.dumps(objective))
    recorded = study.user_attrs.get(OBJECTIVE_ATTR)
    if recorded is not None and recorded != current:
        differences = [
            f"{key}: study {recorded.get(key)!r}, now {current.get(key)!r}"
            for key in sorted(set(recorded) | set(current))
            if recorded.get(key) != current.get(key)
        ]
        raise ValueError(
            f"Study {study.study_name!r} in {storage_name!r} has another objective, so its values are not comparable with "
            f"this run's ({'; '.join(differences)}): run it with the study's settings or pass another --study-name"
        )
    if recorded_space is None:
        study.set_user_attr(SEARCH_SPACE_ATTR, space)
    if recorded is None:
        study.set_user_attr(OBJECTIVE_ATTR, current)
        study.set_user_attr("command", " ".join(sys.orig_argv))


def fail_stale_trials(study: optuna.Study, settings: StudySettings) -> list[int]:
    """
    Mark FAIL the running trials of workers that stopped sending heartbeats, which enqueues their retries.

    :return: The numbers of the trials marked FAIL
    """
    running = {trial.number for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    optuna.storages.fail_stale_trials(study)
    failed = sorted(
        trial.number for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if trial.number in running
    )
    if failed:
        print(
            f"Trials {failed} had no heartbeat for over {settings.grace_period} s (their worker died): marked FAIL, and "
            f"retried up to {settings.max_retry} times"
        )
    return failed


def study_folder_name(study_name: str) -> str:
    """A file-safe folder name for a study."""
    return re.sub(r"[^\w.-]", "_", study_name)


def new_report_dir(log_folder: str | os.PathLike, study_name: str) -> Path:
    """A new ``<log_folder>/<study>/report_<n>``: workers finishing together each get their own."""
    for _ in range(100):
        try:
            return next_run_dir(Path(log_folder) / study_folder_name(study_name), "report")
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not create a new report folder under {str(log_folder)!r}")


def best_trial_config(study: optuna.Study, recipe: StudentRecipe, storage_name: str, eval_episodes: int) -> str:
    """
    The best trial as a ``zoo_configs`` YAML file: the student's entry with the best alpha and temperature, the study's
    budget and the teacher as an absolute path.
    """
    best = study.best_trial
    entry: dict[str, Any] = {"teacher": str(resolve_model_path(recipe.teacher_path).resolve())}
    entry.update({name: best.params[name] for name in search_space()})
    entry.update({key: value for key, value in recipe.entry.items() if key not in entry})
    entry["n_timesteps"] = recipe.n_timesteps
    header = (
        f"# Best trial ({best.number}) of Optuna study {study.study_name!r} in {storage_name}: mean return {best.value:.2f} "
        f"over {eval_episodes} deterministic episodes\n# after {recipe.n_timesteps} steps. Train it with\n"
        f"#   python -m sb3_distill.zoo train --algo distilled_dqn --env {recipe.env_id} --conf-file <this file>\n"
    )
    return header + yaml.safe_dump({recipe.env_id: entry}, sort_keys=False)


def plot_study(study: optuna.Study, output_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """
    Optuna's matplotlib plots of a study: optimization history, parameter importances (PED-ANOVA) and the
    alpha x temperature landscape (contour).

    :return: (the PNGs written by name, the reason for each plot not made)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    written: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    if n_complete < 2:
        reason = f"needs at least 2 complete trials, the study has {n_complete}"
        skipped.update(param_importances=reason, contour=reason)
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            optuna.importance.get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
        degenerate = [str(warning.message) for warning in caught if "importances will be equal" in str(warning.message)]
        if degenerate:
            skipped["param_importances"] = f"Optuna cannot tell the parameters apart yet: {degenerate[0]}"
    plots = {
        "optimization_history": lambda: optuna_plots.plot_optimization_history(study),
        "param_importances": lambda: optuna_plots.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator()),
        "contour": lambda: optuna_plots.plot_contour(study, params=list(search_space())),
    }
    for name, plot in plots.items():
        if name in skipped:
            continue
        plot()
        figure = plt.gcf()  # each of Optuna's plots makes a new figure
        figure.set_size_inches(7, 5)
        figure.tight_layout()
        written[name] = output_dir / PLOT_FILES[name]
        figure.savefig(written[name], dpi=100)
        plt.close(figure)
    return written, skipped


def write_report(
    study: optuna.Study, recipe: StudentRecipe, settings: StudySettings, storage_name: str, output_dir: Path
) -> dict[str, Any]:
    """
    Write what a study found into ``output_dir``: the best trial as a zoo_configs YAML file, the plots and
    ``summary.json``; print the best alpha and temperature.

    :return: The summary
    """
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(trial.state == state for trial in trials) for state in TrialState}
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": storage_name,
        "env_id": recipe.env_id,
        "n_timesteps": recipe.n_timesteps,
        "eval_episodes": settings.eval_episodes,
        "trials": {state: count for state, count in counts.items() if count},
    }
    print(f"\nStudy {study.study_name!r} in {storage_name}: {len(trials)} trials ({summary['trials']})")
    if counts["COMPLETE"] == 0:
        print("No complete trial yet: no best parameters to write")
        summary["files"], summary["skipped"] = {}, {"best": "no complete trial"}
    else:
        best = study.best_trial
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params, "user_attrs": best.user_attrs}
        config_file = output_dir / BEST_CONFIG_FILE
        config_file.write_text(best_trial_config(study, recipe, storage_name, settings.eval_episodes))
        plots, summary["skipped"] = plot_study(study, output_dir)
        summary["files"] = {"best_config": str(config_file), **{name: str(path) for name, path in plots.items()}}
        print(
            f"Best trial {best.number}: mean return {best.value:.2f} over {settings.eval_episodes} episodes with "
            + ", ".join(f"{name}={value:.4g}" for name, value in best.params.items())
        )
    for name, reason in summary["skipped"].items():
        print(f"No {name} plot: {reason}" if name in PLOT_FILES else f"No {name}: {reason}")
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"Wrote {output_dir}: " + ", ".join(sorted(path.name for path in output_dir.iterdir())))
    return summary


def tune(
    env_id: str = DEFAULT_ENV,
    *,
    teacher: str | os.PathLike | None = None,
    conf_file: str | os.PathLike | None = None,
    hyperparams: dict[str, Any] | None = None,
    n_timesteps: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int | None = None,
    settings: StudySettings | None = None,
    device: str = "cpu",
) -> tuple[optuna.Study, dict[str, Any]]:
    """
    Run (or continue) an Optuna study of DistilledDQN's alpha and temperature, then write its report.

    Everything is checked before the first trial: the settings, the student's config entry, the teacher against the
    env, the storage URL, and an existing study's search space and objective.

    :param env_id: The env
    :param teacher: Trusted teacher zip or RL Zoo log folder (None: the env's entry's teacher)
    :param conf_file: Zoo-format YAML file with the student (None: ``zoo_configs/distilled_dqn.yml``)
    :param hyperparams: Values that replace the entry's, written as in the YAML file
    :param n_timesteps: Environment steps per trial (None: the entry's)
    :param storage: Optuna RDB storage URL (None: ``sqlite:///<log_folder>/studies.db``)
    :param study_name: The study (None: ``distilled_dqn_<env_id>``); an existing one is continued
    :param seed: Seeds the sampler (``seed + trials so far``) and, as ``seed + trial number``, each trial's student
        (None: an unseeded sampler, students seeded by their trial number, so that workers started alike sample
        differently; seeded workers need seeds of their own)
    :param settings: :class:`StudySettings` (None: ``tuning/study.yml``)
    :param device: The students' device
    :return: (the study, the report's summary)
    """
    settings = settings or load_study_settings()
    recipe = make_student_recipe(env_id, teacher, conf_file, hyperparams, n_timesteps)
    teacher_model = prepare_teacher(recipe, device)
    if storage is None:
        Path(settings.log_folder).mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(Path(settings.log_folder) / 'studies.db').as_posix()}"
    storage_name = storage_display_name(storage)
    study_name = study_name or f"distilled_dqn_{env_id.replace('/', '-')}"
    with warnings.catch_warnings():
        # Heartbeats, retries and the matplotlib plots are marked experimental by Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            storage=open_storage(storage, settings),
            study_name=study_name,
            pruner=create_pruner(settings, recipe.n_timesteps),
            direction="maximize",
            load_if_exists=True,
        )
        check_study(study, storage_name, objective_settings(recipe, settings))
        n_existing = len(study.get_trials(deepcopy=False))
        if n_existing:
            print(f"Continuing study {study_name!r}: {n_existing} trials so far")
        # Seeded after the trials so far, so that a resumed run does not sample its first parameters again
        study.sampler = create_sampler(settings, None if seed is None else seed + n_existing)
        fail_stale_trials(study, settings)
        eval_freq = settings.eval_freq or max(recipe.n_timesteps // settings.n_evaluations, 1)
        print(
            f"Study {study_name!r} in {storage_name}: {settings.n_trials} trials of {recipe.n_timesteps:,} steps on {env_id}, "
            f"teacher {str(recipe.teacher_path)!r}, sampler {settings.sampler}, pruner {settings.pruner}, evaluations every "
            f"{eval_freq:,} steps over {settings.eval_episodes} episodes"
        )
        objective = DistillationObjective(recipe, teacher_model, eval_freq, settings.eval_episodes, seed or 0, device)
        try:
            # A trial whose training fails (e.g. a NaN loss) is recorded FAIL with its reason; the study goes on
            study.optimize(
                objective, n_trials=settings.n_trials, n_jobs=settings.n_jobs, catch=(ValueError,), gc_after_trial=True
            )
        except KeyboardInterrupt:
            print("Interrupted: the running trials are recorded FAIL; run the same command to continue the study")
        summary = write_report(study, recipe, settings, storage_name, new_report_dir(settings.log_folder, study_name))
    print(f"See the study live: optuna-dashboard {storage_name}")
    return study, summary


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sb3-distill tune`` and ``tuning/tune_distill.py``; their defaults are ``tuning/study.yml``."""
    try:
        settings = vars(load_study_settings())
    except FileNotFoundError:  # an install without tuning/study.yml: running `tune` names the missing file
        settings = {}
    defaults = {name: settings.get(name, "tuning/study.yml") for name in (field.name for field in fields(StudySettings))}
    parser.add_argument("--env", default=DEFAULT_ENV, help="Gymnasium env id (default: %(default)s)")
    parser.add_argument(
        "--teacher", default=None, help="Trusted SB3 teacher zip (default: the env's teacher in zoo_configs/distilled_dqn.yml)"
    )
    parser.add_argument(
        "--conf-file", default=None, help="Zoo-format YAML file with the student (default: zoo_configs/distilled_dqn.yml)"
    )
    parser.add_argument(
        "-params",
        "--hyperparams",
        nargs="+",
        default=[],
        metavar="KEY:VALUE",
        help="Replace values of the student's config entry, as the Zoo's -params (e.g. policy_kwargs:'dict(net_arch=[8])')",
    )
    parser.add_argument(
        "-n", "--n-timesteps", type=positive_int, default=None, help="Environment steps per trial (default: the entry's)"
    )
    parser.add_argument(
        "--n-trials", type=positive_int, default=None, help=f"Trials this worker runs ({defaults['n_trials']})"
    )
    parser.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL, e.g. postgresql://... (default: sqlite:///<log folder>/studies.db)",
    )
    parser.add_argument("--study-name", default=None, help="Study to create or continue (default: distilled_dqn_<env>)")
    parser.add_argument("--n-jobs", type=int, default=None, help=f"Trials at once in this process ({defaults['n_jobs']})")
    parser.add_argument("--sampler", choices=SAMPLERS, default=None, help=f"Optuna sampler ({defaults['sampler']})")
    parser.add_argument("--pruner", choices=PRUNERS, default=None, help=f"Optuna pruner ({defaults['pruner']})")
    parser.add_argument(
        "--n-startup-trials",
        type=int,
        default=None,
        help=f"Trials before TPE and pruning start ({defaults['n_startup_trials']})",
    )
    parser.add_argument("--seed", type=int, default=None, help="Seeds the sampler and the students (default: unseeded)")
    parser.add_argument(
        "--eval-freq",
        type=positive_int,
        default=None,
        help=f"Steps between intermediate evaluations (default: the budget / {defaults['n_evaluations']})",
    )
    parser.add_argument(
        "--eval-episodes", type=int, default=None, help=f"Episodes per evaluation, >= 10 ({defaults['eval_episodes']})"
    )
    parser.add_argument("-f", "--log-folder", default=None, help=f"Output folder ({defaults['log_folder']})")
    parser.add_argument(
        "--heartbeat-interval", type=int, default=None, help=f"Seconds between heartbeats ({defaults['heartbeat_interval']})"
    )
    parser.add_argument(
        "--grace-period",
        type=int,
        default=None,
        help=f"Seconds without heartbeat before a trial is failed and retried ({defaults['grace_period']})",
    )
    parser.add_argument(
        "--max-retry", type=int, default=None, help=f"Retries of a dead worker's trial ({defaults['max_retry']})"
    )
    parser.add_argument("--device", default="auto", help="torch device (default: %(default)s)")


def cmd_tune(args: argparse.Namespace) -> int:
    # Options left out (None) keep tuning/study.yml's values
    settings = load_study_settings(**{field.name: getattr(args, field.name, None) for field in fields(StudySettings)})
    _, summary = tune(
        args.env,
        teacher=args.teacher,
        conf_file=args.conf_file,
        hyperparams=parse_hyperparams(args.hyperparams),
        n_timesteps=args.n_timesteps,
        storage=args.storage,
        study_name=args.study_name,
        seed=args.seed,
        settings=settings,
        device=args.device,
    )
    return 0 if "best" in summary else 1
