"""
Sample efficiency and compression: DQN from scratch against the distilled students (QDagger's options), side by side.

Arms, per env and seed: DQN from scratch with the student's network and settings, DQN from scratch with the teacher's
network and the Zoo's settings (zoo_configs/dqn.yml), and the student of zoo_configs/distilled_dqn.yml with its
constant alpha, with QDagger's performance-based alpha (``alpha="performance"``, ``alpha_0`` = 1: the student follows
only the teacher until its own episodes approach the teacher's return), and
with the performance-based alpha after an offline phase (the teacher's transitions: 10% of the student's budget, and
as many gradient steps). Every agent is evaluated every ``EVAL_FREQ[env]`` steps (10 deterministic episodes) and
once at the end over 20 deterministic episodes (the final score).

Scores are normalized between a random policy (0) and the teacher (1), both measured once per env and output
folder over ``--reference-episodes`` deterministic episodes (references.json, default 100: a 20-episode mean of a
teacher whose returns vary from episode to episode can be far from its mean, and it shifts every arm's score alike):
"95% of the teacher" means random + 0.95 * (teacher - random), also for negative returns.
Aggregates use rliable: interquartile mean (IQM) with 95% stratified bootstrap confidence intervals, per env and
over envs; IQM curves with CI bands; performance profiles of the final scores.

Each (env, arm, seed) run writes runs/<env>/<arm>_seed<seed>.json as it finishes: a rerun skips finished runs and
only aggregates, so the full run (hours on a 2-core CPU) can be done in pieces (--envs, --arms).

    python benchmarks/sample_efficiency.py                                  # every env and arm, 10 seeds
    python benchmarks/sample_efficiency.py --envs CartPole-v1 --arms "distilled, constant alpha"
    python benchmarks/sample_efficiency.py --loss-variants                  # kl / mse / nll on Acrobot-v1, 5 seeds
    python benchmarks/sample_efficiency.py --envs LunarLander-v3 --arms "distilled, constant alpha" -params alpha:0.7 \
        --references benchmarks/results/sample_efficiency_v2/references.json --output-dir /tmp/lunarlander_alpha_0.7
    python benchmarks/sample_efficiency.py --smoke                          # seconds: checks the script works
"""

import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/sample_efficiency.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch as th
from matplotlib.figure import Figure
from rl_zoo3.utils import StoreDict
from scipy import stats
from stable_baselines3.common.callbacks import BaseCallback

from benchmarks.common import (
    BOOTSTRAP_REPS,
    SCRATCH_STUDENT,
    SCRATCH_TEACHER,
    base_parser,
    build_agent,
    command_line,
    iqm_ci,
    machine_description,
    mean_return,
    numpy_global_seed,
    reference_returns,
    write_csv,
    write_json,
)
from sb3_distill.recipe import make_recipe
from sb3_distill.report import count_parameters, normalized_score

CONSTANT = "distilled, constant alpha"
PERFORMANCE = "distilled, performance alpha"
OFFLINE = "distilled, performance alpha + offline"
SCRATCH_ARMS = (SCRATCH_STUDENT, SCRATCH_TEACHER)
# The performance-based arms' starting weight
PERFORMANCE_ALPHA_0 = 1.0
ARMS = (*SCRATCH_ARMS, CONSTANT, PERFORMANCE, OFFLINE)
# The separate comparison of the distillation losses (constant alpha, the config's settings otherwise)
LOSS_ARMS = {"distilled, kl loss": "kl", "distilled, mse loss": "mse", "distilled, nll loss": "nll"}
LOSS_ENV, LOSS_SEEDS = "Acrobot-v1", 5

DEFAULT_ENVS = ("CartPole-v1", "Acrobot-v1", "LunarLander-v3", "MountainCar-v0")
# Evaluation period per env (environment steps)
EVAL_FREQ = {"CartPole-v1": 1_000, "Acrobot-v1": 2_000, "LunarLander-v3": 4_000, "MountainCar-v0": 2_000}
SMOKE_EVAL_FREQ = 100
# Share of the student's budget the teacher acts for in the offline phase; as many offline gradient steps
OFFLINE_SHARE = 0.1
REACH = 0.95
SMOKE_OVERRIDES = {"learning_starts": 50, "buffer_size": 1_000, "train_freq": 4, "gradient_steps": 1, "batch_size": 16}


