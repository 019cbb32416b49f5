"""
RL Zoo glue: register the students (``distilled_dqn``, ``distilled_qrdqn``, ``distilled_ppo``, ``distilled_sac``,
``distilled_td3``) with rl_zoo3, then hand the command line to rl_zoo3.

    python -m sb3_distill.zoo --help
    python -m sb3_distill.zoo train --algo dqn --env CartPole-v1 --conf-file zoo_configs/dqn.yml
    python -m sb3_distill.zoo train --algo distilled_dqn --env CartPole-v1
    python -m sb3_distill.zoo enjoy --algo distilled_dqn --env CartPole-v1 -f logs/
    python -m sb3_distill.zoo record_training --algo distilled_dqn --env CartPole-v1 -f logs/

rl_zoo3's ``train`` checks ``--algo`` against ``ALGOS`` when it parses its arguments, so registration must
happen before rl_zoo3 runs: ``--gym-packages`` comes too late. Registration mutates rl_zoo3's shared dicts
(they are imported by name into several of its modules) and never rebinds them.

rl_zoo3's ``record_training`` records each model in a new process, ``python -m rl_zoo3.record_video``, where
nothing is registered: while a script runs, such commands are sent back through this module instead.
"""

import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from rl_zoo3 import hyperparams_opt as zoo_hyperparams_opt
from rl_zoo3 import train as zoo_train
from rl_zoo3.utils import ALGOS

from sb3_distill.algorithms import STUDENT_ALGOS
from sb3_distill.hyperparams_opt import (
    convert_distilled_dqn_params,
    sample_distilled_alpha_params,
    sample_distilled_dqn_params,
)
from sb3_distill.recipe import DistillExperimentManager

# The students whose terms have no temperature: their studies sample alpha alone
WITHOUT_TEMPERATURE = ("distilled_sac", "distilled_td3")

# rl_zoo3 scripts this wrapper can run, with what each does (for --help)
ZOO_SCRIPTS = {
    "train": "train an agent (any Zoo algo, or a student: distilled_dqn, distilled_sac, ...), or tune it with -optimize",
    "enjoy": "run a trained agent from a log folder (-f) and print its mean reward",
    "record_video": "record a video of a trained agent (needs moviepy)",
    "record_training": "record_video for each checkpoint, the final and best model, joined (needs moviepy, ffmpeg)",
}

USAGE = f"""usage: python -m sb3_distill.zoo {{{",".join(ZOO_SCRIPTS)}}} [rl_zoo3 arguments ...]
       sb3-distill zoo {{{",".join(ZOO_SCRIPTS)}}} [rl_zoo3 arguments ...]

Run an RL Zoo (rl_zoo3) script with the students registered (--algo {", ".join(STUDENT_ALGOS)}).

scripts:
{chr(10).join(f"  {script:<17}{description}" for script, description in ZOO_SCRIPTS.items())}

Every rl_zoo3 flag of the script passes through unchanged (--algo, --env, -n, -f, --seed, --conf-file, -params,
-optimize, ...). `python -m sb3_distill.zoo <script> --help` shows the script's own flags."""

# How rl_zoo3 starts its own scripts in a new process (record_training: `python -m rl_zoo3.record_video ...`)
ZOO_SUBPROCESS_PREFIX = ("python", "-m")


def register() -> None:
    """Add the students to rl_zoo3's algorithms, samplers and converters, and the project's experiment manager."""
    for name, student in STUDENT_ALGOS.items():
        ALGOS[name] = student
        sampler = sample_distilled_alpha_params if name in WITHOUT_TEMPERATURE else sample_distilled_dqn_params
        zoo_hyperparams_opt.HYPERPARAMS_SAMPLER[name] = sampler
        zoo_hyperparams_opt.HYPERPARAMS_CONVERTER[name] = convert_distilled_dqn_params
    # rl_zoo3.train builds its ExperimentManager by this name; the subclass changes nothing for other algos
    zoo_train.ExperimentManager = DistillExperimentManager  # type: ignore[misc]


