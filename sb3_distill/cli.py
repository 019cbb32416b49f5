"""
The ``sb3-distill`` command.

- ``sb3-distill distill``: distill a student from a teacher and print the comparison (no arguments: CartPole-v1
  with the teacher that ships with the package).
- ``sb3-distill teacher``: train a DQN teacher with the RL Zoo's settings from ``zoo_configs/dqn.yml``.
- ``sb3-distill zoo train|enjoy|record_video ...``: rl_zoo3 with ``distilled_dqn`` registered.
- ``sb3-distill tune``: an Optuna study of alpha and temperature (``sb3_distill.tuning``, the ``tuning`` extra).
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.utils import get_latest_run_id

from sb3_distill.config import (
    ZOO_EVALUATED_KEYS,
    ZOO_RUN_KEYS,
    evaluate_zoo_value,
    read_zoo_config,
    resolve_relative_to,
    zoo_config_path,
)
from sb3_distill.distilled_dqn import DistilledDQN
from sb3_distill.report import (
    comparison_dict,
    comparison_table,
    evaluate_agent,
    plot_learning_curve,
    random_policy_return,
)
from sb3_distill.teacher import load_model_zip

DEFAULT_ENV = "CartPole-v1"
# Zoo keys that need the Zoo's env building (wrappers, frame stacking, normalization): use the Zoo wrapper for those
ZOO_ONLY_KEYS = ("env_wrapper", "frame_stack", "normalize", "env_kwargs", "callback")


def zoo_recipe(
    config_file: Path, env_id: str, overrides: dict[str, Any] | None = None
) -> tuple[int, str, int, dict[str, Any]]:
    """
    Read one env's entry of a Zoo YAML file for a run outside the Zoo.

    :param config_file: The YAML file
    :param env_id: The env key
    :param overrides: Values that replace the entry's, written as in the YAML file (as the Zoo's ``-params``)
    :return: (n_timesteps, policy, n_envs, constructor keyword arguments)
    """
    hyperparams = {**read_zoo_config(config_file, env_id), **(overrides or {})}
    zoo_only = sorted(key for key in ZOO_ONLY_KEYS if key in hyperparams)
    if zoo_only:
        raise ValueError(
            f"The {env_id!r} entry of {str(config_file)!r} uses {zoo_only}, which need the RL Zoo's env building: "
            "run it through `sb3-distill zoo train` instead"
        )
    n_timesteps = int(hyperparams.get("n_timesteps", 100_000))
    policy = hyperparams.get("policy", "MlpPolicy")
    n_envs = int(hyperparams.get("n_envs", 1))
    kwargs = {key: value for key, value in hyperparams.items() if key not in ZOO_RUN_KEYS}
    for key in ZOO_EVALUATED_KEYS:
        if key in kwargs:
            kwargs[key] = evaluate_zoo_value(key, kwargs[key])
    return n_timesteps, policy, n_envs, kwargs


def next_run_dir(log_folder: str | os.PathLike, env_id: str) -> Path:
    """A new run folder ``<log_folder>/<env_id>_<n>``, numbered after the existing ones as the Zoo does."""
    run_id = get_latest_run_id(str(log_folder), env_id) + 1
    run_dir = Path(log_folder) / f"{env_id}_{run_id}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def cmd_teacher(args: argparse.Namespace) -> int:
    config_file = Path(args.conf_file) if args.conf_file else zoo_config_path("dqn")
    n_timesteps, policy, n_envs, kwargs = zoo_recipe(config_file, args.env)
    n_timesteps = args.n_timesteps or n_timesteps
    output = Path(args.output or f"teachers/{args.env}_dqn.zip")
    if output.suffix != ".zip":
        output = output.with_name(output.name + ".zip")
    if output.exists() and not args.force:
        print(f"error: {output} exists; pass --force to overwrite it or --output to choose another file", file=sys.stderr)
        return 2
    print(f"Training a DQN teacher on {args.env} for {n_timesteps:,} steps with the Zoo settings of {config_file}")
    env = make_vec_env(args.env, n_envs=n_envs, seed=args.seed)
    model = DQN(policy, env, seed=args.seed, verbose=args.verbose, device=args.device, **kwargs)
    start = time.perf_counter()
    model.learn(n_timesteps, progress_bar=not args.no_progress_bar)
    train_seconds = time.perf_counter() - start
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 10_000)
    result = evaluate_agent("teacher", model, model.q_net, eval_env, args.eval_episodes)
    metadata = {
        "env_id": args.env,
        "algo": "dqn",
        "seed": args.seed,
        "n_timesteps": n_timesteps,
        "env_steps": int(model.num_timesteps),
        "config_file": args.conf_file or "zoo_configs/dqn.yml",
        "hyperparams": read_zoo_config(config_file, args.env),
        "train_seconds": round(train_seconds, 1),
        "evaluation": {"mean_return": result.mean_return, "std_return": result.std_return, "n_episodes": result.n_episodes},
        "parameters": result.parameters,
        "command": "sb3-distill " + " ".join(args.argv),
    }
    output.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(
        f"Saved {output} ({result.parameters:,} parameters, trained in {train_seconds:.0f} s): "
        f"mean return {result.mean_return:.1f} +/- {result.std_return:.1f} over {result.n_episodes} episodes"
    )
    return 0


def run_teacher(teacher_option: str | None, entry_teacher: str | None, config_file: Path, env_id: str) -> Path:
    """
    The teacher of a run: the command line's (relative to the working directory), else the config entry's
    (relative to the config file's folder).

    :param teacher_option: ``--teacher``, or None
    :param entry_teacher: The ``teacher`` of the env's config entry, or None
    :param config_file: The config file, for relative paths and messages
    :param env_id: The env, for messages
    """
    if teacher_option is not None:
        return Path(teacher_option)
    if entry_teacher is not None:
        return resolve_relative_to(entry_teacher, config_file.parent)
    raise ValueError(f"No teacher for {env_id!r} in {str(config_file)!r}: pass --teacher path/to/teacher.zip")


def student_recipe(args: argparse.Namespace) -> tuple[Path, int, str, dict[str, Any]]:
    """
    The student's settings: the env's entry of ``zoo_configs/distilled_dqn.yml`` (or of ``--conf-file``),
    overridden by the command line.

    :return: (teacher path, n_timesteps, policy, constructor keyword arguments)
    """
    config_file = Path(args.conf_file) if args.conf_file else zoo_config_path("distilled_dqn")
    n_timesteps, policy, _, kwargs = zoo_recipe(config_file, args.env)
    teacher = run_teacher(args.teacher, kwargs.pop("teacher", None), config_file, args.env)
    for key in ("alpha", "temperature"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    if args.net_arch is not None:
        kwargs["policy_kwargs"] = {**kwargs.get("policy_kwargs", {}), "net_arch": args.net_arch}
    return teacher, args.n_timesteps or n_timesteps, policy, kwargs


def cmd_distill(args: argparse.Namespace) -> int:
    teacher_path, n_timesteps, policy, kwargs = student_recipe(args)
    env = make_vec_env(args.env, n_envs=1, seed=args.seed)
    # Load (and check) the teacher before any training; only load teachers you trust
    student = DistilledDQN(
        policy, env, teacher=teacher_path, seed=args.seed, verbose=args.verbose, device=args.device, **kwargs
    )
    run_dir = next_run_dir(args.log_folder, args.env)
    print(
        f"Distilling {student.teacher} into a {kwargs.get('policy_kwargs', {}).get('net_arch')} student on {args.env} "
        f"for {n_timesteps:,} steps (alpha={student.alpha}, temperature={student.temperature}) -> {run_dir}"
    )
    eval_callback = EvalCallback(
        make_vec_env(args.env, n_envs=1, seed=args.seed + 1_000),
        n_eval_episodes=args.curve_episodes,
        eval_freq=args.eval_freq,
        log_path=str(run_dir),
        deterministic=True,
        verbose=0,
    )
    start = time.perf_counter()
    student.learn(n_timesteps, callback=eval_callback, progress_bar=not args.no_progress_bar)
    train_seconds = time.perf_counter() - start
    student.save(run_dir / "student.zip")

    assert student.teacher is not None  # set by the constructor from teacher_path
    teacher_model = load_model_zip(teacher_path, device=student.device)
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 10_000)
    teacher_result = evaluate_agent("teacher", teacher_model, student.teacher.network, eval_env, args.eval_episodes)
    student_result = evaluate_agent("student", student, student.q_net, eval_env, args.eval_episodes)

    random_return = random_policy_return(eval_env, args.eval_episodes, seed=args.seed)
    print(
        f"\n{args.env}: distilled in {train_seconds:.0f} s\n" + comparison_table(teacher_result, student_result, random_return)
    )
    comparison = comparison_dict(teacher_result, student_result, random_return)
    comparison.update(
        env_id=args.env,
        teacher_path=str(teacher_path),
        alpha=student.alpha,
        temperature=student.temperature,
        seed=args.seed,
        train_seconds=round(train_seconds, 1),
        command="sb3-distill " + " ".join(args.argv),
    )
    (run_dir / "comparison.json").write_text(json.dumps(comparison, indent=2, default=str) + "\n")
    if (run_dir / "evaluations.npz").exists():
        plot_learning_curve(
            run_dir / "evaluations.npz",
            teacher_result.mean_return,
            run_dir / "learning_curve.png",
            title=f"{args.env}: student ({student_result.parameters:,} params) vs teacher",
        )
    print(
        f"\nSaved {run_dir / 'student.zip'} (loads with stable_baselines3.DQN.load), "
        f"{run_dir / 'learning_curve.png'} and {run_dir / 'comparison.json'}"
    )
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sb3-distill", description="Policy distillation into DQN for Stable-Baselines3")
    subparsers = parser.add_subparsers(dest="command")

    def add_common(subparser: argparse.ArgumentParser) -> None:
        subparser.add_argument("--env", default=DEFAULT_ENV, help="Gymnasium env id (default: %(default)s)")
        subparser.add_argument("--seed", type=int, default=0, help="Random seed (default: %(default)s)")
        subparser.add_argument(
            "-n",
            "--n-timesteps",
            type=positive_int,
            default=None,
            help="Environment steps (default: the env's entry in the config file)",
        )
        subparser.add_argument("--conf-file", default=None, help="Zoo-format YAML file with the hyperparameters")
        subparser.add_argument(
            "--eval-episodes", type=positive_int, default=20, help="Episodes of the final evaluation (default: %(default)s)"
        )
        subparser.add_argument("--device", default="auto", help="torch device (default: %(default)s)")
        subparser.add_argument("--no-progress-bar", action="store_true", help="Hide the progress bar")
        subparser.add_argument("--verbose", type=int, default=0, help="SB3 verbosity (default: %(default)s)")

    distill = subparsers.add_parser("distill", help="Distill a student from a teacher and compare them (the main job)")
    add_common(distill)
    distill.add_argument(
        "--teacher", default=None, help="Trusted SB3 teacher zip (default: the env's teacher in zoo_configs/distilled_dqn.yml)"
    )
    distill.add_argument("--alpha", type=float, default=None, help="Weight of the distillation term in [0, 1]")
    distill.add_argument("--temperature", type=float, default=None, help="Softmax temperature > 0")
    distill.add_argument(
        "--net-arch",
        type=positive_int,
        nargs="+",
        default=None,
        help="Student hidden layer sizes, e.g. --net-arch 64 (default: from the config)",
    )
    distill.add_argument("-f", "--log-folder", default="runs/distill", help="Output folder (default: %(default)s)")
    distill.add_argument(
        "--eval-freq",
        type=positive_int,
        default=1_000,
        help="Evaluate the student every this many steps for the curve (default: %(default)s)",
    )
    distill.add_argument(
        "--curve-episodes", type=positive_int, default=5, help="Episodes per learning-curve point (default: %(default)s)"
    )
    distill.set_defaults(func=cmd_distill)

    teacher = subparsers.add_parser("teacher", help="Train a DQN teacher with the RL Zoo's settings")
    add_common(teacher)
    teacher.add_argument("-o", "--output", default=None, help="Teacher zip to write (default: teachers/<env>_dqn.zip)")
    teacher.add_argument("--force", action="store_true", help="Overwrite --output if it exists")
    teacher.set_defaults(func=cmd_teacher)

    # Listed for --help; main() hands everything after `zoo` to sb3_distill.zoo untouched
    subparsers.add_parser("zoo", help="Run rl_zoo3 (train, enjoy, record_video, ...) with distilled_dqn registered")

    add_tune_command(subparsers)
    return parser


def add_tune_command(subparsers: Any) -> None:
    """Add ``sb3-distill tune``, which needs Optuna (the ``tuning`` extra): without it, a stub that says so."""
    try:
        from sb3_distill.tuning import add_tune_arguments, cmd_tune
    except ImportError as error:
        reason = f"sb3-distill tune needs the tuning extra ({error}): pip install 'sb3_distill[tuning]'"

        def cmd_unavailable(_: argparse.Namespace) -> int:
            print(f"error: {reason}", file=sys.stderr)
            return 2

        # No option prefix: whatever options were given are taken in, and the reason is printed
        tune = subparsers.add_parser("tune", help="Optuna study of alpha and temperature (not installed)", prefix_chars="\0")
        tune.add_argument("ignored", nargs=argparse.REMAINDER)
        tune.set_defaults(func=cmd_unavailable, device="cpu")
        return
    tune = subparsers.add_parser("tune", help="Optuna study of alpha and temperature: resumable and distributed")
    add_tune_arguments(tune)
    tune.set_defaults(func=cmd_tune)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["zoo"]:
        from sb3_distill.zoo import main as zoo_main

        return zoo_main(argv[1:])
    parser = build_parser()
    # No subcommand (no arguments at all, or only options): the main job, `distill`
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["distill", *argv]
    args = parser.parse_args(argv)
    args.argv = argv
    if args.device == "auto":
        args.device = "cuda" if th.cuda.is_available() else "cpu"
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
