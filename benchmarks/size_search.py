"""
The smallest student that matches its teacher: a size search per env, each Pareto point re-evaluated over 5 seeds.

For each env, with the shipped teacher: a multi-objective Optuna study (``sb3-distill tune --objectives score params``:
1-3 hidden layers of 4-256 units, alpha and temperature; normalized score against parameters), then every trial on
its Pareto front trained again with seeds 0-4 (same architecture, alpha, temperature and budget) and evaluated over 20
deterministic episodes. Per env, the smallest student whose IQM of the 5 normalized scores reaches 1.0 (the teacher's),
with a 95% stratified bootstrap CI (rliable), exported to ONNX for its file size and latency. Writes points.csv,
smallest.csv, summary.json and pareto_fronts.png to --output-dir.

Resumable: the study continues up to --n-trials complete trials, and each (env, trial, seed) run is a JSON file
under ``<output-dir>/runs/`` that a rerun reads back.

    OMP_NUM_THREADS=1 python benchmarks/size_search.py --envs CartPole-v1 --n-trials 30
    python benchmarks/size_search.py --smoke              # seconds: checks the script works
"""

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/size_search.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import optuna
import torch as th
from matplotlib.figure import Figure
from stable_baselines3 import DQN

from benchmarks.common import base_parser, command_line, iqm_ci, machine_description, mean_return, write_csv, write_json
from sb3_distill.export import EXPORT_FORMATS, Q_TOLERANCE, MissingExtraError, export_student
from sb3_distill.hyperparams_opt import trial_net_arch
from sb3_distill.recipe import make_recipe
from sb3_distill.report import count_parameters, normalized_score
from sb3_distill.tuning import REFERENCES_ATTR, load_study_settings, make_study_recipe, tune
from sb3_distill.tuning.pareto import front_trials

DEFAULT_ENVS = ("CartPole-v1", "Acrobot-v1", "LunarLander-v3")
SMOKE_OVERRIDES = {"learning_starts": 50, "buffer_size": 1_000, "batch_size": 16}
# Re-evaluation: seeds 0-4, final return over 20 deterministic episodes on an env seeded apart from training
EVAL_SEED_OFFSET = 10_000
TARGET_SCORE = 1.0
# The teachers' [256, 256] networks differ between runtimes by up to a few 1e-5 of max(1, |Q|) in float32
TEACHER_TOLERANCE = 1e-4