def registered_command(command: Any) -> Any:
    """
    Send a command that starts one of rl_zoo3's scripts through this module, where ``distilled_dqn`` is registered.

    ``["python", "-m", "rl_zoo3.record_video", *args]`` becomes
    ``[sys.executable, "-m", "sb3_distill.zoo", "record_video", *args]`` (this interpreter, not whichever
    ``python`` comes first on ``PATH``); any other command is returned as it is.

    :param command: a command as given to ``subprocess.call``
    :return: the command to run
    """
    if not isinstance(command, list | tuple) or tuple(command[:2]) != ZOO_SUBPROCESS_PREFIX or len(command) < 3:
        return command
    package, _, script = str(command[2]).partition(".")
    if package != "rl_zoo3" or script not in ZOO_SCRIPTS:
        return command
    return [sys.executable, "-m", "sb3_distill.zoo", script, *command[3:]]


@contextmanager
def zoo_subprocesses_registered() -> Iterator[None]:
    """While open, ``subprocess.call`` runs rl_zoo3's scripts through :func:`registered_command`; restored on exit."""
    zoo_call = subprocess.call

    def call(command: Any, *args: Any, **kwargs: Any) -> int:
        return zoo_call(registered_command(command), *args, **kwargs)

    subprocess.call = call  # type: ignore[assignment]
    try:
        yield
    finally:
        subprocess.call = zoo_call


@contextmanager
def ffmpeg_on_path() -> Iterator[None]:
    """
    Make ``ffmpeg`` runnable by name, as rl_zoo3's ``record_training`` runs it (through the shell).

    The system's ``ffmpeg`` when there is one; otherwise the binary that ships with ``imageio-ffmpeg`` (which
    moviepy installs), linked as ``ffmpeg`` in a temporary folder put first on ``PATH`` until exit.

    :raise FileNotFoundError: if neither is installed
    """
    if shutil.which("ffmpeg") is not None:
        yield
        return
    try:
        import imageio_ffmpeg

        executable = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as error:
        raise FileNotFoundError(
            f"record_training joins its videos with ffmpeg, which is neither on PATH nor shipped by imageio-ffmpeg ({error}): "
            "install it (`apt-get install ffmpeg`, or `pip install imageio-ffmpeg`, which moviepy also installs)"
        ) from error
    saved_path = os.environ.get("PATH")
    with tempfile.TemporaryDirectory(prefix="sb3_distill_ffmpeg_") as shim_folder:
        os.symlink(executable, os.path.join(shim_folder, "ffmpeg"))
        os.environ["PATH"] = os.pathsep.join([shim_folder, *([saved_path] if saved_path else [])])
        try:
            yield
        finally:
            if saved_path is None:
                del os.environ["PATH"]
            else:
                os.environ["PATH"] = saved_path


def exit_status(code: Any) -> int:
    """
    The exit status a ``SystemExit`` with this code gives a process (argparse exits 0 on ``--help``, 2 on errors).

    :param code: ``SystemExit.code``
    :return: the exit status (a message is printed to stderr, as Python does, and gives 1)
    """
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_script(script: str) -> None:
    """
    Run an rl_zoo3 script in this process, with its arguments in ``sys.argv``.

    :param script: one of :data:`ZOO_SCRIPTS`
    """
    with ExitStack() as stack:
        if script == "record_training":
            stack.enter_context(ffmpeg_on_path())  # first: a missing ffmpeg stops the script before it records
        stack.enter_context(zoo_subprocesses_registered())
        if script == "train":
            zoo_train.train()
        else:
            runpy.run_module(f"rl_zoo3.{script}", run_name="__main__")


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run an rl_zoo3 script with ``distilled_dqn`` registered.

    :param argv: ``[script, *zoo_arguments]``, script one of :data:`ZOO_SCRIPTS`; ``-h``/``--help`` prints the usage
    :return: exit status: 0 on success (and for ``--help``), 2 for a usage or configuration error
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if not argv or argv[0] not in ZOO_SCRIPTS:
        print(USAGE, file=sys.stderr)
        reason = f"unknown script {argv[0]!r}" if argv else "no script given"
        print(f"error: {reason}: choose one of {', '.join(ZOO_SCRIPTS)}", file=sys.stderr)
        return 2
    script, *zoo_arguments = argv
    register()
    saved_argv = sys.argv
    sys.argv = [f"sb3_distill.zoo {script}", *zoo_arguments]
    try:
        run_script(script)
    except SystemExit as exit_request:  # rl_zoo3 parses with argparse: --help and bad flags exit
        return exit_status(exit_request.code)
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved_argv
    return 0


if __name__ == "__main__":
    sys.exit(main())
