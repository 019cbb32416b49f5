"""Run (or continue) an Optuna study of DistilledDQN's alpha and temperature."""

import os
import warnings
from pathlib import Path
from typing import Any

import optuna

from sb3_distill.recipe import DEFAULT_ENV
from sb3_distill.tuning.objective import DistillationObjective, make_study_recipe, prepare_teacher
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
)


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
    :param hyperparams: Values that replace the entry's, as the Zoo's ``-params`` gives them
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
    recipe = make_study_recipe(env_id, teacher, conf_file, hyperparams, n_timesteps)
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
            f"teacher {recipe.teacher!r}, sampler {settings.sampler}, pruner {settings.pruner}, evaluations every "
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
