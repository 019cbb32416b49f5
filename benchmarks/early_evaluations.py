"""
Steps to 95% of the teacher on a finer grid early in training, for the runs of ``benchmarks/sample_efficiency.py``.

The sample-efficiency benchmark evaluates every ``EVAL_FREQ[env]`` steps, so a run that reaches 95% of its teacher
between two evaluations is counted at the later one: a student at 95% after 1,300 CartPole steps counts 2,000. This
replays the start of each recorded run: the same arm, seed, settings and budget (so the schedules are the same), stopped
after ``--window`` evaluation periods (default 2), evaluated every ``EVAL_FREQ[env] / --fine`` steps (default 4) over
that window. Evaluation does not change training (its own env, deterministic actions, no draw from the agent's
generators), and the replay checks it run by run: its evaluations at the main grid's steps must equal the record's
returns. A run's steps to 95% is then its first fine-grid evaluation at 95% within the window, else the record's
figure; a replay that departs from its record is reported and its record's figures are kept. Ratios are to the best
scratch arm, as in the main benchmark, with every arm's runs replayed the same way (replay all the arms whose ratio you
quote, the scratch arms included: their figures can only move earlier). A recipe variant's output (made with
``-params``) is replayed with its hyperparameters; its scratch arms, if any, without (as the benchmark ran them).

Each replay writes <output-dir>/runs/<env>/<arm>_seed<seed>.json as it finishes (a rerun skips it).

    python benchmarks/early_evaluations.py --envs CartPole-v1 Acrobot-v1 LunarLander-v3 \
        --arms "distilled, constant alpha" "DQN scratch, student net" "DQN scratch, teacher net"
    python benchmarks/early_evaluations.py --smoke
"""

import json
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/early_evaluations.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, command_line, machine_description, write_csv, write_json
from benchmarks.sample_efficiency import (
    ARMS,
    REACH,
    SMOKE_OVERRIDES,
    arm_overrides,
    derive,
    eval_freq_of,
    fmt_ci,
    record_path,
    summarize,
    train_run,
)
from sb3_distill.report import normalized_score

SOURCE_DIR = "benchmarks/results/sample_efficiency_v2"


def replay_one(job: dict[str, Any]) -> dict[str, Any]:
    """Replay the start of a recorded run on the finer grid; the replay's record is written as it finishes."""
    if Path(job["replay_record"]).exists():
        return json.loads(Path(job["replay_record"]).read_text())
    _, evaluator = train_run(job, fine_freq=job["fine_freq"], fine_until=job["window"], stop_at=job["window"])
    replay = {
        "env_id": job["env_id"],
        "arm": job["arm"],
        "seed": job["seed"],
        "fine_freq": job["fine_freq"],
        "window": job["window"],
        "timesteps": evaluator.timesteps,
        "returns": evaluator.returns,
        "train_seconds": evaluator.seconds,
    }
    write_json(replay, Path(job["replay_record"]))
    return replay


def shared_evaluations(record: dict[str, Any], replay: dict[str, Any]) -> tuple[int, int]:
    """(evaluations of the replay at the record's steps, how many of them returned exactly the record's return)."""
    recorded = dict(zip(record["timesteps"], record["returns"], strict=True))
    shared = [(recorded[step], value) for step, value in zip(replay["timesteps"], replay["returns"], strict=True)
              if step in recorded]  # fmt: skip
    return len(shared), sum(recorded_value == value for recorded_value, value in shared)


