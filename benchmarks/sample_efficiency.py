"""
Sample efficiency and compression, measured side by side in one run.

For each env, over several seeds: the distilled student (zoo_configs/distilled_dqn.yml), DQN from scratch with
the same student network and settings, and DQN from scratch with the teacher's network and the Zoo's settings
(zoo_configs/dqn.yml). Every agent is evaluated every few thousand steps. Prints a table per env and writes
results.csv, curves.csv, learning_curves.png and summary.json to --output-dir.

Scores are normalized between a random policy (0) and the teacher (1): "95% of the teacher's return" means
random + 0.95 * (teacher - random), which also makes sense for negative returns (Acrobot, LunarLander).

    python benchmarks/sample_efficiency.py                      # full run (hours on a 2-core CPU)
    python benchmarks/sample_efficiency.py --smoke              # seconds: checks the script works
"""

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/sample_efficiency.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch as th
from matplotlib.figure import Figure

from benchmarks.common import (
    DISTILLED,
    METHODS,
    SCRATCH_STUDENT,
    SCRATCH_TEACHER,
    base_parser,
    build_agent,
    command_line,
    machine_description,
    mean_return,
    reference_returns,
    write_csv,
    write_json,
)
from sb3_distill.report import count_parameters, normalized_score

DEFAULT_ENVS = ("CartPole-v1", "Acrobot-v1", "LunarLander-v3")
# Evaluation period per env (environment steps)
EVAL_FREQ = {"CartPole-v1": 1_000, "Acrobot-v1": 2_000, "LunarLander-v3": 4_000}
SMOKE_OVERRIDES = {"learning_starts": 50, "buffer_size": 1_000, "train_freq": 4, "gradient_steps": 1, "batch_size": 16}


