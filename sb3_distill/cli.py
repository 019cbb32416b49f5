"""
The ``sb3-distill`` command: it parses arguments and calls the rest of the package (nothing imports it).

- ``sb3-distill distill``: distill a student from a teacher and print the comparison (no arguments: CartPole-v1
  with the teacher that ships with the package).
- ``sb3-distill teacher``: train a teacher with the RL Zoo's settings (``zoo_configs/dqn.yml``, ``zoo_configs/sac.yml``,
  or the Zoo's own file for other algorithms).
- ``sb3-distill tune``: an Optuna study of alpha and temperature.
- ``sb3-distill zoo train|enjoy|record_video|record_training ...``: rl_zoo3 with ``distilled_dqn`` registered.
- ``sb3-distill export``: export a student's acting network (values of DQN, QR-DQN; log-probabilities or actions of
  PPO, A2C; actions of SAC, TD3) to ONNX or TorchScript, checked against SB3's ``predict`` and timed.
"""

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch as th
from rl_zoo3.utils import StoreDict

from sb3_distill.algorithms import STUDENT_ALGOS, TEACHER_ALGOS
from sb3_distill.export import EXPORT_FORMATS, Q_TOLERANCE, MissingExtraError, export_student
from sb3_distill.checkpoints import read_run_file
from sb3_distill.interrupts import SIGNAL_EXIT_STATUS, RunInterrupted
from sb3_distill.recipe import ALGO_NAME, DEFAULT_ENV, TEACHER_ALGO, Recipe, make_recipe
from sb3_distill.runs import distill
from sb3_distill.teacher_runs import output_of_run, read_teacher_run, train_teacher
from sb3_distill.tuning import OBJECTIVES, PRUNERS, SAMPLERS, StudySettings, load_study_settings, tune

# What a command reports as a one-line `error:` (exit status 2) rather than a traceback
# (OSError: a missing, unreadable or unwritable file or folder, named in its message)
USER_ERRORS = (ValueError, TypeError, OSError, KeyError)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not 0 or a positive integer")
    return value


class ZooParams(StoreDict):
    """The Zoo's ``-params key:value ...`` (rl_zoo3's own parser), with a usage error instead of a traceback."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string=None):
        try:
            super().__call__(parser, namespace, values, option_string)
        except Exception as error:
            parser.error(f"{option_string} {' '.join(values)}: each value must be key:python_value ({error})")


def add_recipe_arguments(parser: argparse.ArgumentParser, algo: str) -> None:
    """The options that choose a recipe (algorithm, env, config entry, overrides) and run it."""
    algos = STUDENT_ALGOS if algo == ALGO_NAME else TEACHER_ALGOS
    parser.add_argument(
        "--algo", default=algo, choices=sorted(algos), help="The RL Zoo name of the algorithm (default: %(default)s)"
    )
    parser.add_argument("--env", default=DEFAULT_ENV, help="Gymnasium env id (default: %(default)s)")
    parser.add_argument(
        "--conf-file",
        default=None,
        help="Zoo-format .yml or .py config (default: zoo_configs/<algo>.yml"
        + ("" if algo == ALGO_NAME else ", else the RL Zoo's own hyperparams/<algo>.yml")
        + "); an env without an entry uses 'default'",
    )
    parser.add_argument(
        "-params",
        "--hyperparams",
        nargs="+",
        action=ZooParams,
        default={},
        metavar="KEY:VALUE",
        help="Replace values of the config entry, as the Zoo's -params "
        "(e.g. learning_rate:1e-3 policy_kwargs:'dict(net_arch=[8])')",
    )
    parser.add_argument(
        "-n", "--n-timesteps", type=positive_int, default=None, help="Environment steps (default: the config entry's)"
    )
    parser.add_argument("--device", default="auto", help="torch device (default: %(default)s)")
    if algo == ALGO_NAME:
        parser.add_argument(
            "--trust-teacher",
            action="store_true",
            help="Load the teacher with SB3's full loader, which unpickles (runs code from) the file: trusted files only",
        )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="Random seed (default: %(default)s)")
    parser.add_argument(
        "--eval-episodes", type=positive_int, default=20, help="Episodes of the final evaluation (default: %(default)s)"
    )
    parser.add_argument("--no-progress-bar", action="store_true", help="Hide the progress bar")
    parser.add_argument("--verbose", type=int, default=0, help="SB3 verbosity (default: %(default)s)")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of a run that :func:`add_run_arguments` and ``--device`` give."""
    return dict(
        seed=args.seed,
        device=args.device,
        verbose=args.verbose,
        progress_bar=not args.no_progress_bar,
        eval_episodes=args.eval_episodes,
        command=args.command_line,
    )


