"""
Continuous control: the SAC and TD3 students of zoo_configs/ against SAC from scratch with the teacher's network and the
Zoo's settings (zoo_configs/sac.yml, how the teacher was trained), side by side, per env and seed.

Every agent is evaluated every ``EVAL_FREQ[env]`` steps (5 deterministic episodes) and once at the end over 20
deterministic episodes (the final score). Scores are normalized between a random policy (0) and the teacher (1), both
measured once per env and output folder over ``--reference-episodes`` deterministic episodes (the teacher acting with
its mean action, read from its zip without unpickling). Aggregates: rliable IQM with 95% stratified bootstrap CIs.

Each (env, arm, seed) run writes runs/<env>/<arm>_seed<seed>.json as it finishes: a rerun skips finished runs and only
aggregates, so a long run can be done in pieces (--envs, --arms, --seeds) and resumed after a stop.

    python benchmarks/continuous.py                                   # every env with a student entry, 10 seeds
    python benchmarks/continuous.py --arms "distilled SAC" --seeds 0 1 2
    python benchmarks/continuous.py --smoke                           # seconds: checks the script works

A recipe variant of the students (the scratch arm keeps its settings) with the Zoo's ``-params``, in its own folder
holding a copy of the main run's scratch records and references:

    python benchmarks/continuous.py --arms "distilled SAC" "SAC scratch, teacher net" \
        -params offline_transitions:2000 offline_gradient_steps:2000 \
        --output-dir benchmarks/results/continuous_variants/offline

A teacher the recipe was not tuned on (held out): ``-params teacher:...`` also sets the teacher whose returns are the
references.
"""

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/continuous.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch as th
from rl_zoo3.utils import StoreDict
from stable_baselines3.common.env_util import make_vec_env

from benchmarks.common import base_parser, command_line, machine_description, mean_return, write_csv, write_json
from benchmarks.sample_efficiency import Evaluator, derive, format_table, record_path, summarize
from sb3_distill.algorithms import acting_network
from sb3_distill.common.teacher import load_teacher
from sb3_distill.config import display_path
from sb3_distill.recipe import make_recipe
from sb3_distill.report import TeacherAgent, evaluate_agent, random_policy_return

SCRATCH = "SAC scratch, teacher net"
# Arm -> the Zoo name of the algorithm whose zoo_configs entry it runs
ARMS = {"distilled SAC": "distilled_sac", "distilled TD3": "distilled_td3", SCRATCH: "sac"}
DEFAULT_ENVS = ("Pendulum-v1",)
EVAL_FREQ = {"Pendulum-v1": 500}
EVAL_EPISODES, FINAL_EPISODES = 5, 20
SMOKE_OVERRIDES = {"n_timesteps": 300, "learning_starts": 50, "buffer_size": 1000, "policy_kwargs": "dict(net_arch=[8])"}


