"""
Atari distillation (Pong, Breakout): a Nature-CNN DQN teacher trained with the RL Zoo's settings
(zoo_configs/dqn.yml, `atari`), and students at about 25% and 7% of its parameters, the sizes of Rusu et al.'s
policy-distillation study (the Nature CNN's conv layers, with a 112- or 12-unit hidden layer instead of 512),
distilled with zoo_configs/distilled_dqn.yml's `atari` settings. Everything runs through the Zoo wrapper
(python -m sb3_distill.zoo train), so these are exactly the configs users get.

Meant for a GPU: the full budgets (10M teacher steps, 2M per student) take days at about 50 steps/s on a CPU.

    python benchmarks/atari.py --device cuda
    python benchmarks/atari.py --teacher-folder PongNoFrameskip-v4=logs/dqn/PongNoFrameskip-v4_1 ...  # reuse teachers
    python benchmarks/atari.py --smoke          # minutes on a CPU: tiny budgets, checks the whole path works
"""

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/atari.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_atari_env
from stable_baselines3.common.vec_env import VecFrameStack

from benchmarks.common import bar_chart, base_parser, command_line, machine_description, write_csv, write_json
from sb3_distill.config import zoo_config_path
from sb3_distill.report import count_parameters, format_score, normalized_score, random_policy_return
from sb3_distill.teacher import resolve_model_path
from sb3_distill.zoo import main as zoo

# Student sizes: hidden units after the Nature CNN's conv layers (the teacher has 512)
STUDENT_FEATURES = {"25%": 112, "7%": 12}
SMOKE_PARAMS = ["buffer_size:300", "learning_starts:100", "target_update_interval:100"]


def last_evaluation(run_dir: Path) -> tuple[float, float]:
    """Mean and std of the last evaluation the Zoo's EvalCallback recorded."""
    results = np.load(run_dir / "evaluations.npz")["results"][-1]
    return float(np.mean(results)), float(np.std(results))


def random_return(env_id: str, episodes: int, seed: int, env_kwargs: dict) -> float:
    env = VecFrameStack(make_atari_env(env_id, n_envs=1, seed=seed, env_kwargs=env_kwargs), n_stack=4)
    return random_policy_return(env, episodes, seed)


def zoo_train(*arguments: str) -> Path:
    """Run the Zoo wrapper's train and return the run's log folder."""
    log_folder = Path(arguments[arguments.index("-f") + 1])
    algo, env_id = arguments[arguments.index("--algo") + 1], arguments[arguments.index("--env") + 1]
    before = set((log_folder / algo).glob(f"{env_id}_*"))
    if zoo(["train", *arguments]) != 0:
        raise RuntimeError(f"sb3_distill.zoo train {' '.join(arguments)} failed")
    (run_dir,) = set((log_folder / algo).glob(f"{env_id}_*")) - before
    return run_dir


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/atari")
    parser.add_argument("--envs", nargs="+", default=["PongNoFrameskip-v4", "BreakoutNoFrameskip-v4"])
    parser.add_argument("--teacher-steps", type=int, default=None, help="Teacher budget (default: the Zoo's, 10M)")
    parser.add_argument("--student-steps", type=int, default=None, help="Student budget (default: the config's, 2M)")
    parser.add_argument("--teacher-folder", nargs="*", default=[], help="ENV=ZOO_LOG_FOLDER: reuse trained teachers")
    parser.add_argument("--eval-freq", type=int, default=100_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    extra_params: list[str] = []
    env_kwargs: dict[str, int] = {}
    if args.smoke:
        args.envs, args.teacher_steps, args.student_steps, args.eval_freq = args.envs[:1], 200, 200, 200
        args.eval_episodes = 1
        extra_params = SMOKE_PARAMS
        # Episodes of 300 frames (75 agent steps), so that evaluations take seconds
        env_kwargs = {"max_episode_steps": 300}
    common = ["--device", args.device, "--seed", str(args.seed), "--eval-episodes", str(args.eval_episodes)]
    if env_kwargs:
        common += ["--env-kwargs", *(f"{key}:{value}" for key, value in env_kwargs.items())]
        common += ["--eval-env-kwargs", *(f"{key}:{value}" for key, value in env_kwargs.items())]
    output_dir = Path(args.output_dir)
    log_folder = output_dir / "logs"
    given_teachers = dict(item.split("=", 1) for item in args.teacher_folder)

    rows = []
    start = time.perf_counter()
    for env_id in args.envs:
        budget = ["-n", str(args.teacher_steps)] if args.teacher_steps else []
        if env_id in given_teachers:
            teacher_dir = Path(given_teachers[env_id])
        else:
            teacher_dir = zoo_train("--algo", "dqn", "--env", env_id, "--conf-file", str(zoo_config_path("dqn")), "-f",
                                    str(log_folder), "--eval-freq", str(args.eval_freq), *budget, *common,
                                    *(["-params", *extra_params] if extra_params else []))  # fmt: skip
        teacher = DQN.load(resolve_model_path(teacher_dir), device="cpu")
        teacher_parameters = count_parameters(teacher.q_net)
        teacher_return, teacher_std = last_evaluation(teacher_dir)
        random = random_return(env_id, args.eval_episodes, args.seed + 1, env_kwargs)
        rows.append({"env_id": env_id, "model": "teacher (Nature CNN)", "parameters": teacher_parameters,
                     "parameter_ratio": 1.0,
                     "env_steps": int(teacher.num_timesteps), "return_mean": teacher_return, "return_std": teacher_std,
                     "score_pct": 100.0, "random_return": random})  # fmt: skip
        for label, features_dim in STUDENT_FEATURES.items():
            student_budget = ["-n", str(args.student_steps)] if args.student_steps else []
            run_dir = zoo_train("--algo", "distilled_dqn", "--env", env_id, "-f", str(log_folder),
                                "--eval-freq", str(args.eval_freq), *student_budget, *common,
                                "-params", f"teacher:'{teacher_dir.resolve()}'",
                                f"policy_kwargs:dict(features_extractor_kwargs=dict(features_dim={features_dim}))",
                                *extra_params)  # fmt: skip
            student = DQN.load(run_dir / f"{env_id}.zip", device="cpu")
            student_return, student_std = last_evaluation(run_dir)
            parameters = count_parameters(student.q_net)
            score = 100 * normalized_score(student_return, teacher_return, random)
            rows.append({"env_id": env_id, "model": f"student {label} (features_dim {features_dim})", "parameters": parameters,
                         "parameter_ratio": parameters / teacher_parameters, "env_steps": int(student.num_timesteps),
                         "return_mean": student_return, "return_std": student_std, "score_pct": score,
                         "random_return": random})  # fmt: skip

    print(f"\n{'env':<24}{'model':<32}{'params':>11}{'ratio':>8}{'env steps':>12}{'return':>16}{'% teacher':>11}")
    for row in rows:
        score = format_score(row["score_pct"] / 100)
        print(f"{row['env_id']:<24}{row['model']:<32}{row['parameters']:>11,}{row['parameter_ratio']:>8.1%}{row['env_steps']:>12,}"
              f"{row['return_mean']:>9.1f} +/-{row['return_std']:>4.1f}{score:>11}")  # fmt: skip
    print("(% teacher: random policy = 0%, teacher = 100%; n/a: the teacher does no better than random)")
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