def add_distill_command(subparsers: Any) -> None:
    parser = subparsers.add_parser("distill", help="Distill a student from a teacher and compare them (the main job)")
    add_recipe_arguments(parser, ALGO_NAME)
    add_run_arguments(parser)
    parser.add_argument(
        "--teacher", default=None, help="SB3 teacher zip or RL Zoo log folder (default: the config entry's teacher)"
    )
    parser.add_argument("--alpha", type=float, default=None, help="Weight of the distillation term in [0, 1]")
    parser.add_argument("--temperature", type=float, default=None, help="Softmax temperature > 0")
    parser.add_argument(
        "--net-arch", type=positive_int, nargs="+", default=None, help="Student hidden layers, e.g. --net-arch 64"
    )
    parser.add_argument("-f", "--log-folder", default="runs/distill", help="Output folder (default: %(default)s)")
    parser.add_argument("-tb", "--tensorboard-log", default=None, help="TensorBoard log folder (default: none)")
    parser.add_argument(
        "--eval-freq", type=positive_int, default=1_000, help="Steps between learning-curve points (default: %(default)s)"
    )
    parser.add_argument(
        "--curve-episodes", type=positive_int, default=5, help="Episodes per learning-curve point (default: %(default)s)"
    )
    parser.add_argument(
        "--reference-episodes",
        type=positive_int,
        default=100,
        help="Episodes of the teacher's and a random policy's returns, the score's references, as the benchmarks "
        "measure them (default: %(default)s)",
    )
    add_checkpoint_arguments(parser, "student", "the run folder")
    parser.set_defaults(func=cmd_distill)


def add_checkpoint_arguments(parser: argparse.ArgumentParser, model: str, run_folder: str) -> None:
    """``--checkpoint-freq`` and ``--resume``, for a run that saves ``model`` (student or teacher) into ``run_folder``."""
    parser.add_argument(
        "--checkpoint-freq",
        type=non_negative_int,
        default=None,
        help=f"Steps between checkpoints of the {model} and its training state (replay buffer, normalization statistics) "
        f"in {run_folder} (default: a tenth of the budget, at least 10,000; 0: only when interrupted by Ctrl-C or SIGTERM)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="Continue an interrupted or killed run (RUN_DIR: its run folder) from its latest checkpoint to its budget, "
        "with its own settings (only --device, --verbose and --no-progress-bar may be given with it)",
    )