def reference_returns(env_id: str, n_episodes: int, seed: int, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """
    The teacher of the env's SAC student entry (or the one ``overrides`` names: a held-out teacher), acting with its
    mean action, and a random policy: mean returns.
    """
    teacher_path = make_recipe(env_id, "distilled_sac", hyperparams=overrides).teacher
    env = make_vec_env(env_id, n_envs=1, seed=seed)
    teacher = load_teacher(teacher_path, env.observation_space, env.action_space)
    result = evaluate_agent("teacher", TeacherAgent(teacher, "cpu"), teacher.num_parameters(), env, n_episodes)
    random_mean = random_policy_return(make_vec_env(env_id, n_envs=1, seed=seed), n_episodes, seed)
    return {
        "teacher_return": result.mean_return,
        "teacher_std": result.std_return,
        "random_return": random_mean,
        "teacher_parameters": result.parameters,
        "teacher_path": display_path(str(teacher_path)),
    }


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one agent over its entry's budget in one ``learn()`` call, evaluated as it goes; write its record."""
    if Path(job["record"]).exists():
        return json.loads(Path(job["record"]).read_text())
    th.set_num_threads(1)
    env_id, arm, seed = job["env_id"], job["arm"], job["seed"]
    recipe = make_recipe(env_id, ARMS[arm], hyperparams=job["overrides"])
    start = time.perf_counter()
    model = recipe.make_model(recipe.make_env(seed), seed=seed)
    if hasattr(model, "run_offline_phase"):
        model.run_offline_phase()
    evaluator = Evaluator(env_id, job["eval_freq"], EVAL_EPISODES, seed + 10_000, time.perf_counter() - start)
    evaluator.evaluate(model)
    model.learn(recipe.n_timesteps, callback=evaluator)
    if evaluator.timesteps[-1] != model.num_timesteps:
        evaluator.evaluate(model)
    final_mean, final_std = mean_return(model, env_id, FINAL_EPISODES, seed + 20_000)
    result = {
        "env_id": env_id,
        "arm": arm,
        "seed": seed,
        "algo": ARMS[arm],
        "parameters": sum(parameter.numel() for parameter in acting_network(model).parameters()),
        "budget": int(model.num_timesteps),
        "timesteps": evaluator.timesteps,
        "returns": evaluator.returns,
        "train_seconds": evaluator.seconds,
        "final_return": final_mean,
        "final_return_std": final_std,
        "final_episodes": FINAL_EPISODES,
        "teacher_transitions": int(getattr(model, "teacher_transitions", 0)),
    }
    write_json(result, Path(job["record"]))
    return result


def parse_args() -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/continuous")
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--reference-episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="Runs at once, one torch thread each (default: 2)")
    parser.add_argument(
        "-params",
        "--hyperparams",
        nargs="+",
        action=StoreDict,
        default={},
        help="Hyperparameters of the distilled arms' entries, as the Zoo's -params (a recipe variant)",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    output = Path(args.output_dir)
    seeds = args.seeds[:2] if args.smoke else args.seeds
    overrides = SMOKE_OVERRIDES if args.smoke else {}
    references = {}
    references_path = output / "references.json"
    if references_path.exists():
        references = json.loads(references_path.read_text())
    for env_id in args.envs:
        if env_id not in references:
            episodes = 3 if args.smoke else args.reference_episodes
            references[env_id] = reference_returns(env_id, episodes, seed=123, overrides=args.hyperparams)
            write_json(references, references_path)
    jobs = [
        {
            "env_id": env_id, "arm": arm, "seed": seed,
            # A variant's hyperparameters go to the students only: the scratch arm is the teacher's recipe
            "overrides": {**overrides, **(args.hyperparams if arm != SCRATCH else {})},
            "eval_freq": 100 if args.smoke else EVAL_FREQ.get(env_id, 1_000),
            "record": str(record_path(output / "runs", env_id, arm, seed)),
        }
        for env_id in args.envs for arm in args.arms for seed in seeds
    ]  # fmt: skip
    todo = [job for job in jobs if not Path(job["record"]).exists()]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already recorded; running {len(todo)}")
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for future in as_completed([pool.submit(run_one, job) for job in todo]):
            result = future.result()
            print(f"  {result['env_id']} {result['arm']} seed {result['seed']}: final return {result['final_return']:.1f}")
    rows, runs = [], []
    for env_id in args.envs:
        env_runs = [derive(json.loads(Path(job["record"]).read_text()), references[env_id]) for job in jobs
                    if job["env_id"] == env_id]  # fmt: skip
        runs += env_runs
        env_rows = summarize(env_id, args.arms, env_runs, references[env_id]["teacher_parameters"], (SCRATCH,))
        rows += env_rows
        print("\n" + format_table(env_id, references[env_id], env_rows))
    write_csv([{key: value for key, value in run.items() if key != "curve"} for run in runs], output / "runs.csv")
    write_csv(rows, output / "summary.csv")
    write_json(
        {"command": command_line(), "machine": machine_description(), "seeds": seeds, "rows": rows,
         "hyperparams": args.hyperparams,
         "configs": {arm: f"zoo_configs/{algo}.yml" for arm, algo in ARMS.items()}},
        output / "summary.json",
    )  # fmt: skip
    finals = {row["arm"]: row["final_score_iqm"] for row in rows}
    print(f"\nFinal-score IQM by arm: {json.dumps(finals)}; results in {output}")


if __name__ == "__main__":
    main()