def eval_freq_of(env_id: str, smoke: bool = False) -> int:
    """The env's evaluation period in environment steps (``--smoke``: 100 steps; an env without one: 2,000)."""
    return SMOKE_EVAL_FREQ if smoke else EVAL_FREQ.get(env_id, 2_000)


def arm_overrides(
    arm: str, overrides: dict[str, Any], hyperparams: dict[str, Any], scratch_arms: tuple[str, ...] = SCRATCH_ARMS
) -> dict[str, Any]:
    """
    A run's hyperparameter overrides: ``overrides`` (smoke runs) for every arm, a recipe variant's ``hyperparams``
    (``-params``) on top for the distilled arms only; the scratch arms are the baselines the variant is measured against.
    """
    return overrides if arm in scratch_arms else {**overrides, **hyperparams}


def build_arm(
    arm: str,
    env_id: str,
    seed: int,
    budget: int | None,
    overrides: dict[str, Any],
    reference: dict[str, Any],
    conf_file: str | None = None,
) -> tuple[Any, int]:
    """
    The arm's agent with the project's settings.

    :param arm: One of ``ARMS`` or ``LOSS_ARMS``
    :param env_id: Gymnasium env id
    :param seed: Random seed
    :param budget: Environment steps of the run (None: the configured budget)
    :param overrides: Hyperparameters replacing the configured ones (smoke runs)
    :param reference: The env's measured teacher and random returns (the performance-based alpha's scale)
    :param conf_file: The students' config (None: zoo_configs/distilled_dqn.yml)
    :return: (the model, its budget in environment steps)
    """
    if arm in SCRATCH_ARMS:
        model, configured = build_agent(arm, env_id, seed, overrides, conf_file)
        return model, budget or configured
    recipe = make_recipe(env_id, conf_file=conf_file, hyperparams=overrides)
    budget = budget or recipe.n_timesteps
    kwargs: dict[str, Any] = {}
    if arm in LOSS_ARMS:
        kwargs["distill_loss"] = LOSS_ARMS[arm]
    elif arm in (PERFORMANCE, OFFLINE):
        kwargs.update(
            alpha="performance",
            # QDagger's weight starts at its maximum. Starting from the entry's 0.5 instead, the offline phase's TD term
            # on the teacher's failure-free transitions outweighed the distillation term and the CartPole students
            # collapsed to one action (final score -0.02 over 10 seeds)
            alpha_0=PERFORMANCE_ALPHA_0,
            teacher_return=reference["teacher_return"],
            random_return=reference["random_return"],
        )
        if arm == OFFLINE:
            transitions = math.ceil(OFFLINE_SHARE * budget)
            kwargs.update(offline_transitions=transitions, offline_gradient_steps=transitions)
    elif arm != CONSTANT:
        raise ValueError(f"arm={arm!r}, expected one of {ARMS + tuple(LOSS_ARMS)}")
    return recipe.make_model(recipe.make_env(seed), seed=seed, **kwargs), budget


class Evaluator(BaseCallback):
    """
    Evaluates the model every ``eval_freq`` environment steps inside one ``learn()`` call (so that the exploration and
    learning-rate schedules span the whole budget, as in the Zoo) and keeps the training wall-clock time, evaluations
    excluded. Evaluation does not change training: its own env, deterministic actions, no draw from the generators the
    agent uses (``benchmarks/early_evaluations.py`` checks it).

    :param fine_freq: Evaluate every ``fine_freq`` steps instead up to step ``fine_until`` (None: no finer grid)
    :param fine_until: The last step of the finer grid
    :param stop_at: Stop training at this step, after its evaluation (None: the whole budget)
    """

    def __init__(
        self,
        env_id: str,
        eval_freq: int,
        n_episodes: int,
        seed: int,
        train_seconds: float = 0.0,
        fine_freq: int | None = None,
        fine_until: int = 0,
        stop_at: int | None = None,
    ) -> None:
        super().__init__()
        self.env_id, self.eval_freq, self.n_episodes, self.seed = env_id, eval_freq, n_episodes, seed
        self.fine_freq, self.fine_until, self.stop_at = fine_freq, fine_until, stop_at
        self.timesteps: list[int] = []
        self.returns: list[float] = []
        self.seconds: list[float] = []
        self.train_seconds = train_seconds
        self._since = time.perf_counter()

    def evaluate(self, model: Any) -> None:
        """Evaluate now, the time since the last evaluation counted as training."""
        self.train_seconds += time.perf_counter() - self._since
        self.timesteps.append(int(model.num_timesteps))
        self.returns.append(mean_return(model, self.env_id, self.n_episodes, self.seed)[0])
        self.seconds.append(round(self.train_seconds, 2))
        self._since = time.perf_counter()

    def _on_step(self) -> bool:
        step = self.model.num_timesteps
        freq = self.fine_freq if self.fine_freq is not None and step <= self.fine_until else self.eval_freq
        if step % freq < self.model.n_envs and step != self.timesteps[-1]:
            self.evaluate(self.model)
        # False stops learn() before this rollout's update
        return self.stop_at is None or step < self.stop_at


