"""
Atari distillation (Pong, Breakout): a Nature-CNN DQN teacher, trained here with the RL Zoo's settings
(zoo_configs/dqn.yml, `atari`) or given (a zip, e.g. one of the Zoo's published agents, or a Zoo log folder), and
students at about 25% and 7% of its parameters, the sizes of Rusu et al.'s policy-distillation study (the Nature
CNN's conv layers, with a 112- or 12-unit hidden layer instead of 512), distilled with zoo_configs/distilled_dqn.yml's
`atari` settings. Everything trains through the Zoo wrapper (python -m sb3_distill.zoo train), so these are exactly
the configs users get.

Per game, the table gives each model's parameters, its last evaluation (the Zoo's EvalCallback, deterministic
episodes), its score normalized between a random policy (0%) and the teacher (100%), the environment steps and
wall-clock seconds (training and evaluations) to its first evaluation at 95% of the teacher, and for the students
their ratio to the teacher's own steps to 95% of its final return when the teacher was trained here (the network
trained from scratch). A given teacher without the Zoo's evaluations.npz is evaluated here; it is read without
unpickling (sb3_distill's safe loader), as the students read it.

Meant for a GPU: the full budgets (10M teacher steps, 2M per student) take days at about 50 steps/s on a CPU.

    python benchmarks/atari.py --device cuda
    python benchmarks/atari.py --teacher PongNoFrameskip-v4=logs/dqn/PongNoFrameskip-v4_1 ...  # a zip or Zoo folder
    python benchmarks/atari.py --smoke          # minutes on a CPU: tiny budgets, checks the whole path works
"""

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/atari.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecTransposeImage

from benchmarks.common import bar_chart, base_parser, command_line, machine_description, write_csv, write_json
from sb3_distill.config import zoo_config_path
from sb3_distill.report import GreedyAgent, count_parameters, format_score, normalized_score, random_policy_return
from sb3_distill.common.teacher import load_teacher
from sb3_distill.zoo import main as zoo

# Student sizes: hidden units after the Nature CNN's conv layers (the teacher has 512)
STUDENT_FEATURES = {"25%": 112, "7%": 12}
SMOKE_PARAMS = ["buffer_size:300", "learning_starts:100", "target_update_interval:100"]
# "Reached the teacher": 95% of its score (random policy 0%, teacher 100%)
REACH = 0.95


