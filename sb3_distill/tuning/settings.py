"""How a study runs: its settings, whose defaults are data (``tuning/study.yml``)."""

import os
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from sb3_distill.config import project_data_dir

STUDY_DEFAULTS_FILE = project_data_dir("tuning") / "study.yml"
SAMPLERS = ("tpe", "random", "nsga2")
PRUNERS = ("median", "none")
# The objective is a mean over at least this many deterministic episodes
MIN_EVAL_EPISODES = 10
# What a trial can report: the student's normalized score (maximized), its parameter count or its batch-1 latency in
# microseconds (minimized); a study optimizes the score alone, or the score and one of the others (its size)
OBJECTIVES = ("score", "params", "latency")
OBJECTIVE_DIRECTIONS = {"score": "maximize", "params": "minimize", "latency": "minimize"}
# --min-score is a normalized score: 1 is the teacher's
MIN_SCORE_RANGE = (0.0, 2.0)


@dataclass
class StudySettings:
    """
    How a study runs: the defaults are ``tuning/study.yml``, which documents each field.

    :param n_trials: Trials this worker runs
    :param n_jobs: Trials run at once in this process (threads); -1 for one per CPU core
    :param sampler: ``tpe``, ``random`` or ``nsga2`` (NSGA-II, for multi-objective studies)
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
    :param objectives: ``("score",)``: the mean return of the student of the entry's size (a single-objective study);
        ``("score", "params")`` or ``("score", "latency")``: a size search, the student's architecture sampled too
    :param min_score: In a size search, the normalized score the smallest student on the Pareto front must reach to
        have its config entry written (None: none written)
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
    objectives: tuple[str, ...] = ("score",)
    min_score: float | None = None

    @property
    def multi_objective(self) -> bool:
        """A size search: the score and the student's size."""
        return len(self.objectives) > 1

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
        self.objectives = tuple(self.objectives)
        unknown = [name for name in self.objectives if name not in OBJECTIVES]
        if unknown:
            raise ValueError(f"Unknown objectives {unknown}: expected score, or score and one of params, latency")
        if self.objectives not in (("score",), ("score", "params"), ("score", "latency")):
            raise ValueError(f"objectives={' '.join(self.objectives)!r}: expected 'score', 'score params' or 'score latency'")
        if self.min_score is not None:
            if not self.multi_objective:
                raise ValueError(
                    f"min_score={self.min_score!r} picks a student on a Pareto front: it needs a multi-objective study "
                    "(--objectives score params, or score latency)"
                )
            low, high = MIN_SCORE_RANGE
            if isinstance(self.min_score, bool) or not low < self.min_score <= high:
                raise ValueError(
                    f"min_score={self.min_score!r} must be a normalized score in ({low:g}, {high:g}] (1 is the teacher's)"
                )
        if not isinstance(self.grace_period, int) or self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                f"grace_period={self.grace_period!r} must be an integer number of seconds > heartbeat_interval="
                f"{self.heartbeat_interval} (else live trials are taken for dead ones)"
            )


def load_study_settings(defaults_file: str | os.PathLike | None = None, **overrides: Any) -> StudySettings:
    """
    The study's settings: ``tuning/study.yml`` (or ``defaults_file``), with the values of ``overrides`` that are not None.

    :param defaults_file: YAML file with every field of :class:`StudySettings` but those with a default
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
    optional = {field.name for field in fields(StudySettings) if field.default is not MISSING}
    missing = sorted(names - set(settings) - optional)
    if missing:
        raise ValueError(f"{str(path)!r} lacks the study settings {missing}")
    return StudySettings(**settings)
