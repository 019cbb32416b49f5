"""
Why distilled students fall away from their teacher late in training: per alpha and seed, what the student's training
logs (``train/teacher_agreement``, ``train/td_loss``, ``train/distill_loss``, ``train/alpha``) and its evaluations say
in the first and the second half of its budget.

Each run is the env's student of zoo_configs/distilled_dqn.yml with one alpha (a number, ``performance`` for QDagger's
performance-based weight with ``alpha_0`` = 1, or ``performance:X`` for that weight with ``alpha_min`` = X), trained
in one ``learn()`` call and evaluated every ``--eval-freq`` steps over 10 deterministic episodes. "Early" is from 15%
of the budget to its middle, "late" from the middle on; the agreement is the share of a sampled batch where the
student's greedy action is the teacher's (logged on the last batch of each ``train()`` call). A dip is a late
evaluation below 95% of the teacher's normalized return.

    OMP_NUM_THREADS=1 python benchmarks/stability.py --env CartPole-v1 --alphas 0.5 0.9 performance --seeds 5
    OMP_NUM_THREADS=1 python benchmarks/stability.py --env Acrobot-v1 --alphas performance performance:0.5 --seeds 5
    python benchmarks/stability.py --smoke
"""

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/stability.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

from benchmarks.common import base_parser, command_line, machine_description, mean_return, reference_returns, write_csv
from benchmarks.common import write_json
from sb3_distill.recipe import make_recipe
from sb3_distill.report import normalized_score

REACH = 0.95
SMOKE_OVERRIDES = {"learning_starts": 50, "buffer_size": 1_000, "train_freq": 4, "gradient_steps": 1, "batch_size": 16}


class Evaluations(BaseCallback):
    """Mean deterministic return every ``eval_freq`` steps, inside the one ``learn()`` call."""

    def __init__(self, env_id: str, eval_freq: int, n_episodes: int, seed: int) -> None:
        super().__init__()
        self.env_id, self.eval_freq, self.n_episodes, self.seed = env_id, eval_freq, n_episodes, seed
        self.rows: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        if self.num_timesteps % self.eval_freq == 0:
            self.rows.append((self.num_timesteps, mean_return(self.model, self.env_id, self.n_episodes, self.seed)[0]))
        return True


def parse_alpha(alpha: str) -> tuple[bool, float]:
    """
    An ``--alphas`` value read: whether it is the performance-based weight, and its number (the floor of
    ``performance:ALPHA_MIN``, 0 for plain ``performance``, else the constant alpha).

    :raises ValueError: The number is not one
    """
    kind, colon, alpha_min = alpha.partition(":")
    if kind == "performance":
        return True, float(alpha_min) if colon else 0.0
    return False, float(alpha)


def alpha_kwargs(alpha: str, reference: dict[str, Any]) -> dict[str, Any]:
    """DistilledDQN's arguments for ``--alphas`` value ``alpha`` (checked by :func:`check_alpha_value`)."""
    performance, number = parse_alpha(alpha)
    if performance:
        return {"alpha": "performance", "alpha_0": 1.0, "alpha_min": number,
                "teacher_return": reference["teacher_return"], "random_return": reference["random_return"]}  # fmt: skip
    return {"alpha": number}


def check_alpha_value(alpha: str) -> str | None:
    """What is wrong with an ``--alphas`` value, or None."""
    try:
        _, number = parse_alpha(alpha)
    except ValueError:
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        return f"--alphas {alpha!r}: expected a number in [0, 1], 'performance' or 'performance:ALPHA_MIN'"
    return None


def run(env_id: str, alpha: str, seed: int, args: Any, overrides: dict, reference: dict, log_dir: Path) -> dict:
    """One student: its training logs and evaluations, summarized early and late."""
    th.set_num_threads(1)
    recipe = make_recipe(env_id, hyperparams=overrides or None, n_timesteps=args.n_timesteps)
    model = recipe.make_model(recipe.make_env(seed), seed=seed, **alpha_kwargs(alpha, reference))
    model.set_logger(configure(str(log_dir), ["csv"]))
    evaluations = Evaluations(env_id, args.eval_freq, args.eval_episodes, seed + 10_000)
    model.learn(recipe.n_timesteps, callback=evaluations, log_interval=1)
    logs = pd.read_csv(log_dir / "progress.csv").dropna(subset=["train/td_loss"])
    steps = logs["time/total_timesteps"]
    middle = recipe.n_timesteps // 2
    halves = {"early": logs[(steps >= 0.15 * recipe.n_timesteps) & (steps < middle)], "late": logs[steps >= middle]}
    late_scores = [
        normalized_score(value, reference["teacher_return"], reference["random_return"])
        for step, value in evaluations.rows
        if step >= middle
    ]
    row: dict[str, Any] = {"env_id": env_id, "alpha": alpha, "seed": seed}
    for half, rows in halves.items():
        for key in ("teacher_agreement", "td_loss", "distill_loss", "alpha"):
            row[f"{key}_{half}"] = float(rows[f"train/{key}"].mean()) if len(rows) else float("nan")
    row.update(
        late_dips=int(sum(score < REACH for score in late_scores)),
        late_evaluations=len(late_scores),
        min_late_score=float(min(late_scores)) if late_scores else float("nan"),
        final_score=normalized_score(evaluations.rows[-1][1], reference["teacher_return"], reference["random_return"]),
    )
    return row


def main() -> None:
    parser = base_parser(__doc__.splitlines()[1], "benchmarks/results/stability")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument(
        "--alphas", nargs="+", default=["0.5", "0.9", "performance"],
        help="Numbers, 'performance' or 'performance:ALPHA_MIN' (QDagger's weight with a floor)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("-n", "--n-timesteps", type=int, default=None, help="Budget (default: the entry's)")
    parser.add_argument("--eval-freq", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    reference_episodes = 20
    if args.smoke:
        args.seeds, args.n_timesteps, args.eval_freq, args.eval_episodes, reference_episodes = 1, 400, 100, 2, 2
        overrides = SMOKE_OVERRIDES
    for alpha in args.alphas:
        problem = check_alpha_value(alpha)
        if problem:
            parser.error(problem)
    output_dir = Path(args.output_dir)
    reference = reference_returns(args.env, reference_episodes, 123)
    rows = []
    for alpha in args.alphas:
        for seed in range(args.seeds):
            rows.append(run(args.env, alpha, seed, args, overrides, reference, output_dir / "logs" / f"{alpha}_{seed}"))
    table = pd.DataFrame(rows)
    means = table.drop(columns=["env_id", "seed"]).groupby("alpha", sort=False).mean()
    print(f"{args.env}: teacher {reference['teacher_return']:.1f}, random {reference['random_return']:.1f}; "
          f"means over {args.seeds} seeds (early: 15-50% of the budget, late: 50-100%)")  # fmt: skip
    print(means.round(3).to_string())
    write_csv(rows, output_dir / "runs.csv")
    summary = means.reset_index().to_dict(orient="records")
    write_json({"command": command_line(), "machine": machine_description(), "reference": reference, "means": summary,
                "seeds": args.seeds, "dips_total": {alpha: int(np.sum(table[table.alpha == alpha].late_dips))
                                                    for alpha in args.alphas}},
               output_dir / "summary.json")  # fmt: skip
    print(f"Wrote {output_dir}/runs.csv, summary.json")


if __name__ == "__main__":
    main()
