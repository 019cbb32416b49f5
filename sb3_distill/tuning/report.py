"""What a study found: the best trial as a Zoo config entry, Optuna's plots and a summary."""

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.trial import TrialState

from sb3_distill.common.teacher import resolve_model_path
from sb3_distill.hyperparams_opt import convert_distilled_dqn_params
from sb3_distill.recipe import Recipe, _override_net_arch, next_run_dir
from sb3_distill.tuning.objective import weight_search_space
from sb3_distill.tuning.settings import StudySettings

PLOT_FILES = {
    "optimization_history": "optimization_history.png",
    "param_importances": "param_importances.png",
    "contour": "contour_alpha_temperature.png",
}


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


def best_config_file_name(recipe: Recipe) -> str:
    """The best trial's config file: ``<algo>.yml``, as ``zoo_configs/`` names the students' configs."""
    return f"{recipe.algo}.yml"


def train_command_comment(recipe: Recipe) -> str:
    """The comment lines of a written config that say how to train its student with the Zoo."""
    return (
        f"# after {recipe.n_timesteps} steps. Train it with\n"
        f"#   python -m sb3_distill.zoo train --algo {recipe.algo} --env {recipe.env_id} --conf-file <this file>\n"
    )


def zoo_config_entry(recipe: Recipe, params: dict[str, Any], net_arch: list[int] | None = None) -> dict[str, Any]:
    """
    A trial's student as a ``zoo_configs`` entry: the recipe's entry with the trial's alpha and temperature (or
    ``alpha: performance`` with the trial's alpha_0; no temperature for a student whose term has none; and hidden
    layers, which an actor-critic student's actor and critic both get), the study's budget and the
    teacher as an absolute path, as YAML reads it back.

    :param recipe: The study's student
    :param params: The trial's params
    :param net_arch: The trial's hidden layers (None: the entry's)
    """
    entry: dict[str, Any] = {"teacher": str(resolve_model_path(str(recipe.teacher)).resolve())}
    entry.update(convert_distilled_dqn_params(params))
    entry.update({key: value for key, value in recipe.hyperparams.items() if key not in entry})
    if net_arch is not None:
        other_kwargs = set(recipe.model_kwargs.get("policy_kwargs") or {}) - {"net_arch"}
        # The Zoo evaluates the string; other policy kwargs are kept as the entry wrote them
        written = entry.get("policy_kwargs")
        entry["policy_kwargs"] = _override_net_arch(written if other_kwargs else None, net_arch)
    entry["n_timesteps"] = recipe.n_timesteps
    # As YAML reads it back: -params values such as tuples become lists
    return json.loads(json.dumps(entry, default=str))


def best_trial_config(study: optuna.Study, recipe: Recipe, storage_name: str, eval_episodes: int) -> str:
    """
    The best trial as a ``zoo_configs`` YAML file (``<algo>.yml``): the student's entry with the best alpha and
    temperature, the study's budget and the teacher as an absolute path.
    """
    best = study.best_trial
    entry = zoo_config_entry(recipe, best.params)
    header = (
        f"# Best trial ({best.number}) of Optuna study {study.study_name!r} in {storage_name}: mean return {best.value:.2f} "
        f"over {eval_episodes} deterministic episodes\n" + train_command_comment(recipe)
    )
    return header + yaml.safe_dump({recipe.env_id: entry}, sort_keys=False)


def plot_study(study: optuna.Study, output_dir: Path, recipe: Recipe) -> tuple[dict[str, Path], dict[str, str]]:
    """
    Optuna's matplotlib plots of a study: optimization history, parameter importances (PED-ANOVA) and the
    alpha x temperature landscape (contour; alpha_0 x temperature for a performance-based alpha; none for a student
    whose term has no temperature).

    :param study: The study
    :param output_dir: Where the PNGs go
    :param recipe: The study's student, for what its trials sampled
    :return: (the PNGs written by name, the reason for each plot not made)
    """
    # Optuna draws with pyplot: the user's backend is left as it is, and each figure is closed once saved
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    searched = list(weight_search_space(recipe))
    written: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    if len(searched) < 2:
        skipped["contour"] = f"the study searches {searched[0]} alone ({recipe.algo}'s term has no temperature)"
    if n_complete < 2:
        reason = f"needs at least 2 complete trials, the study has {n_complete}"
        skipped["param_importances"] = reason
        skipped.setdefault("contour", reason)
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
        "contour": lambda: optuna_plots.plot_contour(study, params=searched),
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


def summarize_trials(
    study: optuna.Study, recipe: Recipe, settings: StudySettings, storage_name: str, **extra: Any
) -> tuple[dict[str, Any], dict[str, int]]:
    """
    The head of a study's ``summary.json`` (study, storage, env, budget, trial counts by state), printed in one line.

    :param extra: More entries, placed before the trial counts
    :return: (the summary, the number of trials in each state by name)
    """
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(trial.state == state for trial in trials) for state in TrialState}
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": storage_name,
        "algo": recipe.algo,
        "env_id": recipe.env_id,
        "n_timesteps": recipe.n_timesteps,
        "eval_episodes": settings.eval_episodes,
        **extra,
        "trials": {state: count for state, count in counts.items() if count},
    }
    print(f"\nStudy {study.study_name!r} in {storage_name}: {len(trials)} trials ({summary['trials']})")
    return summary, counts


def write_report(
    study: optuna.Study, recipe: Recipe, settings: StudySettings, storage_name: str, output_dir: Path
) -> dict[str, Any]:
    """
    Write what a study found into ``output_dir``: the best trial as a zoo_configs YAML file (``<algo>.yml``), the plots
    and ``summary.json``; print the best alpha and temperature.

    :return: The summary
    """
    summary, counts = summarize_trials(study, recipe, settings, storage_name)
    if counts["COMPLETE"] == 0:
        print("No complete trial yet: no best parameters to write")
        summary["files"], summary["skipped"] = {}, {"best": "no complete trial"}
    else:
        best = study.best_trial
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params, "user_attrs": best.user_attrs}
        config_file = output_dir / best_config_file_name(recipe)
        config_file.write_text(best_trial_config(study, recipe, storage_name, settings.eval_episodes))
        plots, summary["skipped"] = plot_study(study, output_dir, recipe)
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
