"""
Optuna studies of a student's alpha and temperature: resumable, pruned, and spread over many workers.

    python tuning/tune_distill.py --env CartPole-v1 --n-trials 50 --n-timesteps 10000
    sb3-distill tune --env CartPole-v1 --storage postgresql://user:password@host/optuna --study-name cartpole
    sb3-distill tune --algo distilled_sac --env Pendulum-v1 --n-trials 20

Every student can be tuned (``--algo``: ``distilled_dqn``, the default, ``distilled_qrdqn``, ``distilled_ppo``,
``distilled_sac``, ``distilled_td3``), its entry read from ``zoo_configs/<algo>.yml``; the studies of SAC and TD3 students,
whose terms have no temperature, search alpha alone (:func:`sb3_distill.hyperparams_opt.has_temperature`).

A study lives in an Optuna RDB storage: a SQLite file by default, PostgreSQL (or any server SQLAlchemy speaks to)
to spread it over machines. Running the same command again continues the study, and every worker given the same
storage URL and study name adds its trials to it. A running trial records heartbeats; a worker killed mid-trial stops
sending them, and after the grace period the next trial started by any worker marks its trial FAIL and enqueues it
again (Optuna's ``RetryHeartbeatStaleTrialCallback``). The search space is the Zoo's ``-optimize`` one,
:func:`sb3_distill.hyperparams_opt.distillation_sampler`; the study's defaults are data, ``tuning/study.yml``.
A student whose entry has ``alpha: performance`` (QDagger's weight) keeps it, and its studies search ``alpha_0``.

- ``settings``: :class:`StudySettings` and ``tuning/study.yml``
- ``objective``: the student of every trial, the objective and its pruning callback
- ``storage``: storages, samplers, pruners, and the checks that a study may be continued
- ``report``: the best trial as a Zoo config entry, Optuna's plots, the summary
- ``pareto``: a size search's Pareto front (plot, table) and its smallest student reaching ``--min-score``
- ``study``: :func:`tune`, which puts them together
"""

from sb3_distill.tuning.objective import DistillationObjective, SizeSearchObjective, make_study_recipe
from sb3_distill.tuning.pareto import REFERENCES_ATTR, smallest_reaching, write_pareto_report
from sb3_distill.tuning.report import write_report
from sb3_distill.tuning.settings import (
    MIN_EVAL_EPISODES,
    OBJECTIVES,
    PRUNERS,
    SAMPLERS,
    StudySettings,
    load_study_settings,
)
from sb3_distill.tuning.storage import OBJECTIVE_ATTR, fail_stale_trials, open_storage
from sb3_distill.tuning.study import tune

__all__ = [
    "MIN_EVAL_EPISODES",
    "OBJECTIVES",
    "OBJECTIVE_ATTR",
    "PRUNERS",
    "REFERENCES_ATTR",
    "SAMPLERS",
    "DistillationObjective",
    "SizeSearchObjective",
    "StudySettings",
    "fail_stale_trials",
    "load_study_settings",
    "make_study_recipe",
    "open_storage",
    "smallest_reaching",
    "tune",
    "write_pareto_report",
    "write_report",
]