def run_point(
    env_id: str,
    params: dict[str, Any],
    seed: int,
    budget: int | None,
    overrides: dict[str, Any],
    n_episodes: int,
    record: Path,
) -> dict[str, Any]:
    """Train one front point's student with ``seed`` and evaluate it; the record (and the student's zip) is kept."""
    if record.exists():
        return json.loads(record.read_text())
    th.set_num_threads(1)
    recipe = make_study_recipe(env_id, hyperparams=overrides, n_timesteps=budget)
    net_arch = trial_net_arch(params)
    policy_kwargs = {**(recipe.model_kwargs.get("policy_kwargs") or {}), "net_arch": net_arch}
    start = time.perf_counter()
    model = recipe.make_model(
        recipe.make_env(seed), seed=seed, policy_kwargs=policy_kwargs, alpha=params["alpha"], temperature=params["temperature"]
    )
    model.learn(recipe.n_timesteps)
    final_return, final_std = mean_return(model, env_id, n_episodes, seed + EVAL_SEED_OFFSET)
    record.parent.mkdir(parents=True, exist_ok=True)
    model.save(record.with_suffix(".zip"))
    result = {
        "env_id": env_id,
        "net_arch": net_arch,
        "seed": seed,
        "parameters": count_parameters(model.q_net),
        "mean_return": final_return,
        "std_return": final_std,
        "n_episodes": n_episodes,
        "n_timesteps": recipe.n_timesteps,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(result, record)
    return result


def run_study(env_id: str, output_dir: Path, n_trials: int, budget: int | None, overrides: dict[str, Any]) -> optuna.Study:
    """The env's size search, continued up to ``n_trials`` complete trials."""
    storage = f"sqlite:///{(output_dir / 'runs' / 'studies.db').as_posix()}"
    (output_dir / "runs").mkdir(parents=True, exist_ok=True)
    study_name = f"size_search_{env_id}"
    n_complete = 0
    if study_name in optuna.study.get_all_study_names(storage):
        study = optuna.load_study(study_name=study_name, storage=storage)
        n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if n_complete < n_trials:
        settings = load_study_settings(
            n_trials=n_trials - n_complete, objectives=("score", "params"), log_folder=str(output_dir / "runs" / "tuning")
        )
        tune(env_id, hyperparams=overrides or None, n_timesteps=budget, storage=storage, study_name=study_name, seed=0,
             settings=settings)  # fmt: skip
    return optuna.load_study(study_name=study_name, storage=storage)


def export_smallest(record_zip: Path, env_id: str, output_dir: Path) -> dict[str, Any]:
    """The smallest student's ONNX file size and batch-1 latencies (seed 0's student)."""
    try:
        exported = export_student(record_zip, "onnx", output_dir / f"{env_id}_smallest.onnx", env=env_id, force=True)
    except MissingExtraError as error:
        return {"export": f"skipped: {error}"}
    latency = exported.latency_seconds
    return {
        "onnx_bytes": exported.size_bytes,
        "latency_us_torch": latency["torch q_net"][1] * 1e6,
        "latency_us_onnxruntime": latency["onnxruntime"][1] * 1e6,
        "latency_us_sb3_predict": latency["SB3 predict"][1] * 1e6,
    }


def latency_rows(
    model_zip: Path, env_id: str, model: str, output_dir: Path, tolerance: float = Q_TOLERANCE
) -> list[dict[str, Any]]:
    """
    One row per runtime (SB3 predict, the torch Q-network, TorchScript, onnxruntime): the median microseconds per
    call at batch 1 and 256 that ``sb3-distill export`` measures, and the size of what each runtime loads.

    :param model_zip: A DQN zip: the env's smallest student, or its teacher
    :param env_id: The env of the export's parity check
    :param model: ``student`` or ``teacher``
    :param output_dir: Where the exported files go
    :param tolerance: The export's parity tolerance (the teachers' wide layers need more than the default 1e-5)
    """
    # One timing: the ONNX export times all four runtimes; the TorchScript export only writes and checks its file
    onnx = export_student(model_zip, "onnx", output_dir / f"{env_id}_{model}{EXPORT_FORMATS['onnx']}", env=env_id,
                          force=True, tolerance=tolerance)  # fmt: skip
    torchscript = export_student(model_zip, "torchscript", output_dir / f"{env_id}_{model}{EXPORT_FORMATS['torchscript']}",
                                 env=env_id, force=True, tolerance=tolerance, latency_repeats=0)  # fmt: skip
    parameters = count_parameters(DQN.load(model_zip, device="cpu").q_net)
    # What each runtime loads: the zip (SB3 and the torch module), or its exported file
    files = {"SB3 predict": None, "torch q_net": None, "TorchScript": torchscript, "onnxruntime": onnx}
    rows = []
    for runtime, exported in files.items():
        rows.append(
            {
                "env_id": env_id,
                "model": model,
                "parameters": parameters,
                "runtime": runtime,
                "file": "zip" if exported is None else Path(exported.path).suffix[1:],
                "file_bytes": model_zip.stat().st_size if exported is None else exported.size_bytes,
                "batch_1_us": onnx.latency_seconds[runtime][1] * 1e6,
                "batch_256_us": onnx.latency_seconds[runtime][256] * 1e6,
                "max_scaled_q_difference": None if exported is None else exported.max_scaled_difference,
                "tolerance": tolerance,
            }
        )
    return rows


def plot_fronts(points: list[dict[str, Any]], envs: list[str], path: Path) -> None:
    """Per env: each front point's IQM over seeds with its 95% CI against its parameters (log x), the teacher at 1."""
    figure = Figure(figsize=(5 * len(envs), 4))
    axes = np.atleast_1d(figure.subplots(1, len(envs)))
    for axis, env_id in zip(axes, envs, strict=True):
        rows = [row for row in points if row["env_id"] == env_id]
        x = [row["parameters"] for row in rows]
        y = np.array([row["iqm"] for row in rows])
        errors = np.array([[row["iqm"] - row["ci_low"] for row in rows], [row["ci_high"] - row["iqm"] for row in rows]])
        axis.errorbar(x, y, yerr=errors, fmt="o", color="tab:red", capsize=3, label="front point, IQM over seeds, 95% CI")
        axis.axhline(1.0, color="tab:blue", linestyle="--", label="teacher")
        axis.set_xscale("log")
        axis.set_xlabel("student parameters")
        axis.set_ylabel("normalized score (teacher = 1)")
        axis.set_title(env_id)
        axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[1], "benchmarks/results/size_search")
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--n-trials", type=int, default=30, help="Complete trials of each study (default: %(default)s)")
    parser.add_argument("-n", "--n-timesteps", type=int, default=None, help="Steps per trial and run (default: the entry's)")
    parser.add_argument(
        "--seeds", type=int, default=5, help="Seeds of each front point's re-evaluation (default: %(default)s)"
    )
    parser.add_argument("--eval-episodes", type=int, default=20, help="Episodes of each final return (default: %(default)s)")
    parser.add_argument("--n-jobs", type=int, default=1, help="Re-evaluation runs at once (processes)")
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    if args.smoke:
        args.envs, args.n_trials, args.n_timesteps, args.seeds, args.eval_episodes = ["CartPole-v1"], 3, 300, 2, 5
        overrides = SMOKE_OVERRIDES
    output_dir = Path(args.output_dir)
    th.set_num_threads(1)

    points: list[dict[str, Any]] = []
    smallest_rows: list[dict[str, Any]] = []
    latency: list[dict[str, Any]] = []
    for env_id in args.envs:
        study = run_study(env_id, output_dir, args.n_trials, args.n_timesteps, overrides)
        references = study.user_attrs[REFERENCES_ATTR]
        front = front_trials(study)
        jobs = [
            (env_id, trial.params, seed, args.n_timesteps, overrides, args.eval_episodes,
             output_dir / "runs" / env_id / f"trial_{trial.number}_seed_{seed}.json")
            for trial in front
            for seed in range(args.seeds)
        ]  # fmt: skip
        with ProcessPoolExecutor(max_workers=args.n_jobs) as pool:
            results = list(pool.map(run_point, *zip(*jobs, strict=True)))
        for index, trial in enumerate(front):
            runs = results[index * args.seeds : (index + 1) * args.seeds]
            scores = np.array(
                [
                    normalized_score(run["mean_return"], references["teacher_return"], references["random_return"])
                    for run in runs
                ]
            )
            iqm, low, high = iqm_ci(scores)
            points.append(
                {
                    "env_id": env_id,
                    "trial": trial.number,
                    "net_arch": " ".join(map(str, trial_net_arch(trial.params))),
                    "parameters": runs[0]["parameters"],
                    "teacher_share": runs[0]["parameters"] / references["teacher_parameters"],
                    "study_score": trial.values[0],
                    "iqm": iqm,
                    "ci_low": low,
                    "ci_high": high,
                    "scores": " ".join(f"{score:.3f}" for score in scores),
                    "alpha": trial.params["alpha"],
                    "temperature": trial.params["temperature"],
                }
            )
        env_points = [row for row in points if row["env_id"] == env_id]
        print(f"\n{env_id}: {len(study.trials)} trials, {len(front)} on the front, each re-evaluated over {args.seeds} seeds")
        print(f"{'net_arch':<14}{'parameters':>11}{'of teacher':>12}{'study':>8}{'IQM':>8}{'95% CI':>18}")
        for row in env_points:
            interval = f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
            print(
                f"{row['net_arch']:<14}{row['parameters']:>11,}{row['teacher_share']:>12.3%}{row['study_score']:>8.2f}"
                f"{row['iqm']:>8.2f}{interval:>18}"
            )
        reaching = [row for row in env_points if row["iqm"] >= TARGET_SCORE]
        if reaching:
            chosen = min(reaching, key=lambda row: (row["parameters"], -row["iqm"]))
            record_zip = output_dir / "runs" / env_id / f"trial_{chosen['trial']}_seed_0.zip"
            smallest_rows.append({**chosen, "reached": True, **export_smallest(record_zip, env_id, output_dir)})
            if find_spec("onnxruntime") is not None:
                latency += latency_rows(record_zip, env_id, "student", output_dir)
                latency += latency_rows(Path(make_recipe(env_id).teacher), env_id, "teacher", output_dir, TEACHER_TOLERANCE)
            print(
                f"Smallest student at >= 100% of the teacher: [{chosen['net_arch']}], {chosen['parameters']:,} parameters "
                f"({chosen['teacher_share']:.3%} of the teacher's {references['teacher_parameters']:,}), IQM "
                f"{chosen['iqm']:.2f} (95% CI {chosen['ci_low']:.2f}-{chosen['ci_high']:.2f})"
            )
        else:
            best = max(env_points, key=lambda row: row["iqm"])
            smallest_rows.append({**best, "reached": False})
            print(f"No front point reaches 100% of the teacher over {args.seeds} seeds: the best IQM is {best['iqm']:.2f}")

    write_csv(points, output_dir / "points.csv")
    write_csv(smallest_rows, output_dir / "smallest.csv")
    if latency:
        write_csv(latency, output_dir / "latency.csv")
        print(f"\n{'env':<16}{'model':<9}{'parameters':>11}{'runtime':>14}{'file (bytes)':>20}{'batch 1 (us)':>14}"
              f"{'batch 256 (us)':>16}")  # fmt: skip
        for row in latency:
            file_text = f"{row['file']} {row['file_bytes']:,}"
            print(f"{row['env_id']:<16}{row['model']:<9}{row['parameters']:>11,}{row['runtime']:>14}{file_text:>20}"
                  f"{row['batch_1_us']:>14.1f}{row['batch_256_us']:>16.1f}")  # fmt: skip
    plot_fronts(points, args.envs, output_dir / "pareto_fronts.png")
    write_json(
        {
            "command": command_line(),
            "machine": machine_description(),
            "n_trials": args.n_trials,
            "seeds": args.seeds,
            "eval_episodes": args.eval_episodes,
            "points": points,
            "smallest": smallest_rows,
            "latency": latency,
        },
        output_dir / "summary.json",
    )
    print(f"\nWrote {output_dir}: points.csv, smallest.csv, pareto_fronts.png, summary.json")


if __name__ == "__main__":
    main()
