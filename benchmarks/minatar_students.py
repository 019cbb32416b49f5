"""
Pixel students on a CPU: MinAtar students at about 25% and 7% of their teacher's parameters (the sizes of Rusu et al.'s
policy-distillation study), distilled from the shipped teachers, against the same two networks trained from scratch.

Per game (default: MinAtar/Breakout-v1 and MinAtar/SpaceInvaders-v1) and seed, six arms:

- distilled, ~25%: zoo_configs/distilled_dqn.yml's MinAtar student (MinAtarCNN with 8 channels and 64 units) with the
  entry's own recipe (its constant alpha, temperature and offline phase: what `sb3-distill distill` gives)
- distilled, ~7%: the same with zoo_configs/distilled_dqn_minatar_7pct.yml's student (4 channels, 36 units)
- distilled, performance alpha, ~25% / ~7%: the same students with QDagger's decay instead (performance-based alpha,
  ``alpha_0`` = 1, after an offline phase in which the teacher acts for 10% of the student's budget and the student
  takes as many gradient steps: benchmarks/sample_efficiency.py's "distilled, performance alpha + offline" arm)
- DQN scratch, ~25% net / ~7% net: plain SB3 DQN with the same networks and settings, no teacher, a longer budget

Every agent is evaluated every 20,000 steps (10 deterministic episodes) and at the end over ``--final-episodes`` (the
final score). Scores are normalized between a random policy (0) and the teacher (1), measured once per output folder
over ``--reference-episodes`` (references.json; MinAtar returns vary a lot from episode to episode, so both default to
100). Steps and seconds to 95% of the teacher are compared with the best from-scratch arm (an unreached run counts at
its budget, so the ratio is an upper bound). rliable IQM with 95% stratified bootstrap CIs.

Resumable as benchmarks/sample_efficiency.py: each (game, arm, seed) run writes runs/<game>/<arm>_seed<seed>.json as
it finishes; a rerun skips what is done and only aggregates.

    OMP_NUM_THREADS=1 python benchmarks/minatar_students.py    # 2 games x 6 arms x 6 seeds: 4.9 h of training, 2 at a time
    python benchmarks/minatar_students.py --envs MinAtar/Breakout-v1 --arms "distilled, ~25%" "DQN scratch, ~25% net"
    python benchmarks/minatar_students.py --seeds 12 --no-train               # aggregate the recorded runs only
    python benchmarks/minatar_students.py --smoke                              # seconds: checks the script works
"""

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/minatar_students.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import SCRATCH_STUDENT, base_parser, command_line, machine_description, write_csv, write_json
from benchmarks.sample_efficiency import (
    CONSTANT,
    OFFLINE,
    OFFLINE_SHARE,
    SMOKE_OVERRIDES,
    add_no_train_argument,
    add_variant_arguments,
    arm_overrides,
    derive,
    format_table,
    load_references,
    plot_curves,
    record_path,
    run_all,
    summarize,
)
from sb3_distill.config import zoo_config_path

