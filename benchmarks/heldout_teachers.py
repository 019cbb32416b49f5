"""
Held-out teachers: the recipe of zoo_configs/distilled_dqn.yml on teachers it was never tuned on.

Per env, three extra DQN teachers trained by the project's own ``sb3-distill teacher`` command (in a subprocess): seeds
2 and 3 with zoo_configs/dqn.yml, and seed 4 with the RL Zoo's own hyperparams/dqn.yml (its settings and network), in
``<output-dir>/teachers/<env>_dqn_seed<S>[_zoo].zip`` (+ .json); benchmark data, not part of the package. The shipped
teachers (zoo_configs/teachers/) were trained with seed 1 (CartPole-v1) or 0 (the others).

Per env and held-out teacher, the recipe's default arm ("distilled, constant alpha": the env's entry unchanged except
its teacher) runs for ``--seeds`` seeds with benchmarks/sample_efficiency.py's machinery (same evaluations, final score
over 20 episodes, records), into ``<output-dir>/<env>/<teacher>/``. Scores are normalized between a random policy (0)
and THAT teacher (1), both measured over 100 deterministic episodes into the folder's references.json (as
sample_efficiency.py measures the shipped teacher's).

The table (summary.csv, summary.json, printed): per env and teacher, the teacher's return, the student's parameters
and their share of the teacher's, the final-score IQM with its 95% stratified bootstrap CI (rliable), the lowest
single-run final score, the runs below 0.90, the steps to 95% of the teacher (IQM, unreached runs at their budget);
the held-out teachers together (runs x teachers, the bootstrap stratified by teacher); and the shipped teacher's row,
read from benchmarks/results/sample_efficiency_v2/ (its "distilled, constant alpha" runs). Every stage is resumable:
a finished teacher (its .json) and a finished run (its record) are skipped.

    python benchmarks/heldout_teachers.py                                   # every stage, the four envs, 10 seeds
    python benchmarks/heldout_teachers.py --envs CartPole-v1 Acrobot-v1 --stage teachers --n-jobs 2
    python benchmarks/heldout_teachers.py --envs MountainCar-v0 --stage students
    python benchmarks/heldout_teachers.py --stage table                     # aggregate what is recorded
    python benchmarks/heldout_teachers.py --smoke                           # seconds: checks the script works
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/heldout_teachers.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from rl_zoo3.utils import StoreDict

from stable_baselines3 import DQN

from benchmarks.common import (
    command_line,
    iqm_ci,
    machine_description,
    mean_return,
    reference_returns,
    write_csv,
    write_json,
)
from benchmarks.sample_efficiency import (
    CONSTANT,
    SMOKE_OVERRIDES,
    derive,
    eval_freq_of,
    fmt_ci,
    plot_curves,
    record_path,
    run_all,
    summarize,
)
from sb3_distill.report import normalized_score

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "heldout"
SHIPPED_RESULTS = ROOT / "benchmarks" / "results" / "sample_efficiency_v2"
SHIPPED_TEACHERS = ROOT / "zoo_configs" / "teachers"
DEFAULT_ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3")
PROJECT_CONF = "zoo_configs/dqn.yml"
ZOO_CONF = "rl_zoo3"  # the RL Zoo's own hyperparams/dqn.yml
# (seed, config, name suffix) of the held-out teachers
HELDOUT_TEACHERS = ((2, PROJECT_CONF, ""), (3, PROJECT_CONF, ""), (4, ZOO_CONF, "_zoo"))
SHIPPED = "shipped"
HELDOUT_ALL = "held-out, all"
# The target (#25): IQM >= 1.00, CI low >= 0.95, no single run below 0.90
TARGET_IQM, TARGET_CI_LOW, TARGET_MIN = 1.0, 0.95, 0.90
REFERENCE_EPISODES, REFERENCE_SEED = 100, 123
SMOKE_TEACHER_STEPS = 500
SMOKE_TEACHER_PARAMS = ("learning_starts:50", "buffer_size:1000", "train_freq:4", "gradient_steps:1", "batch_size:16")


def zoo_conf_file() -> str:
    """The RL Zoo's own hyperparams/dqn.yml, in the installed rl_zoo3."""
    import rl_zoo3

    return os.path.join(os.path.dirname(rl_zoo3.__file__), "hyperparams", "dqn.yml")