def merge(record: dict[str, Any], replay: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """
    The run's figures (``derive``) with steps and seconds to 95% from the replay's finer grid where it reached 95%
    within its window; the record's figures if it did not, or if the replay departed from the record.
    """
    run = derive(record, reference)
    n_shared, n_equal = shared_evaluations(record, replay)
    run.update(shared_evaluations=n_shared, equal_evaluations=n_equal, steps_to_95_main_grid=run["steps_to_95"])
    if n_equal < n_shared:
        return run
    teacher, random = reference["teacher_return"], reference["random_return"]
    for step, value, seconds in zip(replay["timesteps"], replay["returns"], replay["train_seconds"], strict=True):
        if normalized_score(value, teacher, random) >= REACH:
            # An unreached run counts at its budget, past the replay's window
            if step < run["steps_to_95"]:
                run.update(reached_95=True, steps_to_95=step, seconds_to_95=seconds)
            break
    return run


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/early_evaluations")
    parser.add_argument("--source-dir", default=None, help=f"The sample-efficiency output whose runs are replayed "
                        f"(default: {SOURCE_DIR}; --smoke: a smoke run it makes first)")  # fmt: skip
    parser.add_argument("--envs", nargs="+", default=None, help="Envs (default: the source's)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), help="Arms (default: all five)")
    parser.add_argument("--seeds", type=int, default=None, help="Seeds per env and arm (default: the source's)")
    parser.add_argument("--window", type=int, default=2, help="Evaluation periods replayed (default: %(default)s)")
    parser.add_argument("--fine", type=int, default=4, help="Evaluations per period (default: %(default)s)")
    parser.add_argument("--n-jobs", type=int, default=2, help="Replays in parallel, one CPU thread each (default: 2)")
    args = parser.parse_args()
    output_dir = Path(args.output_dir)
    source_dir = Path(args.source_dir or SOURCE_DIR)
    if args.smoke and args.source_dir is None:
        # The main benchmark's smoke run first, as the source
        source_dir = output_dir / "source"
        subprocess.run([sys.executable, str(Path(__file__).parent / "sample_efficiency.py"), "--smoke", "--output-dir",
                        str(source_dir)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    start = time.perf_counter()
    summary = json.loads((source_dir / "summary.json").read_text())
    references = summary["references"]
    envs = args.envs or list(references)
    # Not summary["arms"]: the source's last command, which may have run some arms only
    arms = args.arms
    seeds = args.seeds or summary["seeds"]
    missing = [env_id for env_id in envs if env_id not in references]
    if missing:
        parser.error(f"{source_dir} has no runs of {missing}: it has {list(references)}")
    # A recipe variant's output (-params) gave its distilled arms other hyperparameters: theirs again, as it did
    hyperparams = summary["hyperparams"]

    # The main benchmark's evaluation periods
    eval_freqs = {env_id: eval_freq_of(env_id, args.smoke) for env_id in envs}
    jobs, records = [], {}
    for env_id in envs:
        eval_freq = eval_freqs[env_id]
        for arm in arms:
            for seed in range(seeds):
                path = record_path(source_dir / "runs", env_id, arm, seed)
                if not path.exists():
                    parser.error(f"{path} does not exist: run benchmarks/sample_efficiency.py for this run first")
                records[(env_id, arm, seed)] = record = json.loads(path.read_text())
                # The record's job: its budget (the configured one; the smoke source's is not), the same evaluation
                # episodes and seeds
                jobs.append({
                    "env_id": env_id, "arm": arm, "seed": seed, "budget": record["budget"] if args.smoke else None,
                    "reference": references[env_id],
                    "eval_freq": eval_freq, "eval_episodes": 2 if args.smoke else 10,
                    "overrides": arm_overrides(arm, SMOKE_OVERRIDES if args.smoke else {}, hyperparams),
                    "fine_freq": eval_freq // args.fine, "window": args.window * eval_freq,
                    "replay_record": str(record_path(output_dir / "runs", env_id, arm, seed)),
                })  # fmt: skip
    todo = [job for job in jobs if not Path(job["replay_record"]).exists()]
    print(f"{len(jobs)} runs: {len(todo)} to replay ({args.n_jobs} at a time), {len(jobs) - len(todo)} read back")
    replays = {}
    with ProcessPoolExecutor(max_workers=args.n_jobs) as executor:
        futures = [executor.submit(replay_one, job) for job in jobs]
        for future in as_completed(futures):
            replay = future.result()
            replays[(replay["env_id"], replay["arm"], replay["seed"])] = replay

    runs = [merge(records[key], replays[key], references[key[0]]) for key in records]
    departed = [run for run in runs if run["equal_evaluations"] < run["shared_evaluations"]]
    n_shared = sum(run["shared_evaluations"] for run in runs)
    print(f"Replays: {n_shared - sum(r['shared_evaluations'] - r['equal_evaluations'] for r in runs)} of {n_shared} "
          f"evaluations at the main grid's steps equal the records'; {len(departed)} replays departed from their record"
          + "".join(f"\n  departed: {r['env_id']} / {r['arm']} / seed {r['seed']}" for r in departed))  # fmt: skip
    rows = []
    print(f"\n{'env':<16}{'arm':<40}{'steps to 95% (main grid)':>26}{'(fine grid)':>13}{'steps ratio [95% CI]':>24}")
    for env_id in envs:
        env_runs = [run for run in runs if run["env_id"] == env_id]
        main_grid = {row["arm"]: row for row in summarize(
            env_id, arms, [{**run, "steps_to_95": run["steps_to_95_main_grid"]} for run in env_runs],
            references[env_id]["teacher_parameters"])}  # fmt: skip
        for row in summarize(env_id, arms, env_runs, references[env_id]["teacher_parameters"]):
            row["steps_to_95_iqm_main_grid"] = main_grid[row["arm"]]["steps_to_95_iqm"]
            row["fine_freq"], row["window"] = eval_freqs[env_id] // args.fine, args.window * eval_freqs[env_id]
            rows.append(row)
            ratio = "n/a" if row["steps_ratio_iqm"] is None else fmt_ci(
                row["steps_ratio_iqm"], row["steps_ratio_ci_low"], row["steps_ratio_ci_high"])  # fmt: skip
            print(f"{env_id:<16}{row['arm']:<40}{row['steps_to_95_iqm_main_grid']:>26,.0f}{row['steps_to_95_iqm']:>13,.0f}"
                  f"{ratio:>24}")  # fmt: skip
    write_csv(rows, output_dir / "results.csv")
    write_csv([{key: value for key, value in run.items() if key != "curve"} for run in runs], output_dir / "runs.csv")
    write_json({"command": command_line(), "machine": machine_description(), "source": str(source_dir),
                "window_periods": args.window, "evaluations_per_period": args.fine, "replays_departed": len(departed),
                "results": rows, "wall_seconds": round(time.perf_counter() - start, 1)},
               output_dir / "summary.json")  # fmt: skip
    print(f"\nWrote {output_dir}/results.csv, runs.csv, summary.json")


if __name__ == "__main__":
    main()