def train_run(job: dict[str, Any], **evaluator_options: Any) -> tuple[Any, Evaluator]:
    """
    Build the job's agent and train it in one ``learn()`` call over its budget, evaluated by an ``Evaluator`` (from
    step 0, after the offline phase if any) with ``evaluator_options``.

    :return: (the trained model, its evaluator)
    """
    th.set_num_threads(1)
    env_id, seed = job["env_id"], job["seed"]
    # A job may name its arm apart from the recipe it builds (benchmarks/minatar.py: one arm per student size)
    model, budget = build_arm(job.get("build_arm", job["arm"]), env_id, seed, job["budget"], job["overrides"],
                              job["reference"], job.get("conf_file"))  # fmt: skip
    start = time.perf_counter()
    if hasattr(model, "run_offline_phase"):
        # Before the first evaluation: step 0 shows what the offline phase alone gives
        model.run_offline_phase()
    evaluator = Evaluator(env_id, job["eval_freq"], job["eval_episodes"], seed + 10_000, time.perf_counter() - start,
                          **evaluator_options)  # fmt: skip
    evaluator.evaluate(model)
    model.learn(budget, callback=evaluator)
    return model, evaluator


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """
    Train one agent for its budget in one ``learn()`` call, evaluating it every ``eval_freq`` steps and at the end;
    the record is written as it finishes. Wall-clock seconds count training only (the offline phase included).
    """
    if Path(job["record"]).exists():
        # Finished meanwhile by another process running the same piece
        return json.loads(Path(job["record"]).read_text())
    env_id, arm, seed = job["env_id"], job["arm"], job["seed"]
    model, evaluator = train_run(job)
    if evaluator.timesteps[-1] != model.num_timesteps:
        # The last rollout may end past a multiple of eval_freq (train_freq > 1)
        evaluator.evaluate(model)
    final_mean, final_std = mean_return(model, env_id, job["final_episodes"], seed + 20_000)
    result = {
        "env_id": env_id,
        "arm": arm,
        "seed": seed,
        "parameters": count_parameters(model.q_net),
        "budget": int(model.num_timesteps),
        "timesteps": evaluator.timesteps,
        "returns": evaluator.returns,
        "train_seconds": evaluator.seconds,
        "final_return": final_mean,
        "final_return_std": final_std,
        "final_episodes": job["final_episodes"],
        "teacher_transitions": int(getattr(model, "teacher_transitions", 0)),
    }
    write_json(result, Path(job["record"]))
    return result


def record_path(runs_dir: Path, env_id: str, arm: str, seed: int) -> Path:
    return runs_dir / env_id / f"{arm.replace(' ', '_').replace(',', '').replace('+', 'plus')}_seed{seed}.json"