def display_path(path: str | Path) -> str:
    """A path relative to the repository when under it (records stay free of machine paths)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def teacher_name(env_id: str, seed: int, suffix: str) -> str:
    return f"{env_id.replace('/', '-')}_dqn_seed{seed}{suffix}"


def teacher_specs(env_id: str, teachers_dir: Path, shipped: bool = False) -> list[dict[str, Any]]:
    """The env's held-out teachers (name, seed, config and zip path), after the shipped one with ``shipped``."""
    specs = [
        {"env_id": env_id, "name": teacher_name(env_id, seed, suffix), "seed": seed, "conf": conf,
         "zip": teachers_dir / f"{teacher_name(env_id, seed, suffix)}.zip"}
        for seed, conf, suffix in HELDOUT_TEACHERS
    ]  # fmt: skip
    if shipped:
        name = f"{env_id.replace('/', '-')}_dqn"
        seed = json.loads((SHIPPED_TEACHERS / f"{name}.json").read_text())["seed"]
        specs.insert(0, {"env_id": env_id, "name": SHIPPED, "seed": seed, "conf": PROJECT_CONF,
                         "zip": SHIPPED_TEACHERS / f"{name}.zip"})  # fmt: skip
    return specs


def cli_executable() -> list[str]:
    """The project's ``sb3-distill`` command (the one beside this Python, else on PATH, else ``python -m``)."""
    beside = Path(sys.executable).parent / "sb3-distill"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("sb3-distill")
    return [found] if found else [sys.executable, "-m", "sb3_distill"]