def student_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``-params`` with the student options given on the command line."""
    overrides = dict(args.hyperparams)
    if args.trust_teacher:
        overrides["trust_teacher"] = True
    return overrides


# What a command says when Ctrl-C or SIGTERM stops it outside a run's training (which saves its work first)
INTERRUPTED = {
    "distill": "stopped before training started; nothing was trained, so nothing was saved",
    "teacher": "stopped before training started; nothing new was trained, so nothing was saved",
    "tune": "stopped: the study's finished trials are kept in its storage; run the same command to continue the study",
    "export": "stopped: nothing was written",
}
# What may be given with --resume: the rest of the settings are the run's own (its run.json)
RESUME_OPTIONS = {"--resume": 1, "--device": 1, "--verbose": 1, "--no-progress-bar": 0}
# How a run started from Python (its run.json records no command line) is resumed
PYTHON_RESUME = {
    "distill": "sb3_distill.runs.distill(recipe, log_folder, resume='{run_dir}')",
    "teacher": "sb3_distill.teacher_runs.train_teacher(recipe, output, resume=True)",
}


def resumed_arguments(args: argparse.Namespace, read_run: Callable[[Path], dict[str, Any]]) -> argparse.Namespace:
    """
    ``--resume RUN_DIR``: the arguments the run was started with (its ``run.json``), with those of
    :data:`RESUME_OPTIONS` that this command line gives.

    :param args: This command line's arguments
    :param read_run: Reads the run folder's ``run.json`` (:func:`sb3_distill.checkpoints.read_run_file`)
    """
    given = args.argv[1:]  # after the subcommand
    index = 0
    while index < len(given):
        option = given[index].split("=", 1)[0]
        if option not in RESUME_OPTIONS:
            raise ValueError(
                f"--resume takes the run's own settings (its run.json): {given[index]!r} cannot be given with it "
                f"(only {', '.join(RESUME_OPTIONS)})"
            )
        index += 1 + (RESUME_OPTIONS[option] if "=" not in given[index] else 0)
    run_dir = Path(args.resume)
    run = read_run(run_dir)
    if run["argv"] is None:
        raise ValueError(
            f"--resume {run_dir}: the run was started from Python (run.json records no command line): resume it with "
            + PYTHON_RESUME[args.command].format(run_dir=run_dir)
        )
    if run["argv"][:1] != [args.command]:
        raise ValueError(
            f"--resume {run_dir}: not a run of sb3-distill {args.command}; its run.json records the command line "
            f"{' '.join(['sb3-distill', *run['argv']])!r}"
        )
    saved = build_parser().parse_args(run["argv"])
    # Files the run named relative to where it was started
    for name in ("conf_file", "teacher"):
        value = getattr(saved, name, None)
        if value is not None and not Path(value).is_absolute() and (Path(run["cwd"]) / value).exists():
            setattr(saved, name, str(Path(run["cwd"]) / value))
    for name in ("device", "verbose", "no_progress_bar"):
        setattr(saved, name, getattr(args, name))
    saved.command_line = run.get("command", "")
    return saved


def cmd_distill(args: argparse.Namespace) -> int:
    if args.resume is not None:
        # The run's own command line again, continued from its checkpoint
        run_distill(resumed_arguments(args, read_run_file), resume=Path(args.resume))
        return 0
    run_distill(args, argv=args.argv)
    return 0


def run_distill(args: argparse.Namespace, **extra: Any) -> None:
    """:func:`sb3_distill.runs.distill` with the run that ``sb3-distill distill``'s options describe."""
    distill(
        distill_recipe(args),
        args.log_folder,
        eval_freq=args.eval_freq,
        curve_episodes=args.curve_episodes,
        tensorboard_log=args.tensorboard_log,
        checkpoint_freq=args.checkpoint_freq,
        reference_episodes=args.reference_episodes,
        **run_options(args),
        **extra,
    )


