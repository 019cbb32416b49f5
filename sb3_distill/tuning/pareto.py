"""What a size search found: the Pareto front of score against size as a plot and a table, and the smallest student."""

import csv
import json
from pathlib import Path
from typing import Any

import optuna
import yaml
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from sb3_distill.hyperparams_opt import convert_distilled_dqn_params, trial_net_arch
from sb3_distill.recipe import Recipe
from sb3_distill.tuning.report import summarize_trials, train_command_comment, zoo_config_entry
from sb3_distill.tuning.settings import StudySettings

# Where a size search records the teacher's and random returns, measured once for all trials and workers
REFERENCES_ATTR = "sb3_distill_references"
FRONT_FILES = {"plot": "pareto_front.png", "csv": "pareto_front.csv", "json": "pareto_front.json"}
SMALLEST_CONFIG_FILE = "smallest_student.yml"
SIZE_LABELS = {"params": "parameters", "latency": "batch-1 latency (µs, torch, one thread)"}


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front (``study.best_trials``), smallest first."""
    return sorted(study.best_trials, key=lambda trial: (trial.values[1], -trial.values[0], trial.number))


def trial_row(trial: FrozenTrial, references: dict[str, Any]) -> dict[str, Any]:
    """One trial of a size search as a row of the front's table (alpha, or alpha "performance" and alpha_0, temperature)."""
    parameters = int(trial.user_attrs.get("parameters", 0))
    return {
        "trial": trial.number,
        "net_arch": trial_net_arch(trial.params),
        "parameters": parameters,
        "teacher_share": parameters / references["teacher_parameters"],
        "score": trial.values[0],
        "mean_return": trial.user_attrs.get("mean_return"),
        "latency_us": trial.user_attrs.get("latency_us"),
        **convert_distilled_dqn_params(trial.params),
    }


def front_table(rows: list[dict[str, Any]]) -> str:
    """
    The front as printed: one row per trial, smallest first; the weight column is alpha, or alpha_0; the temperature
    column only for a student whose term has one.
    """
    weight = "alpha_0" if "alpha_0" in rows[0] else "alpha"
    temperature = "temperature" in rows[0]
    header = f"{'trial':>6}  {'net_arch':<16}{'parameters':>11}{'of teacher':>12}{'score':>9}{'latency µs':>12}{weight:>8}" + (
        f"{'temperature':>13}" if temperature else ""
    )
    lines = [header]
    for row in rows:
        latency = f"{row['latency_us']:.1f}" if row["latency_us"] is not None else "-"
        lines.append(
            f"{row['trial']:>6}  {row['net_arch']!s:<16}{row['parameters']:>11,}{row['teacher_share']:>12.3%}"
            f"{row['score']:>9.1%}{latency:>12}{row[weight]:>8.3f}" + (f"{row['temperature']:>13.4g}" if temperature else "")
        )
    lines.append("(score: (return - random) / (teacher - random), the teacher = 100%)")
    return "\n".join(lines)