def run_one(env_id: str, method: str, seed: int, budget: int | None, eval_freq: int, eval_episodes: int,
            overrides: dict[str, Any], record: Path) -> dict[str, Any]:  # fmt: skip
    """Train one agent, evaluating it every ``eval_freq`` steps; the record is saved so a rerun can skip it."""
    if record.exists():
        return json.loads(record.read_text())
    th.set_num_threads(1)
    model, configured_budget = build_agent(method, env_id, seed, overrides)
    budget = budget or configured_budget
    timesteps, returns = [0], [mean_return(model, env_id, eval_episodes, seed + 10_000)[0]]
    start = time.perf_counter()
    while model.num_timesteps < budget:
        model.learn(min(eval_freq, budget - model.num_timesteps), reset_num_timesteps=False)
        timesteps.append(model.num_timesteps)
        returns.append(mean_return(model, env_id, eval_episodes, seed + 10_000)[0])
    result = {
        "env_id": env_id,
        "method": method,
        "seed": seed,
        "parameters": count_parameters(model.q_net),
        "timesteps": timesteps,
        "returns": returns,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(result, record)
    return result


def steps_to_reach(result: dict[str, Any], threshold: float) -> float:
    """First evaluated step at which the mean return reached ``threshold`` (inf if never)."""
    for step, value in zip(result["timesteps"], result["returns"], strict=True):
        if value >= threshold:
            return float(step)
    return float("inf")


def summarize(env_id: str, reference: dict[str, Any], results: list[dict[str, Any]], reach: float) -> list[dict[str, Any]]:
    teacher, random = reference["teacher_return"], reference["random_return"]
    threshold = random + reach * (teacher - random)
    rows = []
    for method in METHODS:
        runs = [result for result in results if result["method"] == method]
        if not runs:
            continue
        finals = np.array([run["returns"][-1] for run in runs])
        steps = np.array([steps_to_reach(run, threshold) for run in runs])
        median_steps = float(np.median(steps))
        rows.append({
            "env_id": env_id,
            "method": method,
            "parameters": runs[0]["parameters"],
            "parameter_ratio": runs[0]["parameters"] / reference["teacher_parameters"],
            "budget": max(run["timesteps"][-1] for run in runs),
            "seeds": len(runs),
            "final_return_mean": float(finals.mean()),
            "final_return_std": float(finals.std()),
            "final_score_pct": 100 * normalized_score(float(finals.mean()), teacher, random),
            f"median_steps_to_{round(100 * reach)}pct": median_steps,
            "seeds_reached": int(np.isfinite(steps).sum()),
            "teacher_return": teacher,
            "random_return": random,
        })  # fmt: skip
    return rows


def format_table(env_id: str, reference: dict[str, Any], rows: list[dict[str, Any]], reach: float) -> str:
    key = f"median_steps_to_{round(100 * reach)}pct"
    lines = [
        f"{env_id}: teacher {reference['teacher_parameters']:,} parameters, return {reference['teacher_return']:.1f}"
        f" +/- {reference['teacher_std']:.1f}; random policy {reference['random_return']:.1f}",
        f"{'method':<27}{'params':>8}{'ratio':>8}{'budget':>9}{'final return':>16}{'% teacher':>11}"
        f"{f'median steps to {round(100 * reach)}%':>24}{'reached':>9}",
    ]
    for row in rows:
        steps = f"{row[key]:,.0f}" if np.isfinite(row[key]) else f"not reached (>{row['budget']:,})"
        lines.append(
            f"{row['method']:<27}{row['parameters']:>8,}{row['parameter_ratio']:>8.2%}{row['budget']:>9,}"
            f"{row['final_return_mean']:>9.1f} +/-{row['final_return_std']:>5.1f}{row['final_score_pct']:>10.1f}%"
            f"{steps:>24}{row['seeds_reached']:>5}/{row['seeds']}"
        )
    return "\n".join(lines)


def goals(env_id: str, reference: dict[str, Any], results: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[str]:
    """The issue's goals, checked on this run's figures."""
    by_method = {row["method"]: row for row in rows}
    if DISTILLED not in by_method:
        return []
    student = by_method[DISTILLED]
    teacher, random = reference["teacher_return"], reference["random_return"]
    if env_id == "CartPole-v1":
        threshold = random + 0.975 * (teacher - random)
        students = [result for result in results if result["method"] == DISTILLED]
        within = sum(steps_to_reach(result, threshold) <= 10_000 for result in students)
        met = student["parameter_ratio"] <= 0.01 and within >= 4 and len(students) >= 5
        return [
            f"goal CartPole-v1: student with <= 1% of the parameters ({student['parameter_ratio']:.2%}) reaches >= 97.5% "
            f"of the teacher's return within 10k steps in >= 4 of 5 seeds: {within}/{len(students)} seeds -> "
            f"{'MET' if met else 'NOT MET'}"
        ]
    key = "median_steps_to_95pct"
    baselines = [by_method[method][key] for method in (SCRATCH_STUDENT, SCRATCH_TEACHER) if method in by_method]
    if not baselines:
        return []
    fastest_baseline = min(baselines)
    ratio = student[key] / fastest_baseline if np.isfinite(fastest_baseline) else 0.0
    bound = (
        ""
        if np.isfinite(fastest_baseline)
        else f" (baselines did not reach it within their budgets; ratio < {student[key] / max(r['budget'] for r in rows):.2f})"
    )
    met = student["parameter_ratio"] <= 0.10 and np.isfinite(student[key]) and ratio <= 0.2
    return [
        f"goal {env_id}: student with <= 10% of the parameters ({student['parameter_ratio']:.2%}) reaches 95% of the "
        f"teacher's return in <= 1/5 of the steps the from-scratch baselines need: student {student[key]:,.0f} vs "
        f"fastest baseline {fastest_baseline:,.0f} steps, ratio {ratio:.2f}{bound} -> {'MET' if met else 'NOT MET'}"
    ]


def plot(env_ids: list[str], references: dict[str, dict], results: list[dict[str, Any]], path: Path) -> None:
    figure = Figure(figsize=(5.5 * len(env_ids), 4))
    axes = figure.subplots(1, len(env_ids), squeeze=False)
    for axis, env_id in zip(axes[0], env_ids, strict=True):
        for method in METHODS:
            runs = [result for result in results if result["env_id"] == env_id and result["method"] == method]
            if not runs:
                continue
            length = min(len(run["returns"]) for run in runs)
            steps = np.array(runs[0]["timesteps"][:length])
            returns = np.array([run["returns"][:length] for run in runs])
            mean = returns.mean(axis=0)
            # 95% confidence band of the mean over seeds (normal approximation)
            half_width = 1.96 * returns.std(axis=0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
            axis.plot(steps, mean, label=f"{method} ({runs[0]['parameters']:,} params)")
            axis.fill_between(steps, mean - half_width, mean + half_width, alpha=0.2)
        axis.axhline(references[env_id]["teacher_return"], color="black", linestyle="--", label="teacher")
        axis.set_xlim(left=0)
        axis.set_title(env_id)
        axis.set_xlabel("environment steps")
        axis.set_ylabel("mean evaluation return")
        axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/sample_efficiency")
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--seeds", type=int, default=5, help="Seeds per env and method (default: %(default)s)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="Episodes per evaluation (default: %(default)s)")
    parser.add_argument("--baseline-steps", type=int, default=None, help="Budget of the from-scratch runs (default: Zoo's)")
    parser.add_argument("--student-steps", type=int, default=None, help="Budget of the students (default: config's)")
    parser.add_argument("--n-jobs", type=int, default=2, help="Runs in parallel, one CPU thread each (default: %(default)s)")
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    if args.smoke:
        args.envs, args.seeds, args.eval_episodes = args.envs[:1], 1, 2
        args.baseline_steps = args.student_steps = 300
        overrides = SMOKE_OVERRIDES
    output_dir = Path(args.output_dir)
    runs_dir = output_dir / "runs"

    jobs = []
    for env_id in args.envs:
        eval_freq = 100 if args.smoke else EVAL_FREQ.get(env_id, 2_000)
        for method in METHODS:
            budget = args.student_steps if method == DISTILLED else args.baseline_steps
            for seed in range(args.seeds):
                record = runs_dir / env_id / f"{method.replace(' ', '_').replace(',', '')}_seed{seed}.json"
                jobs.append((env_id, method, seed, budget, eval_freq, args.eval_episodes, overrides, record))
    print(f"{len(jobs)} runs ({args.n_jobs} at a time); finished ones are read back from {runs_dir}")
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.n_jobs) as executor:
        results = list(executor.map(run_one, *zip(*jobs, strict=True)))
    references = {env_id: reference_returns(env_id, 20 if not args.smoke else 2, 123) for env_id in args.envs}

    all_rows, goal_lines = [], []
    for env_id in args.envs:
        env_results = [result for result in results if result["env_id"] == env_id]
        rows = summarize(env_id, references[env_id], env_results, reach=0.95)
        all_rows += rows
        print("\n" + format_table(env_id, references[env_id], rows, reach=0.95))
        goal_lines += goals(env_id, references[env_id], env_results, rows)
    print("\n" + "\n".join(goal_lines))
    write_csv(all_rows, output_dir / "results.csv")
    write_csv(
        [{"env_id": r["env_id"], "method": r["method"], "seed": r["seed"], "timesteps": t, "return": v}
         for r in results for t, v in zip(r["timesteps"], r["returns"], strict=True)],
        output_dir / "curves.csv",
    )  # fmt: skip
    plot(args.envs, references, results, output_dir / "learning_curves.png")
    write_json(
        {"command": command_line(), "machine": machine_description(), "references": references, "goals": goal_lines,
         "wall_seconds": round(time.perf_counter() - start, 1), "results": all_rows},
        output_dir / "summary.json",
    )  # fmt: skip
    print(f"\nWrote {output_dir}/results.csv, curves.csv, learning_curves.png, summary.json")


if __name__ == "__main__":
    main()
