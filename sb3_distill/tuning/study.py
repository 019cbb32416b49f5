"""Run (or continue) an Optuna study of a student's alpha and temperature, or a size search (multi-objective)."""

import os
import signal
import warnings
from pathlib import Path
from typing import Any

import optuna

from sb3_distill.interrupts import SIGNAL_EXIT_STATUS, RunInterrupted, graceful_interrupts
from sb3_distill.common.teacher import Teacher
from sb3_distill.hyperparams_opt import has_temperature
from sb3_distill.recipe import ALGO_NAME, DEFAULT_ENV, Recipe
from sb3_distill.tuning.objective import (
    DistillationObjective,
    ReferenceReturns,
    SizeSearchObjective,
    make_study_recipe,
    measure_references,
    prepare_teacher,
    searches_alpha_0,
)
from sb3_distill.tuning.pareto import REFERENCES_ATTR, write_pareto_report
from sb3_distill.tuning.report import new_report_dir, write_report
from sb3_distill.tuning.settings import StudySettings, load_study_settings
from sb3_distill.tuning.storage import (
    check_study,
    create_pruner,
    create_sampler,
    fail_stale_trials,
    objective_settings,
    open_storage,
    storage_display_name,
    study_directions,
)


def study_references(
    study: optuna.Study, recipe: Recipe, teacher: Teacher, settings: StudySettings, seed: int, device: str
) -> ReferenceReturns:
    """
    The teacher's and random returns of a size search's normalized score: measured by the study's first run and
    recorded in the study, read back by resumed runs and other workers (so that all trials share one scale).

    :param study: The size search
    :param recipe: The student
    :param teacher: The prepared teacher
    :param settings: The study's settings (episodes of the means)
    :param seed: The study's seed
    :param device: The teacher's device
    """
    recorded = study.user_attrs.get(REFERENCES_ATTR)
    if recorded is not None:
        return ReferenceReturns(**recorded)
    references = measure_references(recipe, teacher, settings.eval_episodes, seed, device)
    study.set_user_attr(REFERENCES_ATTR, references.to_dict())
    return references