def train_teacher(spec: dict[str, Any], smoke: bool, log: Any) -> str:
    """Train one held-out teacher with ``sb3-distill teacher`` (skipped when its .json exists); a line for the log."""
    zip_path: Path = spec["zip"]
    json_path = zip_path.with_suffix(".json")
    if json_path.exists():
        return f"  {spec['name']}: already trained, skipped"
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    # Paths relative to the repository (the working directory) where they can be: the teacher's .json records them
    conf = zoo_conf_file() if spec["conf"] == ZOO_CONF else spec["conf"]
    command = [*cli_executable(), "teacher", "--env", spec["env_id"], "--seed", str(spec["seed"]), "--conf-file", conf,
               "-o", display_path(zip_path), "--no-progress-bar", "--force"]  # fmt: skip
    if smoke:
        command += ["-n", str(SMOKE_TEACHER_STEPS), "--eval-episodes", "2", "-params", *SMOKE_TEACHER_PARAMS]
    log(f"  {spec['name']}: training ({' '.join(command[1:])})")
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                               env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})  # fmt: skip
    if completed.returncode != 0:
        raise RuntimeError(f"{spec['name']}: sb3-distill teacher failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    evaluation = json.loads(json_path.read_text())["evaluation"]
    return (f"  {spec['name']}: return {evaluation['mean_return']:.1f} +/- {evaluation['std_return']:.1f} "
            f"({time.perf_counter() - start:.0f} s)")  # fmt: skip


def teacher_references(env_id: str, teacher_path: Path, n_episodes: int) -> dict[str, Any]:
    """
    The teacher's and a random policy's mean returns and the teacher's size, as benchmarks/common.py's
    ``reference_returns`` measures the shipped teacher's (same seed), for the given teacher.
    """
    references = reference_returns(env_id, n_episodes, REFERENCE_SEED, teacher_path=teacher_path)
    return {**references, "teacher_path": display_path(teacher_path), "episodes": n_episodes}


def load_teacher_references(env_id: str, teacher_path: Path, n_episodes: int, path: Path) -> dict[str, Any]:
    """The folder's references.json ({env: reference}, as sample_efficiency.py's), measured once for this teacher."""
    references = json.loads(path.read_text()) if path.exists() else {}
    reference = references.get(env_id)
    if reference is not None and reference["episodes"] == n_episodes:
        if Path(reference["teacher_path"]).name != teacher_path.name:
            raise ValueError(f"{path}: measured for {reference['teacher_path']}, not {teacher_path}")
        return reference
    references[env_id] = teacher_references(env_id, teacher_path, n_episodes)
    write_json(references, path)
    return references[env_id]


def teacher_as_student(
    spec: dict[str, Any], reference: dict[str, Any], seeds: int, final_episodes: int, path: Path
) -> dict[str, Any]:
    """
    The ceiling of imitation: the teacher itself scored as a student is (its final evaluation: ``final_episodes``
    deterministic episodes on the env seeded ``seed + 20,000``, for each student seed), normalized by its own
    100-episode reference. A perfect copy of the teacher scores this; where its lowest score is under 0.90, a student
    must do better than its teacher to keep every run above 0.90. Kept in ``path`` (measured once).
    """
    if path.exists():
        measured = json.loads(path.read_text())
        if measured["seeds"] == seeds and measured["final_episodes"] == final_episodes:
            return measured
    teacher = DQN.load(spec["zip"], device="cpu")
    returns = [mean_return(teacher, spec["env_id"], final_episodes, seed + 20_000)[0] for seed in range(seeds)]
    scores = np.array([normalized_score(value, reference["teacher_return"], reference["random_return"]) for value in returns])
    measured = {
        "seeds": seeds, "final_episodes": final_episodes, "final_returns": returns, "final_scores": scores.tolist(),
        }  # fmt: skip
    write_json(measured, path)
    return measured


def ceiling_columns(scores: list[float]) -> dict[str, Any]:
    """The table's columns of the teacher scored as its own student (``teacher_as_student``'s scores)."""
    values = np.array(scores)
    return {"teacher_as_student_iqm": iqm_ci(values)[0], "teacher_as_student_min": float(values.min()),
            "teacher_as_student_below_0.90": int((values < TARGET_MIN).sum())}  # fmt: skip


def student_jobs(
    spec: dict[str, Any],
    output_dir: Path,
    seeds: int,
    smoke: bool,
    reference_episodes: int,
    hyperparams: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The teacher's references and its students' jobs (sample_efficiency.py's), one per seed; ``hyperparams`` (a
    recipe variant's) replace the entry's."""
    env_id, folder = spec["env_id"], output_dir / spec["env_id"].replace("/", "-") / spec["name"]
    reference = load_teacher_references(env_id, spec["zip"], reference_episodes, folder / "references.json")
    overrides: dict[str, Any] = {**(SMOKE_OVERRIDES if smoke else {}), **(hyperparams or {}),
                                 "teacher": str(spec["zip"].resolve())}  # fmt: skip
    jobs = [
        {"env_id": env_id, "arm": CONSTANT, "seed": seed, "budget": 300 if smoke else None,
         "eval_freq": eval_freq_of(env_id, smoke), "eval_episodes": 2 if smoke else 10,
         "final_episodes": 2 if smoke else 20, "overrides": overrides, "reference": reference,
         "record": str(record_path(folder / "runs", env_id, CONSTANT, seed)), "teacher": spec["name"]}
        for seed in range(seeds)
    ]  # fmt: skip
    return reference, jobs


def table_row(env_id: str, teacher: str, reference: dict[str, Any], runs: list[dict[str, Any]], config: str) -> dict[str, Any]:
    """One row of the table: sample_efficiency.py's summary of the runs, with the lowest run and the target."""
    (row,) = summarize(env_id, [CONSTANT], runs, reference["teacher_parameters"])
    scores = np.array([run["final_score"] for run in runs])
    result = {
        "env_id": env_id,
        "teacher": teacher,
        "teacher_config": config,
        "teacher_return": reference["teacher_return"],
        "teacher_std": reference["teacher_std"],
        "random_return": reference["random_return"],
        "teacher_parameters": reference["teacher_parameters"],
        "student_parameters": row["parameters"],
        "parameter_share": row["parameter_ratio"],
        "seeds": row["seeds"],
        "budget": row["budget"],
        "final_score_iqm": row["final_score_iqm"],
        "final_score_ci_low": row["final_score_ci_low"],
        "final_score_ci_high": row["final_score_ci_high"],
        "final_score_min": float(scores.min()),
        "runs_below_0.90": int((scores < TARGET_MIN).sum()),
        "final_return_mean": row["final_return_mean"],
        "seeds_reached_95": row["seeds_reached_95"],
        "steps_to_95_iqm": row["steps_to_95_iqm"],
    }
    return {**result, "target_met": target_met(result)}


def target_met(row: dict[str, Any]) -> bool:
    return bool(row["final_score_iqm"] >= TARGET_IQM and row["final_score_ci_low"] >= TARGET_CI_LOW
                and row["final_score_min"] >= TARGET_MIN)  # fmt: skip


def heldout_all_row(env_id: str, rows: list[dict[str, Any]], runs_by_teacher: dict[str, list[dict]]) -> dict[str, Any]:
    """The held-out teachers together: IQM over runs x teachers, the bootstrap stratified by teacher (common seeds)."""
    per_teacher = [[run["final_score"] for run in sorted(runs, key=lambda run: run["seed"])]
                   for runs in runs_by_teacher.values()]  # fmt: skip
    n_seeds = min(len(scores) for scores in per_teacher)
    matrix = np.array([scores[:n_seeds] for scores in per_teacher]).T
    iqm, low, high = iqm_ci(matrix)
    all_scores = np.concatenate([np.array(scores) for scores in per_teacher])
    steps = np.array([run["steps_to_95"] for runs in runs_by_teacher.values() for run in runs], dtype=float)
    result = {
        "env_id": env_id, "teacher": f"{HELDOUT_ALL} ({len(per_teacher)})", "teacher_config": "",
        "teacher_return": float(np.mean([row["teacher_return"] for row in rows])), "teacher_std": None,
        "random_return": rows[0]["random_return"], "teacher_parameters": rows[0]["teacher_parameters"],
        "student_parameters": rows[0]["student_parameters"], "parameter_share": rows[0]["parameter_share"],
        "seeds": n_seeds * len(per_teacher), "budget": rows[0]["budget"],
        "final_score_iqm": iqm, "final_score_ci_low": low, "final_score_ci_high": high,
        "final_score_min": float(all_scores.min()), "runs_below_0.90": int((all_scores < TARGET_MIN).sum()),
        "final_return_mean": float(np.mean([run["final_return"] for runs in runs_by_teacher.values() for run in runs])),
        "seeds_reached_95": sum(row["seeds_reached_95"] for row in rows), "steps_to_95_iqm": iqm_ci(steps)[0],
    }  # fmt: skip
    return {**result, "target_met": target_met(result)}


def shipped_row(env_id: str, source: Path = SHIPPED_RESULTS) -> dict[str, Any] | None:
    """The shipped teacher's row, from sample_efficiency_v2's "distilled, constant alpha" runs (None: not there)."""
    runs_csv, references_json = source / "runs.csv", source / "references.json"
    if not runs_csv.exists() or not references_json.exists():
        return None
    reference = json.loads(references_json.read_text()).get(env_id)
    with open(runs_csv) as file_handler:
        records = [row for row in csv.DictReader(file_handler) if row["env_id"] == env_id and row["arm"] == CONSTANT]
    if reference is None or not records:
        return None
    runs = [{"env_id": env_id, "arm": CONSTANT, "seed": int(row["seed"]), "parameters": int(row["parameters"]),
             "budget": int(row["budget"]), "final_return": float(row["final_return"]),
             "final_score": float(row["final_score"]), "reached_95": row["reached_95"] == "True",
             "steps_to_95": float(row["steps_to_95"]), "seconds_to_95": float(row["seconds_to_95"]),
             "teacher_transitions": int(row["teacher_transitions"])} for row in records]  # fmt: skip
    return table_row(env_id, SHIPPED, reference, runs, f"{PROJECT_CONF} ({display_path(source)})")


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (f"{'env':<16}{'teacher':<28}{'teacher return':>17}{'student params':>20}{'seeds':>6}"
              f"{'final score IQM [95% CI]':>26}{'min':>7}{'<0.90':>6}{'reached':>8}{'steps to 95%':>13}"
              f"{'target':>8}{'teacher as student: IQM, min, <0.90':>38}")  # fmt: skip
    lines = [header]
    for row in rows:
        spread = f" +/- {row['teacher_std']:.1f}" if row["teacher_std"] is not None else ""
        teacher_return = f"{row['teacher_return']:.1f}{spread}"
        params = f"{row['student_parameters']:,} ({row['parameter_share']:.1%})"
        score = fmt_ci(row["final_score_iqm"], row["final_score_ci_low"], row["final_score_ci_high"])
        lines.append(
            f"{row['env_id']:<16}{row['teacher']:<28}{teacher_return:>17}{params:>20}{row['seeds']:>6}{score:>26}"
            f"{row['final_score_min']:>7.3f}{row['runs_below_0.90']:>6}{row['seeds_reached_95']:>4}/{row['seeds']:<3}"
            f"{row['steps_to_95_iqm']:>13,.0f}{'met' if row['target_met'] else 'not met':>8}"
            f"{row['teacher_as_student_iqm']:>20.2f}{row['teacher_as_student_min']:>9.3f}"
            f"{row['teacher_as_student_below_0.90']:>9}"
        )
    return "\n".join(lines)


def aggregate(
    args: argparse.Namespace,
    trained: dict[str, list[dict[str, Any]]],
    output_dir: Path,
    reference_episodes: int,
) -> tuple[list[dict[str, Any]], tuple[Any, ...]]:
    """The table's rows (per env: the shipped teacher's, each held-out teacher's, the held-out ones together) and
    plot_curves' arguments, from the recorded runs (each teacher's runs.csv is written on the way)."""
    rows, curves_runs, curves_results, curve_envs, curve_teachers = [], [], {}, [], []
    final_episodes = 2 if args.smoke else 20

    def ceiling(spec: dict[str, Any], row: dict[str, Any]) -> list[float]:
        path = output_dir / spec["env_id"].replace("/", "-") / spec["name"] / "teacher_as_student.json"
        return teacher_as_student(spec, row, args.seeds, final_episodes, path)["final_scores"]

    for env_id, env_specs in trained.items():
        env_rows, shipped_rows, runs_by_teacher, ceilings = [], [], {}, {}
        for spec in env_specs:
            folder = output_dir / env_id.replace("/", "-") / spec["name"]
            if not (folder / "runs").is_dir():
                continue
            reference, jobs = student_jobs(spec, output_dir, args.seeds, args.smoke, reference_episodes, args.hyperparams)
            results = run_all(jobs, args.n_jobs, lambda line: None, train=False)
            if not results:
                continue
            runs = [derive(result, reference) for result in results.values()]
            write_csv([{key: value for key, value in run.items() if key != "curve"} for run in runs], folder / "runs.csv")
            config = PROJECT_CONF if spec["conf"] == PROJECT_CONF else "rl_zoo3 hyperparams/dqn.yml"
            row = table_row(env_id, spec["name"], reference, runs, f"{config}, seed {spec['seed']}")
            ceilings[spec["name"]] = ceiling(spec, reference)
            row.update(ceiling_columns(ceilings[spec["name"]]))
            if spec["name"] == SHIPPED:  # this output's runs on the shipped teacher
                shipped_rows.append(row)
            else:
                env_rows.append(row)
                runs_by_teacher[spec["name"]] = runs
            for (_, _, seed), result in results.items():
                curves_results[(env_id, spec["name"], seed)] = result
            curves_runs += [{**run, "arm": spec["name"]} for run in runs]
            curve_teachers.append(spec["name"])
        if not env_rows and not shipped_rows:
            continue
        curve_envs.append(env_id)
        if not shipped_rows and not args.smoke:  # no runs of this output on the shipped teacher
            shipped_rows = [row for row in [shipped_row(env_id)] if row]
            for row in shipped_rows:
                row.update(ceiling_columns(ceiling(teacher_specs(env_id, Path(), shipped=True)[0], row)))
        rows += shipped_rows + env_rows
        if len(runs_by_teacher) > 1:
            pooled = [score for name in runs_by_teacher for score in ceilings[name]]
            rows.append({**heldout_all_row(env_id, env_rows, runs_by_teacher), **ceiling_columns(pooled)})
    return rows, (curve_envs, curve_teachers, curves_runs, curves_results)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), help="Envs (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=10, help="Student seeds per teacher (default: %(default)s)")
    parser.add_argument(
        "--n-jobs", type=int, default=2, help="Teachers or runs at once, one thread each (default: %(default)s)"
    )
    parser.add_argument("--stage", choices=("teachers", "students", "table", "all"), default="all",
                        help="teachers: train the missing held-out teachers; students: run the missing students (of "
                        "the teachers trained); table: aggregate what is recorded; all: the three (default)")  # fmt: skip
    parser.add_argument("--output-dir", default=None, help=f"Where it all goes (default: {display_path(DEFAULT_OUTPUT)}; "
                        "--smoke: a temporary folder)")  # fmt: skip
    parser.add_argument("--teachers-dir", default=None, help="The held-out teachers' folder (default: <output-dir>/"
                        "teachers); a recipe variant's output reuses the benchmark's teachers with it")  # fmt: skip
    parser.add_argument(
        "-params", "--hyperparams", type=str, nargs="+", action=StoreDict, default={},
        help="A recipe variant: these hyperparameters replace the entry's, as the Zoo's -params (e.g. alpha:1.0 "
        "n_timesteps:60000); the students also run on the shipped teacher (the table's shipped row is then this "
        "variant's, not sample_efficiency_v2's). Give each variant its own --output-dir",
    )  # fmt: skip
    parser.add_argument("--run-shipped", action="store_true", help="Run the students on the shipped teacher too, for "
                        "its row (always with -params; without, its row is this output's runs on it where recorded, "
                        "else sample_efficiency_v2's)")  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="Tiny budgets (CartPole-v1 only, 2 seeds): seconds")
    args = parser.parse_args()
    if "teacher" in args.hyperparams:
        parser.error("-params teacher:... : the teachers are the benchmark's (the shipped and the held-out ones)")
    if args.smoke:
        args.envs, args.seeds = args.envs[:1], 2
    return args


def main() -> None:
    args = parse_args()
    output_dir = Path(args.output_dir or (tempfile.mkdtemp(prefix="heldout_smoke_") if args.smoke else DEFAULT_OUTPUT))
    reference_episodes = 2 if args.smoke else REFERENCE_EPISODES
    start = time.perf_counter()
    teachers_dir = Path(args.teachers_dir) if args.teachers_dir else output_dir / "teachers"
    run_shipped = bool(args.hyperparams) or args.run_shipped
    specs = {env_id: teacher_specs(env_id, teachers_dir, shipped=True) for env_id in args.envs}

    if args.stage in ("teachers", "all"):
        print(f"Teachers ({args.n_jobs} at a time) in {display_path(teachers_dir)}")
        with ThreadPoolExecutor(max_workers=args.n_jobs) as executor:
            futures = [executor.submit(train_teacher, spec, args.smoke, print) for env_specs in specs.values()
                       for spec in env_specs if spec["name"] != SHIPPED]  # fmt: skip
            for future in futures:
                print(future.result(), flush=True)

    trained = {env_id: [spec for spec in env_specs if spec["zip"].with_suffix(".json").exists()]
               for env_id, env_specs in specs.items()}  # fmt: skip
    if args.stage in ("students", "all"):
        jobs = []
        for env_id, env_specs in trained.items():
            missing = [spec["name"] for spec in specs[env_id] if spec not in env_specs]
            if missing:
                print(f"{env_id}: no students for {missing}: not trained yet (--stage teachers)")
            for spec in env_specs:
                if spec["name"] != SHIPPED or run_shipped:
                    jobs += student_jobs(spec, output_dir, args.seeds, args.smoke, reference_episodes, args.hyperparams)[1]
        print(f"Students ({CONSTANT}, {args.seeds} seeds per teacher)")
        run_all(jobs, args.n_jobs, lambda line: print(line, flush=True))

    rows, curves = aggregate(args, trained, output_dir, reference_episodes)
    if not rows:
        print("No student runs recorded yet: nothing to aggregate")
        return
    print("\n" + format_table(rows))
    print(f"target: final-score IQM >= {TARGET_IQM:.2f}, CI low >= {TARGET_CI_LOW:.2f}, no run below {TARGET_MIN:.2f}")
    write_csv(rows, output_dir / "summary.csv")
    plot_curves(*curves, output_dir / "iqm_curves.png")
    write_json(
        {"command": command_line(), "machine": machine_description(), "torch_threads_per_run": 1, "seeds": args.seeds,
         "arm": CONSTANT, "recipe": "zoo_configs/distilled_dqn.yml, the env's entry with -params teacher:<held-out>",
         "hyperparams": args.hyperparams,
         "shipped_teacher_results": display_path(SHIPPED_RESULTS),
         "target": {"final_score_iqm": TARGET_IQM, "final_score_ci_low": TARGET_CI_LOW, "final_score_min": TARGET_MIN},
         "rows": rows, "wall_seconds": round(time.perf_counter() - start, 1)},
        output_dir / "summary.json",
    )  # fmt: skip
    print(f"\nWrote {display_path(output_dir)}/summary.csv, summary.json, iqm_curves.png")


if __name__ == "__main__":
    main()