def distill_recipe(args: argparse.Namespace) -> Recipe:
    """The recipe that ``sb3-distill distill``'s options describe."""
    overrides = student_overrides(args)
    for key in ("alpha", "temperature"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    return make_recipe(
        args.env,
        args.algo,
        conf_file=args.conf_file,
        hyperparams=overrides,
        teacher=args.teacher,
        n_timesteps=args.n_timesteps,
        net_arch=args.net_arch,
    )


def add_teacher_command(subparsers: Any) -> None:
    parser = subparsers.add_parser("teacher", help="Train a teacher (DQN, SAC, PPO, ...) with the RL Zoo's settings")
    add_recipe_arguments(parser, TEACHER_ALGO)
    add_run_arguments(parser)
    parser.add_argument("-o", "--output", default=None, help="Teacher zip to write (default: teachers/<env>_<algo>.zip)")
    parser.add_argument(
        "--force", action="store_true", help="Overwrite --output if it exists, and an unfinished run of it (its run folder)"
    )
    add_checkpoint_arguments(
        parser, "teacher", "its run folder, <output without .zip>.run/ beside the zip, which a complete run removes"
    )
    parser.set_defaults(func=cmd_teacher)


def cmd_teacher(args: argparse.Namespace) -> int:
    if args.resume is not None:
        run_teacher(resumed_arguments(args, read_teacher_run), output_of_run(Path(args.resume)), resume=True)
        return 0
    output = args.output if args.output is not None else f"teachers/{args.env.replace('/', '-')}_{args.algo}.zip"
    run_teacher(args, output, argv=args.argv)
    return 0


def run_teacher(args: argparse.Namespace, output: str | Path, **extra: Any) -> None:
    """:func:`sb3_distill.teacher_runs.train_teacher` with the run that ``sb3-distill teacher``'s options describe."""
    recipe = make_recipe(
        args.env, args.algo, conf_file=args.conf_file, hyperparams=args.hyperparams, n_timesteps=args.n_timesteps
    )
    train_teacher(recipe, output, force=args.force, checkpoint_freq=args.checkpoint_freq, **run_options(args), **extra)


def add_tune_command(subparsers: Any) -> None:
    """``sb3-distill tune``: the options left out keep the values of ``tuning/study.yml``, shown in the help."""
    parser = subparsers.add_parser(
        "tune", help="Optuna study of a student's alpha and temperature (any --algo): resumable and distributed"
    )
    try:
        defaults = vars(load_study_settings())
    except FileNotFoundError:  # an install without tuning/study.yml: running `tune` names the missing file
        defaults = {}

    def default(name: str) -> str:
        return f"default: {defaults.get(name, 'tuning/study.yml')}"

    add_recipe_arguments(parser, ALGO_NAME)
    parser.add_argument("--teacher", default=None, help="SB3 teacher zip or RL Zoo log folder (default: the entry's)")
    parser.add_argument("--n-trials", type=positive_int, default=None, help=f"Trials this worker runs ({default('n_trials')})")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: sqlite:///<log folder>/studies.db)")
    parser.add_argument("--study-name", default=None, help="Study to create or continue (default: <algo>_<env>)")
    parser.add_argument("--n-jobs", type=int, default=None, help=f"Trials at once in this process ({default('n_jobs')})")
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=None,
        help=f"Optuna sampler; nsga2: NSGA-II, for size searches ({default('sampler')})",
    )
    parser.add_argument(
        "--pruner",
        choices=PRUNERS,
        default=None,
        help=f"Optuna pruner; size searches never prune: Optuna prunes no multi-objective study ({default('pruner')})",
    )
    parser.add_argument(
        "--objectives",
        nargs="+",
        choices=OBJECTIVES,
        default=None,
        help="score (default): the mean return of the entry's student; score params, score latency: a size search, the "
        "student's 1-3 hidden layers (widths 4-256; actor and critic alike for PPO, SAC, TD3) sampled too, normalized "
        "score against its acting network's parameters or batch-1 latency",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=None,
        help="Size search: write the config of the smallest student on the Pareto front with at least this normalized "
        "score, in (0, 2] (1 = the teacher's); error if none reaches it",
    )
    parser.add_argument(
        "--n-startup-trials",
        type=int,
        default=None,
        help=f"Trials before TPE and pruning start ({default('n_startup_trials')})",
    )
    parser.add_argument("--seed", type=int, default=None, help="Seeds the sampler and the students (default: unseeded)")
    parser.add_argument(
        "--eval-freq",
        type=positive_int,
        default=None,
        help="Steps between intermediate evaluations (default: budget / n_evaluations)",
    )
    parser.add_argument(
        "--eval-episodes", type=int, default=None, help=f"Episodes per evaluation, >= 10 ({default('eval_episodes')})"
    )
    parser.add_argument("-f", "--log-folder", default=None, help=f"Output folder ({default('log_folder')})")
    parser.add_argument(
        "--heartbeat-interval", type=int, default=None, help=f"Seconds between heartbeats ({default('heartbeat_interval')})"
    )
    parser.add_argument(
        "--grace-period", type=int, default=None, help=f"Seconds without heartbeat before a retry ({default('grace_period')})"
    )
    parser.add_argument(
        "--max-retry", type=int, default=None, help=f"Retries of a dead worker's trial ({default('max_retry')})"
    )
    parser.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    if args.study_name is not None and not args.study_name.strip():
        raise ValueError(f"--study-name {args.study_name!r}: expected a name (or leave it out for <algo>_<env>)")
    # Options left out (None) keep tuning/study.yml's values
    settings = load_study_settings(**{field.name: getattr(args, field.name, None) for field in fields(StudySettings)})
    _, summary = tune(
        args.env,
        args.algo,
        teacher=args.teacher,
        conf_file=args.conf_file,
        hyperparams=student_overrides(args),
        n_timesteps=args.n_timesteps,
        storage=args.storage,
        study_name=args.study_name,
        seed=args.seed,
        settings=settings,
        device=args.device,
    )
    return 0 if "best" in summary or "front" in summary else 1