def tune(
    env_id: str = DEFAULT_ENV,
    algo: str = ALGO_NAME,
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
    Run (or continue) an Optuna study of a student's alpha and temperature (of alpha_0 for a student whose entry has
    ``alpha: performance``; of alpha or alpha_0 alone for the students whose term has no temperature, SAC and TD3,
    :func:`sb3_distill.hyperparams_opt.has_temperature`), then write its report. With
    ``settings.objectives`` ``("score", "params")`` or ``("score", "latency")``, a size search: each trial samples the
    student's hidden layers too and reports its normalized score and its size; the report is the Pareto front
    (:func:`sb3_distill.tuning.pareto.write_pareto_report`).

    Everything is checked before the first trial: the settings, the student's config entry, the teacher against the
    env, the storage URL, and an existing study's search space and objective.

    :param env_id: The env
    :param algo: The student's Zoo name (``distilled_dqn``, ``distilled_qrdqn``, ``distilled_ppo``, ``distilled_sac``,
        ``distilled_td3``)
    :param teacher: Trusted teacher zip or RL Zoo log folder (None: the env's entry's teacher)
    :param conf_file: Zoo-format YAML file with the student (None: ``zoo_configs/<algo>.yml``)
    :param hyperparams: Values that replace the entry's, as the Zoo's ``-params`` gives them
    :param n_timesteps: Environment steps per trial (None: the entry's)
    :param storage: Optuna RDB storage URL (None: ``sqlite:///<log_folder>/studies.db``)
    :param study_name: The study (None: ``<algo>_<env_id>``); an existing one is continued
    :param seed: Seeds the sampler (``seed + trials so far``) and, as ``seed + trial number``, each trial's student
        (None: an unseeded sampler, students seeded by their trial number, so that workers started alike sample
        differently; seeded workers need seeds of their own)
    :param settings: :class:`StudySettings` (None: ``tuning/study.yml``)
    :param device: The students' device
    :return: (the study, the report's summary)
    """
    settings = settings or load_study_settings()
    recipe = make_study_recipe(
        env_id, algo, teacher=teacher, conf_file=conf_file, hyperparams=hyperparams, n_timesteps=n_timesteps
    )
    teacher_model = prepare_teacher(recipe, device)
    if storage is None:
        Path(settings.log_folder).mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(Path(settings.log_folder) / 'studies.db').as_posix()}"
    storage_name = storage_display_name(storage)
    study_name = study_name or f"{algo}_{env_id.replace('/', '-')}"
    with warnings.catch_warnings():
        # Heartbeats, retries and the matplotlib plots are marked experimental by Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            storage=open_storage(storage, settings),
            study_name=study_name,
            pruner=create_pruner(settings, recipe.n_timesteps),
            directions=study_directions(settings),
            load_if_exists=True,
        )
        check_study(
            study,
            storage_name,
            objective_settings(recipe, settings),
            settings,
            searches_alpha_0(recipe),
            has_temperature(algo),
        )
        n_existing = len(study.get_trials(deepcopy=False))
        if n_existing:
            print(f"Continuing study {study_name!r}: {n_existing} trials so far")
        # Seeded after the trials so far, so that a resumed run does not sample its first parameters again
        study.sampler = create_sampler(settings, None if seed is None else seed + n_existing)
        fail_stale_trials(study, settings)
        eval_freq = settings.eval_freq or max(recipe.n_timesteps // settings.n_evaluations, 1)
        objective: DistillationObjective | SizeSearchObjective
        if settings.multi_objective:
            references = study_references(study, recipe, teacher_model, settings, seed or 0, device)
            print(
                f"Size search {study_name!r} in {storage_name}: {settings.n_trials} trials of {algo}, "
                f"{recipe.n_timesteps:,} steps on {env_id}, objectives {' and '.join(settings.objectives)}, teacher "
                f"{recipe.teacher!r} (return {references.teacher_return:.1f}, random {references.random_return:.1f}), "
                f"sampler {settings.sampler}, "
                f"no pruning (Optuna prunes no multi-objective study), final evaluation over {settings.eval_episodes} episodes"
            )
            objective = SizeSearchObjective(
                recipe, teacher_model, references, settings.objectives, settings.eval_episodes, seed or 0, device
            )
        else:
            print(
                f"Study {study_name!r} in {storage_name}: {settings.n_trials} trials of {algo}, {recipe.n_timesteps:,} "
                f"steps on {env_id}, teacher {recipe.teacher!r}, sampler {settings.sampler}, pruner {settings.pruner}, "
                f"evaluations every {eval_freq:,} steps over {settings.eval_episodes} episodes"
            )
            objective = DistillationObjective(recipe, teacher_model, eval_freq, settings.eval_episodes, seed or 0, device)
        interrupted: str | None = None
        with graceful_interrupts() as stop:
            objective.stop = stop
            try:
                # A trial whose training fails (e.g. a NaN loss) is recorded FAIL with its reason; the study goes on
                study.optimize(
                    objective, n_trials=settings.n_trials, n_jobs=settings.n_jobs, catch=(ValueError,), gc_after_trial=True
                )
            except KeyboardInterrupt:  # a second Ctrl-C: Optuna recorded the running trial FAIL
                interrupted = "SIGINT"
            if stop.signal is not None:
                interrupted = stop.signal.name
        print(f"See the study live: optuna-dashboard {storage_name}")
        report = write_pareto_report if settings.multi_objective else write_report
        # A --min-score no trial reaches raises here, after the report is written (the study is kept)
        report_dir = new_report_dir(settings.log_folder, study_name)
        summary = report(study, recipe, settings, storage_name, report_dir)
    if interrupted is not None:
        raise RunInterrupted(
            f"{interrupted}: study {study_name!r} stopped; its finished trials are kept in {storage_name} (the running "
            f"ones recorded FAIL) and reported in {report_dir}; run the same command to continue the study",
            SIGNAL_EXIT_STATUS[signal.Signals[interrupted]],
        )
    return study, summary