def evaluations(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The Zoo's EvalCallback record of a run: evaluated steps and mean return at each (None without one)."""
    path = run_dir / "evaluations.npz"
    if not path.is_file():
        return None
    record = np.load(path)
    return record["timesteps"], record["results"].mean(axis=1)


def last_evaluation(run_dir: Path) -> tuple[float, float]:
    """Mean and std of the last evaluation the Zoo's EvalCallback recorded."""
    results = np.load(run_dir / "evaluations.npz")["results"][-1]
    return float(np.mean(results)), float(np.std(results))


def atari_eval_env(env_id: str, seed: int, env_kwargs: dict) -> VecEnv:
    """The Zoo's Atari evaluation env: AtariWrapper, 4 stacked frames, channels first (as SB3 shows it to a CNN)."""
    return VecTransposeImage(VecFrameStack(make_atari_env(env_id, n_envs=1, seed=seed, env_kwargs=env_kwargs), n_stack=4))


def random_return(env_id: str, episodes: int, seed: int, env_kwargs: dict) -> float:
    return random_policy_return(atari_eval_env(env_id, seed, env_kwargs), episodes, seed)


def steps_to(curve: tuple[np.ndarray, np.ndarray] | None, threshold: float, seconds: float) -> tuple[int | None, float | None]:
    """
    The first evaluated step whose mean return reaches ``threshold``, and the wall-clock seconds to it (the run's
    seconds in proportion to its steps: the Zoo records no time per evaluation).
    """
    if curve is None:
        return None, None
    timesteps, returns = curve
    reached = np.flatnonzero(returns >= threshold)
    if len(reached) == 0:
        return None, None
    step = int(timesteps[reached[0]])
    return step, seconds * step / max(int(timesteps[-1]), 1)


def zoo_train(*arguments: str) -> tuple[Path, float]:
    """Run the Zoo wrapper's train; the run's log folder and its wall-clock seconds."""
    log_folder = Path(arguments[arguments.index("-f") + 1])
    algo, env_id = arguments[arguments.index("--algo") + 1], arguments[arguments.index("--env") + 1]
    before = set((log_folder / algo).glob(f"{env_id}_*"))
    start = time.perf_counter()
    if zoo(["train", *arguments]) != 0:
        raise RuntimeError(f"sb3_distill.zoo train {' '.join(arguments)} failed")
    (run_dir,) = set((log_folder / algo).glob(f"{env_id}_*")) - before
    return run_dir, time.perf_counter() - start


def teacher_row(
    env_id: str, teacher_path: Path, seconds: float | None, args: argparse.Namespace, env_kwargs: dict
) -> tuple[dict, tuple | None]:
    """The teacher's row (its last evaluation, or an evaluation here when it has none) and its learning curve."""
    curve = evaluations(teacher_path) if teacher_path.is_dir() else None
    env = atari_eval_env(env_id, args.seed + 2, env_kwargs)
    teacher = load_teacher(teacher_path, env.observation_space, env.action_space, device="cpu")
    if curve is not None:
        teacher_return, teacher_std = last_evaluation(teacher_path)
        env_steps: int | None = int(curve[0][-1])
    else:
        returns, _ = evaluate_policy(GreedyAgent(teacher.q_values, "cpu"), env, n_eval_episodes=args.eval_episodes,
                                     deterministic=True, return_episode_rewards=True)  # fmt: skip
        teacher_return, teacher_std, env_steps = float(np.mean(returns)), float(np.std(returns)), None
    random = random_return(env_id, args.eval_episodes, args.seed + 1, env_kwargs)
    # From scratch: the teacher's network reaching 95% of its own final return (random = 0%)
    steps, seconds_to = steps_to(curve, random + REACH * (teacher_return - random), seconds or 0.0)
    row = {"env_id": env_id, "model": "teacher (Nature CNN)", "parameters": count_parameters(teacher.network),
           "parameter_ratio": 1.0, "env_steps": env_steps, "return_mean": teacher_return, "return_std": teacher_std,
           "score_pct": 100.0, "random_return": random, "steps_to_95": steps,
           "seconds_to_95": seconds_to if seconds is not None else None, "train_seconds": seconds,
           "steps_ratio_to_teacher": 1.0 if steps else None}  # fmt: skip
    return row, curve


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/atari")
    parser.add_argument("--envs", nargs="+", default=["PongNoFrameskip-v4", "BreakoutNoFrameskip-v4"])
    parser.add_argument("--teacher-steps", type=int, default=None, help="Teacher budget (default: the Zoo's, 10M)")
    parser.add_argument("--student-steps", type=int, default=None, help="Student budget (default: the config's, 2M)")
    parser.add_argument(
        "--teacher",
        "--teacher-folder",
        nargs="*",
        default=[],
        metavar="ENV=PATH",
        help="Use a given teacher for ENV: an SB3 zip (e.g. one of the Zoo's published agents) or a Zoo log folder",
    )
    parser.add_argument("--eval-freq", type=int, default=100_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    extra_params: list[str] = []
    env_kwargs: dict[str, int] = {}
    if args.smoke:
        args.envs, args.teacher_steps, args.student_steps, args.eval_freq = args.envs[:1], 200, 200, 100
        args.eval_episodes = 1
        extra_params = SMOKE_PARAMS
        # Episodes of 300 frames (75 agent steps), so that evaluations take seconds
        env_kwargs = {"max_episode_steps": 300}
    given = {}
    for item in args.teacher:
        if "=" not in item:
            parser.error(f"--teacher {item!r}: expected ENV=PATH, e.g. PongNoFrameskip-v4=logs/dqn/PongNoFrameskip-v4_1")
        env_id, path = item.split("=", 1)
        given[env_id] = Path(path)
    common = ["--device", args.device, "--seed", str(args.seed), "--eval-episodes", str(args.eval_episodes)]
    if env_kwargs:
        common += ["--env-kwargs", *(f"{key}:{value}" for key, value in env_kwargs.items())]
        common += ["--eval-env-kwargs", *(f"{key}:{value}" for key, value in env_kwargs.items())]
    output_dir = Path(args.output_dir)
    log_folder = output_dir / "logs"

    rows = []
    start = time.perf_counter()
    for env_id in args.envs:
        budget = ["-n", str(args.teacher_steps)] if args.teacher_steps else []
        teacher_seconds: float | None = None
        if env_id in given:
            teacher_path = given[env_id]
        else:
            teacher_path, teacher_seconds = zoo_train(
                "--algo", "dqn", "--env", env_id, "--conf-file", str(zoo_config_path("dqn")), "-f", str(log_folder),
                "--eval-freq", str(args.eval_freq), *budget, *common, *(["-params", *extra_params] if extra_params else []),
            )  # fmt: skip
        row, _ = teacher_row(env_id, teacher_path, teacher_seconds, args, env_kwargs)
        rows.append(row)
        teacher_return, random, teacher_steps = row["return_mean"], row["random_return"], row["steps_to_95"]
        for label, features_dim in STUDENT_FEATURES.items():
            student_budget = ["-n", str(args.student_steps)] if args.student_steps else []
            run_dir, seconds = zoo_train(
                "--algo", "distilled_dqn", "--env", env_id, "-f", str(log_folder), "--eval-freq", str(args.eval_freq),
                *student_budget, *common, "-params", f"teacher:'{teacher_path.resolve()}'",
                f"policy_kwargs:dict(features_extractor_kwargs=dict(features_dim={features_dim}))", *extra_params,
            )  # fmt: skip
            student = DQN.load(run_dir / f"{env_id}.zip", device="cpu")
            student_return, student_std = last_evaluation(run_dir)
            parameters = count_parameters(student.q_net)
            steps, seconds_to = steps_to(evaluations(run_dir), random + REACH * (teacher_return - random), seconds)
            rows.append({"env_id": env_id, "model": f"student {label} (features_dim {features_dim})",
                         "parameters": parameters, "parameter_ratio": parameters / row["parameters"],
                         "env_steps": int(student.num_timesteps), "return_mean": student_return, "return_std": student_std,
                         "score_pct": 100 * normalized_score(student_return, teacher_return, random),
                         "random_return": random, "steps_to_95": steps, "seconds_to_95": seconds_to,
                         "train_seconds": seconds,
                         "steps_ratio_to_teacher": steps / teacher_steps if steps and teacher_steps else None})  # fmt: skip

    print(
        f"\n{'env':<22}{'model':<30}{'params':>10}{'ratio':>7}{'env steps':>11}{'return':>16}{'% teacher':>10}"
        f"{'steps to 95%':>13}{'s to 95%':>10}{'steps vs scratch':>17}"
    )
    for row in rows:
        steps = "n/a" if row["steps_to_95"] is None else f"{row['steps_to_95']:,}"
        seconds_to = "n/a" if row["seconds_to_95"] is None else f"{row['seconds_to_95']:.0f}"
        ratio = "n/a" if row["steps_ratio_to_teacher"] is None else f"{row['steps_ratio_to_teacher']:.2f}"
        env_steps = "given" if row["env_steps"] is None else f"{row['env_steps']:,}"
        print(f"{row['env_id']:<22}{row['model']:<30}{row['parameters']:>10,}{row['parameter_ratio']:>7.1%}{env_steps:>11}"
              f"{row['return_mean']:>9.1f} +/-{row['return_std']:>4.1f}{format_score(row['score_pct'] / 100):>10}"
              f"{steps:>13}{seconds_to:>10}{ratio:>17}")  # fmt: skip
    print(
        "(% teacher: random policy = 0%, teacher = 100%; steps to 95%: first evaluation at 95% of the teacher, for the "
        "teacher its own final return; steps vs scratch: to the teacher's network trained from scratch here)"
    )
    write_csv(rows, output_dir / "atari.csv")
    bar_chart(
        [f"{row['env_id'].replace('NoFrameskip-v4', '')}\n{row['model'].split(' (')[0]}" for row in rows],
        {
            "% of teacher score": [row["score_pct"] for row in rows],
            "% of teacher parameters": [100 * row["parameter_ratio"] for row in rows],
        },
        "%",
        output_dir / "atari.png",
    )
    write_json({"command": command_line(), "machine": machine_description(),
                "wall_seconds": round(time.perf_counter() - start, 1),
                "rows": rows}, output_dir / "atari.json")  # fmt: skip
    print(f"Wrote {output_dir}/atari.csv, atari.json, atari.png (Zoo logs with evaluations.npz under {log_folder})")


if __name__ == "__main__":
    main()