def derive(result: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Normalized figures of one run: final score, curve, first evaluated step and seconds at 95% of the teacher."""
    teacher, random = reference["teacher_return"], reference["random_return"]
    curve = [normalized_score(value, teacher, random) for value in result["returns"]]
    reached = next((index for index, score in enumerate(curve) if score >= REACH), None)
    return {
        "env_id": result["env_id"],
        "arm": result["arm"],
        "seed": result["seed"],
        "parameters": result["parameters"],
        "budget": result["budget"],
        "final_return": result["final_return"],
        "final_score": normalized_score(result["final_return"], teacher, random),
        "reached_95": reached is not None,
        # Not reached: the budget, a lower bound (the summaries count the seeds that reached it)
        "steps_to_95": result["timesteps"][reached] if reached is not None else result["budget"],
        "seconds_to_95": result["train_seconds"][reached] if reached is not None else result["train_seconds"][-1],
        "train_seconds": result["train_seconds"][-1],
        "teacher_transitions": result["teacher_transitions"],
        "curve": curve,
    }


def fmt_ci(value: float | None, low: float | None = None, high: float | None = None, spec: str = ".2f") -> str:
    if value is None:
        return "n/a"
    return f"{value:{spec}} [{low:{spec}}, {high:{spec}}]" if low is not None else f"{value:{spec}}"


def summarize(
    env_id: str,
    arms: list[str],
    runs: list[dict[str, Any]],
    teacher_parameters: int,
    scratch_arms: tuple[str, ...] = SCRATCH_ARMS,
) -> list[dict[str, Any]]:
    """One row per arm with runs: final score IQM and CI, steps and seconds to 95% of the teacher, ratios to scratch."""
    by_arm = {arm: [run for run in runs if run["arm"] == arm] for arm in arms}
    by_arm = {arm: arm_runs for arm, arm_runs in by_arm.items() if arm_runs}
    # The best scratch arm: fewest steps to 95% (IQM over seeds, unreached seeds counted at their budget)
    scratch = {arm: iqm_ci(np.array([run["steps_to_95"] for run in by_arm[arm]], dtype=float)) for arm in scratch_arms
               if arm in by_arm}  # fmt: skip
    best_scratch = min(scratch, key=lambda arm: scratch[arm][0]) if scratch else None
    rows = []
    for arm, arm_runs in by_arm.items():
        steps = np.array([run["steps_to_95"] for run in arm_runs], dtype=float)
        seconds = np.array([run["seconds_to_95"] for run in arm_runs], dtype=float)
        final = iqm_ci(np.array([run["final_score"] for run in arm_runs]))
        row: dict[str, Any] = {
            "env_id": env_id,
            "arm": arm,
            "seeds": len(arm_runs),
            "parameters": arm_runs[0]["parameters"],
            "parameter_ratio": arm_runs[0]["parameters"] / teacher_parameters,
            "budget": arm_runs[0]["budget"],
            "final_score_iqm": final[0],
            "final_score_ci_low": final[1],
            "final_score_ci_high": final[2],
            "final_return_mean": float(np.mean([run["final_return"] for run in arm_runs])),
            "seeds_reached_95": int(sum(run["reached_95"] for run in arm_runs)),
            "steps_to_95_iqm": iqm_ci(steps)[0],
            "seconds_to_95_iqm": iqm_ci(seconds)[0],
            "teacher_transitions": int(np.mean([run["teacher_transitions"] for run in arm_runs])),
            "best_scratch_arm": best_scratch or "n/a",
        }
        for key, values in (("steps", steps), ("seconds", seconds)):
            if best_scratch is None:
                ratio: tuple[float | None, ...] = (None, None, None)
            else:
                baseline = iqm_ci(np.array([run[f"{key}_to_95"] for run in by_arm[best_scratch]], dtype=float))[0]
                ratio = iqm_ci(values / baseline) if baseline > 0 else (None, None, None)
            row[f"{key}_ratio_iqm"], row[f"{key}_ratio_ci_low"], row[f"{key}_ratio_ci_high"] = ratio
        rows.append(row)
    return rows


def summarize_over_envs(env_ids: list[str], arms: list[str], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Final-score IQM over envs (runs x envs, the bootstrap stratified by env), on the seeds every env has."""
    rows = []
    for arm in arms:
        per_env = [[run["final_score"] for run in runs if run["arm"] == arm and run["env_id"] == env_id] for env_id in env_ids]
        per_env = [scores for scores in per_env if scores]
        if len(per_env) < 2:
            continue
        n_seeds = min(len(scores) for scores in per_env)
        matrix = np.array([scores[:n_seeds] for scores in per_env]).T
        iqm, low, high = iqm_ci(matrix)
        rows.append({"env_id": f"all ({len(per_env)} envs)", "arm": arm, "seeds": n_seeds, "final_score_iqm": iqm,
                     "final_score_ci_low": low, "final_score_ci_high": high})  # fmt: skip
    return rows


def format_table(env_id: str, reference: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{env_id}: teacher {reference['teacher_parameters']:,} parameters, return {reference['teacher_return']:.1f}"
        f" +/- {reference['teacher_std']:.1f}; random policy {reference['random_return']:.1f}",
        f"{'arm':<40}{'params':>8}{'budget':>8}{'final score IQM [95% CI]':>27}{'steps to 95%':>14}{'reached':>9}"
        f"{'s to 95%':>10}{'teacher tr.':>12}{'steps ratio vs scratch':>28}",
    ]
    for row in rows:
        ratio = fmt_ci(row["steps_ratio_iqm"], row["steps_ratio_ci_low"], row["steps_ratio_ci_high"], ".3f")
        lines.append(
            f"{row['arm']:<40}{row['parameters']:>8,}{row['budget']:>8,}"
            f"{fmt_ci(row['final_score_iqm'], row['final_score_ci_low'], row['final_score_ci_high']):>27}"
            f"{row['steps_to_95_iqm']:>14,.0f}{row['seeds_reached_95']:>5}/{row['seeds']:<3}{row['seconds_to_95_iqm']:>10.1f}"
            f"{row['teacher_transitions']:>12,}{ratio:>28}"
        )
    return "\n".join(lines)


def iqm_curve(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IQM per evaluation of ``(runs, evaluations)`` normalized scores, and its 95% stratified bootstrap CIs."""
    from rliable import library as rly

    with numpy_global_seed(0):
        point, interval = rly.get_interval_estimates(
            {"arm": curves[:, None, :]},
            # IQM over runs at each evaluation (rliable's aggregate_iqm, vectorised over evaluations)
            lambda scores: stats.trim_mean(scores.reshape(-1, scores.shape[-1]), proportiontocut=0.25, axis=0),
            reps=BOOTSTRAP_REPS // 4,
            random_state=np.random.RandomState(0),
        )
    return point["arm"], interval["arm"]


def plot_curves(
    env_ids: list[str], arms: list[str], runs: list[dict[str, Any]], results: dict[tuple, dict], path: Path
) -> None:
    """IQM of the normalized score against environment steps, with 95% CI bands, one panel per env."""
    figure = Figure(figsize=(5.5 * len(env_ids), 4))
    axes = figure.subplots(1, len(env_ids), squeeze=False)
    for axis, env_id in zip(axes[0], env_ids, strict=True):
        for arm in arms:
            arm_runs = [run for run in runs if run["env_id"] == env_id and run["arm"] == arm]
            if not arm_runs:
                continue
            length = min(len(run["curve"]) for run in arm_runs)
            steps = np.array(results[(env_id, arm, arm_runs[0]["seed"])]["timesteps"][:length])
            point, interval = iqm_curve(np.array([run["curve"][:length] for run in arm_runs]))
            axis.plot(steps, point, label=f"{arm} ({arm_runs[0]['parameters']:,} params)")
            axis.fill_between(steps, interval[0], interval[1], alpha=0.2)
        axis.axhline(1.0, color="black", linestyle="--", linewidth=0.8, label="teacher")
        axis.axhline(REACH, color="gray", linestyle=":", linewidth=0.8, label=f"{REACH:.0%} of the teacher")
        axis.set_xlim(left=0)
        axis.set_title(env_id)
        axis.set_xlabel("environment steps (online)")
        axis.set_ylabel("normalized score, IQM over seeds")
        axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def plot_performance_profile(env_ids: list[str], arms: list[str], runs: list[dict[str, Any]], path: Path) -> None:
    """rliable's performance profiles of the final normalized scores (runs x envs), drawn from its arrays."""
    from rliable import library as rly

    score_dict = {}
    for arm in arms:
        per_env = [[run["final_score"] for run in runs if run["arm"] == arm and run["env_id"] == env_id] for env_id in env_ids]
        per_env = [scores for scores in per_env if scores]
        if per_env:
            n_seeds = min(len(scores) for scores in per_env)
            score_dict[arm] = np.array([scores[:n_seeds] for scores in per_env]).T
    taus = np.linspace(0.0, 1.25, 126)
    # create_performance_profile takes no random_state: its bootstrap draws from NumPy's global generator
    with numpy_global_seed(0):
        profiles, profile_cis = rly.create_performance_profile(score_dict, taus, reps=BOOTSTRAP_REPS // 4)
    figure = Figure(figsize=(6, 4))
    axis = figure.subplots()
    for arm, profile in profiles.items():
        axis.plot(taus, profile, label=arm)
        axis.fill_between(taus, profile_cis[arm][0], profile_cis[arm][1], alpha=0.2)
    axis.set_xlabel(r"normalized score $\tau$")
    axis.set_ylabel(r"fraction of runs with score > $\tau$")
    axis.set_title(f"Performance profiles ({', '.join(env_ids)})", fontsize=9)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def load_references(
    env_ids: list[str], n_episodes: int, path: Path, start_from: str | None = None
) -> dict[str, dict[str, Any]]:
    """
    Teacher and random returns per env, measured once per output folder and read back afterwards.

    :param start_from: Another output's references.json to copy to ``path`` if there is none yet (``--references``)
    :raises ValueError: A reference read back was measured over another number of episodes
    """
    if start_from and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(start_from, path)
    references = json.loads(path.read_text()) if path.exists() else {}
    for env_id in env_ids:
        if env_id in references and references[env_id]["episodes"] != n_episodes:
            raise ValueError(
                f"{path}: the {env_id} reference was measured over {references[env_id]['episodes']} episodes, not "
                f"{n_episodes}: pass that number of reference episodes, or move the file away to measure it again"
            )
    missing = [env_id for env_id in env_ids if env_id not in references]
    for env_id in missing:
        references[env_id] = {**reference_returns(env_id, n_episodes, 123), "episodes": n_episodes}
    if missing:
        write_json(references, path)
    return references


def add_variant_arguments(parser: Any) -> None:
    """``-params`` (the distilled arms' hyperparameters, as the Zoo's) and ``--references``, for recipe variants."""
    parser.add_argument(
        "-params", "--hyperparams", type=str, nargs="+", action=StoreDict, default={},
        help="The distilled arms' hyperparameters instead of their entry's, as the Zoo's -params (e.g. alpha:0.7 "
        "temperature:0.5); the scratch arms are left as they are. Give each variant its own --output-dir",
    )  # fmt: skip
    parser.add_argument(
        "--references", default=None,
        help="Start from this references.json (another output's) rather than measuring the teacher again, so that "
        "scores compare across output folders",
    )  # fmt: skip


def add_no_train_argument(parser: Any) -> None:
    """``--no-train``: aggregate the recorded runs only (``run_all(train=False)``)."""
    parser.add_argument(
        "--no-train", action="store_true", help="Only aggregate the runs already recorded (leave the others out)"
    )


def run_all(
    jobs: list[dict[str, Any]], n_jobs: int, log: Callable[[str], None], train: bool = True
) -> dict[tuple, dict[str, Any]]:
    """
    Run the jobs without a record (in parallel), read the others back; results by (env, arm, seed).

    :param train: False: only read the records back (the runs without one are left out and counted)
    """
    results, todo = {}, []
    for job in jobs:
        record = Path(job["record"])
        if record.exists():
            results[(job["env_id"], job["arm"], job["seed"])] = json.loads(record.read_text())
        else:
            todo.append(job)
    if not train:
        log(f"{len(jobs)} runs: {len(results)} read back, {len(todo)} without a record left out (--no-train)")
        return results
    log(f"{len(jobs)} runs: {len(todo)} to train ({n_jobs} at a time), {len(jobs) - len(todo)} read back")
    with ProcessPoolExecutor(max_workers=n_jobs) as executor:
        futures = {executor.submit(run_one, job): job for job in todo}
        for done, future in enumerate(as_completed(futures), 1):
            result = future.result()
            results[(result["env_id"], result["arm"], result["seed"])] = result
            log(f"  [{done}/{len(todo)}] {result['env_id']} / {result['arm']} / seed {result['seed']}: final return "
                f"{result['final_return']:.1f}, {result['train_seconds'][-1]:.0f} s")  # fmt: skip
    return results


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/sample_efficiency_v2")
    parser.add_argument("--envs", nargs="+", default=None, help=f"Envs (default: {' '.join(DEFAULT_ENVS)})")
    parser.add_argument("--arms", nargs="+", default=None, help=f"A subset of the arms (default: all): {ARMS}")
    parser.add_argument("--seeds", type=int, default=None, help="Seeds per env and arm (default: 10; --loss-variants: 5)")
    parser.add_argument(
        "--loss-variants",
        action="store_true",
        help=f"Compare distill_loss kl / mse / nll on {LOSS_ENV} (constant alpha), in <output-dir>/loss_variants",
    )
    parser.add_argument("--eval-episodes", type=int, default=10, help="Episodes per evaluation (default: %(default)s)")
    parser.add_argument(
        "--final-episodes", type=int, default=20, help="Episodes of the final evaluation (default: %(default)s)"
    )
    parser.add_argument(
        "--reference-episodes", type=int, default=100,
        help="Episodes of the teacher's and random policy's reference returns (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--baseline-steps", type=int, default=None, help="Budget of the from-scratch runs (default: Zoo's)")
    parser.add_argument("--student-steps", type=int, default=None, help="Budget of the students (default: config's)")
    parser.add_argument("--n-jobs", type=int, default=2, help="Runs in parallel, one CPU thread each (default: %(default)s)")
    add_no_train_argument(parser)
    add_variant_arguments(parser)
    args = parser.parse_args()
    all_arms = list(LOSS_ARMS) if args.loss_variants else list(ARMS)
    arms = args.arms or all_arms
    unknown = [arm for arm in arms if arm not in all_arms]
    if unknown:
        parser.error(f"unknown arms {unknown}: choose among {all_arms}")
    envs = args.envs or ([LOSS_ENV] if args.loss_variants else list(DEFAULT_ENVS))
    seeds = args.seeds or (LOSS_SEEDS if args.loss_variants else 10)
    output_dir = Path(args.output_dir) / ("loss_variants" if args.loss_variants else "")
    overrides: dict[str, Any] = {}
    reference_episodes = args.reference_episodes
    if args.smoke:
        envs, seeds, args.eval_episodes, args.final_episodes, reference_episodes = envs[:1], 2, 2, 2, 2
        args.baseline_steps = args.student_steps = 300
        overrides = SMOKE_OVERRIDES
    runs_dir = output_dir / "runs"
    start = time.perf_counter()
    references = load_references(envs, reference_episodes, output_dir / "references.json", args.references)

    jobs = []
    for env_id in envs:
        for arm in arms:
            for seed in range(seeds):
                jobs.append({
                    "env_id": env_id, "arm": arm, "seed": seed,
                    "budget": args.baseline_steps if arm in SCRATCH_ARMS else args.student_steps,
                    "eval_freq": eval_freq_of(env_id, args.smoke),
                    "eval_episodes": args.eval_episodes, "final_episodes": args.final_episodes,
                    "overrides": arm_overrides(arm, overrides, args.hyperparams),
                    "reference": references[env_id],
                    "record": str(record_path(runs_dir, env_id, arm, seed)),
                })  # fmt: skip
    results = run_all(jobs, args.n_jobs, print, train=not args.no_train)
    runs = [derive(result, references[result["env_id"]]) for result in results.values()]

    rows = []
    for env_id in envs:
        env_rows = summarize(env_id, arms, [run for run in runs if run["env_id"] == env_id],
                             references[env_id]["teacher_parameters"])  # fmt: skip
        rows += env_rows
        print("\n" + format_table(env_id, references[env_id], env_rows))
    over_envs = summarize_over_envs(envs, arms, runs)
    for row in over_envs:
        score = fmt_ci(row["final_score_iqm"], row["final_score_ci_low"], row["final_score_ci_high"])
        print(f"{row['env_id']}, {row['arm']}: final score IQM {score} ({row['seeds']} seeds)")
    if not any(arm in arms for arm in SCRATCH_ARMS):
        print("No scratch arm in this run: the ratios to DQN from scratch are n/a")

    write_csv(rows + over_envs, output_dir / "results.csv")
    write_csv([{key: value for key, value in run.items() if key != "curve"} for run in runs], output_dir / "runs.csv")
    write_csv(
        [{"env_id": r["env_id"], "arm": r["arm"], "seed": r["seed"], "timesteps": t, "return": v, "train_seconds": s}
         for r in results.values() for t, v, s in zip(r["timesteps"], r["returns"], r["train_seconds"], strict=True)],
        output_dir / "curves.csv",
    )  # fmt: skip
    plot_curves(envs, arms, runs, results, output_dir / "iqm_curves.png")
    plot_performance_profile(envs, arms, runs, output_dir / "performance_profile.png")
    write_json(
        {"command": command_line(), "machine": machine_description(), "torch_threads_per_run": 1, "seeds": seeds,
         "arms": arms, "hyperparams": args.hyperparams, "offline_share": OFFLINE_SHARE, "references": references,
         "results": rows, "over_envs": over_envs,
         "wall_seconds": round(time.perf_counter() - start, 1)},
        output_dir / "summary.json",
    )  # fmt: skip
    print(f"\nWrote {output_dir}/results.csv, runs.csv, curves.csv, iqm_curves.png, performance_profile.png, summary.json")


if __name__ == "__main__":
    main()