def plot_front(study: optuna.Study, size_objective: str, path: Path) -> None:
    """
    Score against size, log x-axis: the front's trials highlighted and joined, the other complete trials grey, the
    teacher's score as a line at 1.

    :param study: The size search
    :param size_objective: ``params`` or ``latency``
    :param path: The PNG to write
    """
    front = front_trials(study)
    numbers = {trial.number for trial in front}
    others = [
        trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if trial.number not in numbers
    ]
    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    axis.scatter(
        [trial.values[1] for trial in others], [trial.values[0] for trial in others], color="0.7", s=18, label="other trials"
    )
    axis.plot(
        [trial.values[1] for trial in front],
        [trial.values[0] for trial in front],
        marker="o",
        color="tab:red",
        drawstyle="steps-post",
        label="Pareto front",
    )
    for trial in front:
        label = str(trial_net_arch(trial.params))
        axis.annotate(label, (trial.values[1], trial.values[0]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axis.axhline(1.0, color="tab:blue", linestyle="--", label="teacher")
    axis.set_xscale("log")
    axis.set_xlabel(f"student {SIZE_LABELS[size_objective]}")
    axis.set_ylabel("normalized score (teacher = 1)")
    axis.set_title(f"{study.study_name}: {len(front)} trials on the front of {len(front) + len(others)}", fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def smallest_reaching(study: optuna.Study, min_score: float) -> FrozenTrial:
    """
    The smallest student on the front (fewest parameters, or lowest latency) whose score reaches ``min_score``.

    :raises ValueError: No trial reaches it; the message names the best score reached
    """
    qualifying = [trial for trial in front_trials(study) if trial.values[0] >= min_score]
    if qualifying:
        return qualifying[0]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda trial: trial.values[0], default=None)
    reached = f"the best score is {best.values[0]:.1%} (trial {best.number})" if best is not None else "no trial is complete"
    raise ValueError(
        f"No trial of study {study.study_name!r} reaches --min-score {min_score:g} ({min_score:.0%} of the teacher): "
        f"{reached}; the study is kept: run more trials (the same command) or lower --min-score"
    )


def smallest_config(study: optuna.Study, trial: FrozenTrial, recipe: Recipe, min_score: float) -> str:
    """A front trial as a ``zoo_configs`` YAML file, with a header saying where it comes from."""
    entry = zoo_config_entry(recipe, trial.params, trial_net_arch(trial.params))
    header = (
        f"# Smallest student on the Pareto front of Optuna study {study.study_name!r} with a normalized score >= "
        f"{min_score:g}: trial {trial.number}, score {trial.values[0]:.1%}, {trial.user_attrs.get('parameters')} parameters\n"
        + train_command_comment(recipe)
    )
    return header + yaml.safe_dump({recipe.env_id: entry}, sort_keys=False)


def write_pareto_report(
    study: optuna.Study, recipe: Recipe, settings: StudySettings, storage_name: str, output_dir: Path
) -> dict[str, Any]:
    """
    Write what a size search found into ``output_dir``: the front as a PNG, a CSV and a JSON table, printed too;
    with ``settings.min_score`` the smallest front trial that reaches it as a zoo_configs YAML file; ``summary.json``.

    :return: The summary
    :raises ValueError: ``settings.min_score`` is given and no trial reaches it (the other files are written)
    """
    references = study.user_attrs[REFERENCES_ATTR]
    size_objective = settings.objectives[1]
    summary, counts = summarize_trials(
        study, recipe, settings, storage_name, objectives=list(settings.objectives), references=references
    )
    summary["files"] = {}
    error = None
    if counts["COMPLETE"] == 0:
        print("No complete trial yet: no Pareto front to write")
        if settings.min_score is not None:
            error = f"No trial of study {study.study_name!r} is complete: none reaches --min-score {settings.min_score:g}"
    else:
        rows = [trial_row(trial, references) for trial in front_trials(study)]
        summary["front"] = rows
        print(
            f"Pareto front (score against {SIZE_LABELS[size_objective]}; teacher {references['teacher_return']:.1f}, "
            f"random {references['random_return']:.1f}, {references['teacher_parameters']:,} parameters):"
        )
        print(front_table(rows))
        paths = {name: output_dir / file_name for name, file_name in FRONT_FILES.items()}
        plot_front(study, size_objective, paths["plot"])
        with open(paths["csv"], "w", newline="") as file_handler:
            writer = csv.DictWriter(file_handler, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({**row, "net_arch": " ".join(map(str, row["net_arch"]))} for row in rows)
        paths["json"].write_text(json.dumps({"references": references, "front": rows}, indent=2) + "\n")
        summary["files"] = {f"front_{name}": str(path) for name, path in paths.items()}
        if settings.min_score is not None:
            try:
                smallest = smallest_reaching(study, settings.min_score)
            except ValueError as caught:
                error = str(caught)
            else:
                config_file = output_dir / SMALLEST_CONFIG_FILE
                config_file.write_text(smallest_config(study, smallest, recipe, settings.min_score))
                summary["smallest"] = trial_row(smallest, references)
                summary["files"]["smallest_config"] = str(config_file)
                print(
                    f"Smallest student with a score >= {settings.min_score:.0%}: trial {smallest.number}, net_arch "
                    f"{trial_net_arch(smallest.params)}, {summary['smallest']['parameters']:,} parameters "
                    f"({summary['smallest']['teacher_share']:.2%} of the teacher's), score {smallest.values[0]:.1%}: "
                    f"{config_file}"
                )
    if error is not None:
        summary["min_score_error"] = error
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(f"Wrote {output_dir}: " + ", ".join(sorted(path.name for path in output_dir.iterdir())))
    if error is not None:
        raise ValueError(error)
    return summary