DEFAULT_ENVS = ("MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1")
SMALL_CONF = str(zoo_config_path("distilled_dqn").parent / "distilled_dqn_minatar_7pct.yml")
# Arm -> (the sample-efficiency arm it builds, the students' config: None for zoo_configs/distilled_dqn.yml)
ARMS: dict[str, tuple[str, str | None]] = {
    "distilled, ~25%": (CONSTANT, None),
    "distilled, ~7%": (CONSTANT, SMALL_CONF),
    "distilled, performance alpha, ~25%": (OFFLINE, None),
    "distilled, performance alpha, ~7%": (OFFLINE, SMALL_CONF),
    "DQN scratch, ~25% net": (SCRATCH_STUDENT, None),
    "DQN scratch, ~7% net": (SCRATCH_STUDENT, SMALL_CONF),
}
SCRATCH = tuple(arm for arm, (built, _) in ARMS.items() if built == SCRATCH_STUDENT)
EVAL_FREQ = 20_000
STUDENT_STEPS, BASELINE_STEPS = 200_000, 500_000
EPISODES = 100
# The smoke runs' offline phase (the entries' own is sized for the full budget)
SMOKE_OFFLINE = {"offline_transitions": 30, "offline_gradient_steps": 30}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[1], "benchmarks/results/minatar")
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS), help="MinAtar games (default: %(default)s)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), help="A subset of the arms (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=6, help="Seeds per game and arm (default: %(default)s)")
    parser.add_argument(
        "--student-steps", type=int, default=STUDENT_STEPS, help="Online steps of the students (default: %(default)s)"
    )
    parser.add_argument(
        "--baseline-steps", type=int, default=BASELINE_STEPS, help="Steps of the from-scratch runs (default: %(default)s)"
    )
    parser.add_argument("--eval-freq", type=int, default=EVAL_FREQ, help="Steps between evaluations (default: %(default)s)")
    parser.add_argument(
        "--final-episodes", type=int, default=EPISODES, help="Episodes of the final evaluation (default: %(default)s)"
    )
    parser.add_argument(
        "--reference-episodes", type=int, default=EPISODES,
        help="Episodes of the teacher's and random policy's reference returns (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--n-jobs", type=int, default=2, help="Runs in parallel, one CPU thread each (default: %(default)s)")
    add_no_train_argument(parser)
    add_variant_arguments(parser)
    args = parser.parse_args()
    unknown = [arm for arm in args.arms if arm not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}: choose among {list(ARMS)}")
    envs, seeds, overrides = args.envs, args.seeds, {}
    eval_episodes, final_episodes, reference_episodes = 10, args.final_episodes, args.reference_episodes
    if args.smoke:
        envs, seeds, eval_episodes, final_episodes, reference_episodes = envs[:1], 1, 1, 2, 2
        args.student_steps, args.baseline_steps, args.eval_freq = 300, 300, 100
        overrides = SMOKE_OVERRIDES
    output_dir = Path(args.output_dir)
    start = time.perf_counter()
    references = load_references(envs, reference_episodes, output_dir / "references.json", args.references)
    jobs: list[dict[str, Any]] = [
        {
            "env_id": env_id, "arm": arm, "seed": seed, "build_arm": ARMS[arm][0], "conf_file": ARMS[arm][1],
            "budget": args.baseline_steps if arm in SCRATCH else args.student_steps, "eval_freq": args.eval_freq,
            "eval_episodes": eval_episodes, "final_episodes": final_episodes,
            "overrides": arm_overrides(arm, overrides, {**(SMOKE_OFFLINE if overrides else {}), **args.hyperparams},
                                       SCRATCH),
            "reference": references[env_id], "record": str(record_path(output_dir / "runs", env_id, arm, seed)),
        }
        for env_id in envs
        for arm in args.arms
        for seed in range(seeds)
    ]  # fmt: skip
    results = run_all(jobs, args.n_jobs, print, train=not args.no_train)
    runs = [derive(result, references[result["env_id"]]) for result in results.values()]
    rows = []
    for env_id in envs:
        env_runs = [run for run in runs if run["env_id"] == env_id]
        env_rows = summarize(env_id, args.arms, env_runs, references[env_id]["teacher_parameters"], scratch_arms=SCRATCH)
        rows += env_rows
        print("\n" + format_table(env_id, references[env_id], env_rows))
    write_csv(rows, output_dir / "results.csv")
    write_csv([{key: value for key, value in run.items() if key != "curve"} for run in runs], output_dir / "runs.csv")
    plot_curves(envs, args.arms, runs, results, output_dir / "iqm_curves.png")
    write_json(
        {"command": command_line(), "machine": machine_description(), "torch_threads_per_run": 1, "seeds": seeds,
         # The configs' names in the package's zoo_configs/, not this machine's paths
         "arms": {arm: {"builds": ARMS[arm][0], "conf_file": f"zoo_configs/{Path(ARMS[arm][1] or 'distilled_dqn.yml').name}"}
                  for arm in args.arms},
         "final_episodes": {arm: sorted({result["final_episodes"] for result in results.values() if result["arm"] == arm})
                            for arm in args.arms},
         "hyperparams": args.hyperparams, "reference_episodes": reference_episodes, "student_steps": args.student_steps,
         "baseline_steps": args.baseline_steps, "offline_share": OFFLINE_SHARE,
         "references": references, "results": rows, "wall_seconds": round(time.perf_counter() - start, 1)},
        output_dir / "summary.json",
    )  # fmt: skip
    print(f"\nWrote {output_dir}/results.csv, runs.csv, iqm_curves.png, summary.json")


if __name__ == "__main__":
    main()
