"""Where a study lives (an Optuna RDB storage), how it samples and prunes, and which studies may be continued."""

import hashlib
import json
import os
import sys
import time
from typing import Any

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from sb3_distill.common.teacher import resolve_model_path
from sb3_distill.hyperparams_opt import search_space, size_search_space
from sb3_distill.recipe import ALGO_NAME, Recipe
from sb3_distill.tuning.objective import weight_search_space
from sb3_distill.tuning.settings import OBJECTIVE_DIRECTIONS, StudySettings

# Where the objective's settings and the search space are recorded in a study, to check a resumed study against
OBJECTIVE_ATTR, SEARCH_SPACE_ATTR = "sb3_distill_objective", "sb3_distill_search_space"


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
    if settings.sampler == "nsga2":
        # Generations of twice the startup trials: a short study gets past its random first generation
        return optuna.samplers.NSGAIISampler(population_size=max(2 * settings.n_startup_trials, 4), seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=settings.n_startup_trials, seed=seed, multivariate=True)


def create_pruner(settings: StudySettings, n_timesteps: int) -> optuna.pruners.BasePruner:
    """
    The study's pruner; the median pruner's warm-up is counted in environment steps, as the reports are. Optuna does
    not prune multi-objective studies (``Trial.report`` refuses them): a size search never prunes.
    """
    if settings.pruner == "none" or settings.multi_objective:
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


def objective_settings(recipe: Recipe, settings: StudySettings) -> dict[str, Any]:
    """
    What makes two trials' values comparable: a study continues only with the same ones. The teacher counts by its
    content, so workers on other machines may keep it elsewhere.
    """
    ignored = {"teacher", "n_timesteps", "policy", *weight_search_space(recipe)}
    multi_objective = {"objectives": list(settings.objectives)} if settings.multi_objective else {}
    return {
        **multi_objective,
        "algo": recipe.algo,
        "env_id": recipe.env_id,
        "n_timesteps": recipe.n_timesteps,
        "eval_episodes": settings.eval_episodes,
        "policy": str(recipe.policy),
        "hyperparams": {key: str(value) for key, value in sorted(recipe.hyperparams.items()) if key not in ignored},
        "teacher_sha256": file_sha256(resolve_model_path(str(recipe.teacher))),
    }


def study_search_space(
    settings: StudySettings | None, performance_alpha: bool = False, temperature: bool = True
) -> dict[str, optuna.distributions.BaseDistribution]:
    """
    The distributions a study samples: alpha (or alpha_0) and temperature, and in a size search the student's
    architecture.

    :param settings: The study's settings (None: a single-objective study)
    :param performance_alpha: The student's alpha is ``"performance"``: the study samples alpha_0 rather than alpha
    :param temperature: The student's term has a temperature (:func:`sb3_distill.hyperparams_opt.has_temperature`)
    """
    if settings is not None and settings.multi_objective:
        return size_search_space(performance_alpha, temperature)
    return dict(search_space(performance_alpha, temperature))


def study_directions(settings: StudySettings) -> list[optuna.study.StudyDirection]:
    """Optuna's directions of a study's objectives, in order."""
    return [optuna.study.StudyDirection[OBJECTIVE_DIRECTIONS[name].upper()] for name in settings.objectives]


def check_search_space(
    study: optuna.Study, storage_name: str, expected: dict[str, optuna.distributions.BaseDistribution] | None = None
) -> None:
    """
    Fail unless every trial of ``study`` was sampled from the study's search space.

    :param study: The loaded study
    :param storage_name: The storage, for the message
    :param expected: The search space (None: :func:`sb3_distill.hyperparams_opt.search_space`)
    """
    expected = expected if expected is not None else study_search_space(None)
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


def check_study(
    study: optuna.Study,
    storage_name: str,
    objective: dict[str, Any],
    settings: StudySettings | None = None,
    performance_alpha: bool = False,
    temperature: bool = True,
) -> None:
    """
    Fail unless an existing study can be continued: same directions (the score maximized, the size minimized), same
    search space, same objective. A new study gets the search space and the objective's settings recorded.

    :param study: The created or loaded study
    :param storage_name: The storage, for messages
    :param objective: :func:`objective_settings`
    :param settings: The study's settings, for its objectives and search space (None: a single-objective study)
    :param performance_alpha: The student's alpha is ``"performance"``: the study samples alpha_0 rather than alpha
    :param temperature: The student's term has a temperature (:func:`sb3_distill.hyperparams_opt.has_temperature`)
    """
    expected = study_directions(settings) if settings is not None else [optuna.study.StudyDirection.MAXIMIZE]
    expected_directions = [direction.name.lower() for direction in expected]
    directions = [direction.name.lower() for direction in study.directions]
    if directions != expected_directions:
        objectives = " ".join(settings.objectives) if settings is not None else "score"
        raise ValueError(
            f"Study {study.study_name!r} in {storage_name!r} has the directions {directions}, but --objectives {objectives} "
            f"needs {expected_directions}: pass another --study-name"
        )
    expected_space = study_search_space(settings, performance_alpha, temperature)
    check_search_space(study, storage_name, expected_space)
    recorded_space = study.user_attrs.get(SEARCH_SPACE_ATTR)
    space = {name: optuna.distributions.distribution_to_json(distribution) for name, distribution in expected_space.items()}
    if recorded_space is not None and recorded_space != space:
        raise ValueError(
            f"Study {study.study_name!r} in {storage_name!r} was made for another search space ({recorded_space}, "
            f"this one is {space}): pass another --study-name (or --storage)"
        )
    # Compare as stored: JSON has no tuples
    current = json.loads(json.dumps(objective))
    recorded = study.user_attrs.get(OBJECTIVE_ATTR)
    if recorded is not None and "algo" not in recorded:
        # Recorded before studies of other students: those were DistilledDQN's
        recorded = {"algo": ALGO_NAME, **recorded}
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
