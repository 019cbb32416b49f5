"""
Students distilled from the teachers users have, on CartPole-v1: a PPO teacher (its action logits play the part of
Q-values) and a legacy-format DQN teacher (an SB3 1.x / ``gym`` zip, loaded without ``gym`` and without unpickling).

For each teacher and seed, the env's student from ``zoo_configs/distilled_dqn.yml`` is distilled for its budget, then
evaluated over 20 deterministic episodes at the end (its final score, not its best). Scores are normalized between a
random policy (0) and the teacher (1), measured in the same run; the table gives the mean and std of the raw returns
and rliable's interquartile mean (IQM) of the normalized scores with a 95% stratified bootstrap confidence interval.

    python benchmarks/teacher_kinds.py                  # trains the PPO teacher with the Zoo's settings first
    python benchmarks/teacher_kinds.py --ppo-teacher logs/ppo/CartPole-v1_1 --seeds 5
"""

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/teacher_kinds.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.common import (
    base_parser,
    command_line,
    iqm_ci,
    machine_description,
    return_stats,
    write_csv,
    write_json,
)
from sb3_distill import shipped_teacher
from sb3_distill.recipe import make_recipe
from sb3_distill.report import GreedyAgent, normalized_score, random_policy_return
from sb3_distill.zoo import main as zoo
from tests.legacy_fixtures import make_legacy_zip

ENV_ID = "CartPole-v1"
EVAL_EPISODES = 20
SMOKE_OVERRIDES = {"learning_starts": 50, "buffer_size": 1_000, "train_freq": 4, "gradient_steps": 1, "batch_size": 16}


def train_ppo_teacher(log_folder: Path, smoke: bool) -> Path:
    """A PPO teacher trained by the RL Zoo with its own CartPole-v1 settings: its log folder."""
    budget = ["-n", "2000"] if smoke else []
    arguments = ["train", "--algo", "ppo", "--env", ENV_ID, "-f", str(log_folder), "--seed", "0", "--eval-freq", "-1"]
    if zoo([*arguments, *budget]) != 0:
        raise RuntimeError("training the PPO teacher failed")
    return log_folder / "ppo" / f"{ENV_ID}_1"


def distill_one(teacher: Path, seed: int, overrides: dict[str, Any], budget: int | None) -> dict[str, Any]:
    """One student: its final return, and its teacher's and a random policy's on the same evaluation episodes."""
    recipe = make_recipe(ENV_ID, teacher=teacher, hyperparams=overrides, n_timesteps=budget)
    student = recipe.make_model(recipe.make_env(seed), seed=seed)
    start = time.perf_counter()
    student.learn(recipe.n_timesteps)
    seconds = time.perf_counter() - start
    eval_env = recipe.make_env(seed + 10_000, n_envs=1, eval_env=True)
    student_mean, _ = return_stats(student, eval_env, EVAL_EPISODES)
    teacher_mean, _ = return_stats(GreedyAgent(student.teacher.q_values, student.device), eval_env, EVAL_EPISODES)
    random_mean = random_policy_return(eval_env, EVAL_EPISODES, seed=seed)
    return {
        "seed": seed,
        "teacher_kind": student.teacher.kind,
        "student_return": student_mean,
        "teacher_return": teacher_mean,
        "random_return": random_mean,
        "normalized_score": normalized_score(student_mean, teacher_mean, random_mean),
        "env_steps": int(student.num_timesteps),
        "train_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/teacher_kinds")
    parser.add_argument("--ppo-teacher", default=None, help="PPO teacher zip or Zoo log folder (default: train one)")
    parser.add_argument("--seeds", type=int, default=5, help="Students per teacher (default: %(default)s)")
    args = parser.parse_args()
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    overrides = SMOKE_OVERRIDES if args.smoke else {}
    budget = 300 if args.smoke else None
    seeds = range(2 if args.smoke else args.seeds)
    ppo_teacher = Path(args.ppo_teacher) if args.ppo_teacher else train_ppo_teacher(output_dir / "logs", args.smoke)
    legacy_teacher = make_legacy_zip(shipped_teacher(ENV_ID), output_dir / "legacy_dqn_teacher.zip")
    teachers = {"PPO (Zoo settings)": ppo_teacher, "DQN, SB3 1.x / gym format": legacy_teacher}

    rows, summary = [], {}
    for name, teacher in teachers.items():
        runs = [{"teacher": name, **distill_one(teacher, seed, overrides, budget)} for seed in seeds]
        rows += runs
        scores = np.array([run["normalized_score"] for run in runs])
        iqm, low, high = iqm_ci(scores)
        students = [run["student_return"] for run in runs]
        summary[name] = {
            "teacher_path": str(teacher),
            "teacher_return_mean": float(np.mean([run["teacher_return"] for run in runs])),
            "student_return_mean": float(np.mean(students)),
            "student_return_std": float(np.std(students)),
            "iqm_normalized": iqm,
            "iqm_ci95": [low, high],
            "n_seeds": len(runs),
        }
    print(f"{ENV_ID}: [64] student (450 parameters), final return over {EVAL_EPISODES} deterministic episodes per seed")
    print(f"{'teacher':<28}{'teacher return':>16}{'student return':>18}{'IQM score [95% CI]':>26}{'seeds':>7}")
    for name, result in summary.items():
        interval = f"{result['iqm_normalized']:.3f} [{result['iqm_ci95'][0]:.3f}, {result['iqm_ci95'][1]:.3f}]"
        student = f"{result['student_return_mean']:>11.1f} +/-{result['student_return_std']:>5.1f}"
        print(f"{name:<28}{result['teacher_return_mean']:>16.1f}{student}{interval:>26}{result['n_seeds']:>7}")
    write_csv(rows, output_dir / "teacher_kinds.csv")
    write_json(
        {"command": command_line(), "machine": machine_description(), "summary": summary, "runs": rows},
        output_dir / "teacher_kinds.json",
    )
    print(f"Wrote {output_dir}/teacher_kinds.csv and teacher_kinds.json")


if __name__ == "__main__":
    main()