def add_export_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="Export a student's acting network (SB3's pre- and post-processing included) to ONNX or TorchScript, "
        "checked against predict and timed",
    )
    parser.add_argument(
        "student",
        help="The student's zip (DQN, QRDQN, PPO, A2C, SAC, TD3 or DDPG, or a Distilled student of one; read with SB3's "
        "loader: trusted files)",
    )
    parser.add_argument("--format", choices=sorted(EXPORT_FORMATS), required=True, help="onnx (onnxruntime) or torchscript")
    parser.add_argument("-o", "--output", default=None, help="File to write (default: the zip's path with .onnx or .pt)")
    parser.add_argument("--env", default=None, help="Env id of the check (default: the one recorded beside the zip)")
    parser.add_argument(
        "--n-check", type=positive_int, default=256, help="Observations of the parity check (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the check's observations (default: %(default)s)")
    parser.add_argument(
        "--repeats",
        type=non_negative_int,
        default=200,
        help="Timed calls at batch 1 (a quarter at 256), 0: none (default: %(default)s)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=Q_TOLERANCE,
        help="Largest |difference| / max(1, |output|) the check allows (default: %(default)g)",
    )
    parser.add_argument("--force", action="store_true", help="Overwrite --output if it exists")
    parser.set_defaults(func=cmd_export, device="cpu")


def cmd_export(args: argparse.Namespace) -> int:
    try:
        export_student(
            args.student,
            args.format,
            args.output,
            env=args.env,
            n_check=args.n_check,
            force=args.force,
            seed=args.seed,
            latency_repeats=args.repeats,
            tolerance=args.tolerance,
        )
    except MissingExtraError as error:  # an ImportError: not among USER_ERRORS, still the user's to fix
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sb3-distill", description="Policy distillation for Stable-Baselines3: DQN, QR-DQN, PPO, SAC and TD3 students"
    )
    subparsers = parser.add_subparsers(dest="command")
    add_distill_command(subparsers)
    add_teacher_command(subparsers)
    add_tune_command(subparsers)
    add_export_command(subparsers)
    # Listed for --help; main() hands everything after `zoo` to sb3_distill.zoo untouched
    subparsers.add_parser("zoo", help="Run rl_zoo3 (train, enjoy, record_video, ...) with the students registered")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["zoo"]:
        from sb3_distill.zoo import main as zoo_main

        return zoo_main(argv[1:])
    # No subcommand (no arguments at all, or only options): the main job, `distill`
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["distill", *argv]
    args = build_parser().parse_args(argv)
    args.argv = argv
    args.command_line = "sb3-distill " + " ".join(argv)
    if args.device == "auto":
        args.device = "cuda" if th.cuda.is_available() else "cpu"
    try:
        th.device(args.device)
    except RuntimeError:
        print(f"error: --device {args.device!r} is not a torch device (expected auto, cpu, cuda or cuda:N)", file=sys.stderr)
        return 2
    # SIGTERM (timeout, a cluster's pre-emption) ends the command as Ctrl-C does: training saves its work first
    previous_sigterm = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunInterrupted as interrupted:
        print(interrupted, file=sys.stderr)
        return interrupted.exit_status
    except KeyboardInterrupt as interrupt:
        signum = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
        print(f"{signum.name}: {INTERRUPTED.get(args.command, 'stopped')}", file=sys.stderr)
        return SIGNAL_EXIT_STATUS[signum]
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)


class Terminated(KeyboardInterrupt):
    """SIGTERM, outside training (where it stops the run at its next step)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


if __name__ == "__main__":
    sys.exit(main())
