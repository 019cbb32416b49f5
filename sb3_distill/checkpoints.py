"""
Runs that survive: checkpoints of a distillation or a teacher's run, and training that stops cleanly on Ctrl-C or
SIGTERM (:mod:`sb3_distill.interrupts`) with a checkpoint.

A run folder (``sb3-distill distill``'s ``<log folder>/<env>_<n>/``, ``sb3-distill teacher``'s ``<output>.run/``) holds
``run.json`` (how the run was started, written before training) and, while it trains, ``checkpoint.json``, which names
its latest complete checkpoint: a folder ``checkpoints/step_<n>/`` with the model (``student.zip`` or ``teacher.zip``),
its replay buffer (``replay_buffer.pkl``, off-policy algorithms; a student's teacher values are recomputed from the same
teacher when it is loaded), the training env's normalization statistics (``vecnormalize.pkl``, where the entry
normalizes) and ``state.json`` (the step count, the training seconds so far and the size of each file).

A checkpoint is written atomically: its files go into a temporary folder, which is renamed to ``step_<n>`` once
complete, and only then does ``checkpoint.json`` (itself replaced atomically) point to it. A run killed while it writes
a checkpoint keeps the previous one; a folder that ``checkpoint.json`` does not name is never read.
"""

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, unwrap_vec_normalize

from sb3_distill.interrupts import SIGNAL_EXIT_STATUS, RunInterrupted, StopRequest, graceful_interrupts

RUN_FILE = "run.json"
POINTER_FILE = "checkpoint.json"
CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.json"
STUDENT_FILE = "student.zip"
TEACHER_FILE = "teacher.zip"
REPLAY_BUFFER_FILE = "replay_buffer.pkl"
VEC_NORMALIZE_FILE = "vecnormalize.pkl"


def default_checkpoint_freq(n_timesteps: int) -> int:
    """Steps between checkpoints when the command line gives none: a tenth of the budget, at least 10,000 steps."""
    return max(10_000, n_timesteps // 10)


def resolve_checkpoint_freq(checkpoint_freq: int | None, n_timesteps: int) -> int:
    """
    Steps between the checkpoints of a run of ``n_timesteps`` steps.

    :param checkpoint_freq: As given (None: :func:`default_checkpoint_freq`; 0: a checkpoint only when interrupted)
    :param n_timesteps: The run's budget
    """
    if checkpoint_freq is None:
        return default_checkpoint_freq(n_timesteps)
    if checkpoint_freq < 0:
        raise ValueError(f"checkpoint_freq={checkpoint_freq}: expected 0 (only on an interrupt) or a positive number of steps")
    return checkpoint_freq


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` so that a reader finds the old file or the new one, never a part of one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as file_handler:
        file_handler.write(json.dumps(data, indent=2, default=str) + "\n")
        file_handler.flush()
        os.fsync(file_handler.fileno())
    os.replace(tmp, path)


def write_checkpoint(
    run_dir: Path, model: BaseAlgorithm, train_seconds: float, trained: bool = False, model_file: str = STUDENT_FILE
) -> Path:
    """
    Save the model and its training state as the run's latest checkpoint (atomically), and remove the older ones.

    :param run_dir: The run folder
    :param model: The student or teacher, with its training env
    :param train_seconds: Seconds of training so far, over every session of the run
    :param trained: The model has its whole budget: only its evaluation is left (no replay buffer is saved)
    :param model_file: The model's file in the checkpoint (:data:`STUDENT_FILE` or :data:`TEACHER_FILE`)
    :return: The checkpoint's folder
    """
    checkpoints = run_dir / CHECKPOINTS_DIR
    checkpoints.mkdir(exist_ok=True)
    step = int(model.num_timesteps)
    final = checkpoints / f"step_{step}"
    tmp = checkpoints / f".tmp_step_{step}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        model.save(tmp / model_file)
        if not trained and isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None:
            model.save_replay_buffer(tmp / REPLAY_BUFFER_FILE)
        env = model.get_env()
        vec_normalize = unwrap_vec_normalize(env) if env is not None else None
        if vec_normalize is not None:
            vec_normalize.save(str(tmp / VEC_NORMALIZE_FILE))
        files = {path.name: path.stat().st_size for path in sorted(tmp.iterdir())}
        state = {"num_timesteps": step, "train_seconds": round(train_seconds, 2), "trained": trained, "files": files}
        write_json_atomically(tmp / STATE_FILE, state)
    except OSError as error:  # a full disk, a folder made read-only: the previous checkpoint stays the run's
        shutil.rmtree(tmp, ignore_errors=True)
        kept = read_checkpoint(run_dir)
        raise OSError(
            f"Could not write the checkpoint of step {step:,} into {str(checkpoints)!r} ({error.strerror or error}); "
            + (f"the checkpoint of step {kept[1]['num_timesteps']:,} is kept" if kept is not None else "no checkpoint is kept")
        ) from None
    if final.exists():  # the same step saved again (an interrupt right after a periodic checkpoint)
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_json_atomically(run_dir / POINTER_FILE, {"checkpoint": f"{CHECKPOINTS_DIR}/{final.name}", "num_timesteps": step})
    for old in checkpoints.iterdir():
        if old != final:  # older checkpoints, and the half-written folder of a killed run
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """
    The run's latest complete checkpoint and its state, checked (every file there, of the size it was written with);
    None when the run has none yet.

    :param run_dir: The run folder
    """
    pointer = run_dir / POINTER_FILE
    if not pointer.exists():
        return None
    try:
        checkpoint_dir = run_dir / json.loads(pointer.read_text())["checkpoint"]
        state = json.loads((checkpoint_dir / STATE_FILE).read_text())
        for name, size in state["files"].items():
            if (checkpoint_dir / name).stat().st_size != size:
                raise ValueError(f"{name} has {(checkpoint_dir / name).stat().st_size} bytes, {size} were written")
        int(state["num_timesteps"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"The checkpoint named by {pointer} is damaged ({error}): the run cannot be resumed from it"
        ) from None
    return checkpoint_dir, state


def read_run_file(run_dir: Path, command: str = "distill") -> dict[str, Any]:
    """
    The ``run.json`` of a run folder given to ``--resume``, with a clear error when it is not one.

    :param run_dir: The run folder
    :param command: The subcommand that makes such folders (``distill``, ``teacher``), named in the errors
    """
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--resume {run_dir}: no such run folder (expected a folder made by sb3-distill {command})")
    path = run_dir / RUN_FILE
    try:
        run = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"--resume {run_dir}: {RUN_FILE} is missing, so this is not a run folder of sb3-distill {command} (or it was "
            "made by a version without checkpoints)"
        ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"--resume {run_dir}: {path} is not valid JSON ({error})") from None
    # argv is None for a run started from Python
    if not isinstance(run, dict) or not isinstance(run.get("argv", ""), list | None):
        raise ValueError(f"--resume {run_dir}: {path} does not record the run's command line (expected an 'argv' list)")
    return run


def load_checkpoint(
    algo_class: type[BaseAlgorithm], checkpoint_dir: Path, env: VecEnv, model_file: str = STUDENT_FILE, **load_kwargs: Any
) -> Any:
    """
    The model of a checkpoint on the run's training env, with its replay buffer where it saved one.

    :param algo_class: The model's class
    :param checkpoint_dir: The checkpoint (:func:`read_checkpoint`)
    :param env: The training env, with the checkpoint's normalization statistics (:func:`restore_vec_normalize`)
    :param model_file: The model's file in the checkpoint
    :param load_kwargs: What ``algo_class.load`` takes besides (``device``, ``verbose``, a student's teacher, ...)
    """
    model: Any = algo_class.load(checkpoint_dir / model_file, env=env, **load_kwargs)
    if (checkpoint_dir / REPLAY_BUFFER_FILE).exists():
        model.load_replay_buffer(checkpoint_dir / REPLAY_BUFFER_FILE)
    return model


def restore_vec_normalize(env: VecEnv, checkpoint_dir: Path) -> VecEnv:
    """The training env with the normalization statistics of the checkpoint, where it saved some."""
    path = checkpoint_dir / VEC_NORMALIZE_FILE
    if not path.exists():
        return env
    if not isinstance(env, VecNormalize):
        raise ValueError(
            f"{path} holds normalization statistics, but the run's env does not normalize: was the entry changed?"
        )
    return VecNormalize.load(str(path), env.venv)


def resume_evaluations(callback: EvalCallback, run_dir: Path, num_timesteps: int, n_envs: int) -> None:
    """
    Continue an EvalCallback's learning curve from the run's ``evaluations.npz`` (the points up to the checkpoint),
    with its evaluations at the same steps as in an uninterrupted run.
    """
    # EvalCallback evaluates when its call count is a multiple of eval_freq: count the calls before the checkpoint
    callback.n_calls = num_timesteps // n_envs
    path = run_dir / "evaluations.npz"
    if not path.exists():
        return
    with np.load(path) as data:
        keep = data["timesteps"] <= num_timesteps
        callback.evaluations_timesteps = [int(step) for step in data["timesteps"][keep]]
        callback.evaluations_results = [list(row) for row in data["results"][keep]]
        callback.evaluations_length = [list(row) for row in data["ep_lengths"][keep]]
    if callback.evaluations_results:
        callback.best_mean_reward = float(max(np.mean(row) for row in callback.evaluations_results))


class RunCheckpoints(BaseCallback):
    """
    Checkpoints of a run every ``checkpoint_freq`` environment steps (0: none), and the end of training when a signal
    asked to stop.

    :param run_dir: The run folder
    :param checkpoint_freq: Environment steps between checkpoints (0: only on an interrupt)
    :param stop: Set by :func:`graceful_interrupts`
    :param seconds_before: Training seconds of the earlier sessions of the run
    :param model_file: The model's file in a checkpoint (:data:`STUDENT_FILE` or :data:`TEACHER_FILE`)
    """

    def __init__(
        self,
        run_dir: Path,
        checkpoint_freq: int,
        stop: StopRequest,
        seconds_before: float = 0.0,
        model_file: str = STUDENT_FILE,
    ) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.checkpoint_freq = checkpoint_freq
        self.stop = stop
        self.seconds_before = seconds_before
        self.model_file = model_file
        self.session_start = 0.0
        self.last_checkpoint = 0

    def _on_training_start(self) -> None:
        self.session_start = time.perf_counter()
        self.last_checkpoint = self.num_timesteps

    def train_seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.session_start

    def save(self) -> Path:
        self.last_checkpoint = self.num_timesteps
        return write_checkpoint(self.run_dir, self.model, self.train_seconds(), model_file=self.model_file)

    def _on_step(self) -> bool:
        if self.stop.signal is not None:
            return False
        if self.checkpoint_freq and self.num_timesteps // self.checkpoint_freq > self.last_checkpoint // self.checkpoint_freq:
            self.save()
        return True


def learn_with_checkpoints(
    model: BaseAlgorithm,
    run_dir: Path,
    n_timesteps: int,
    *,
    checkpoint_freq: int,
    seconds_before: float,
    callbacks: list[BaseCallback],
    progress_bar: bool,
    model_file: str,
    resume_command: str,
) -> float:
    """
    Train ``model`` up to ``n_timesteps`` steps in all (a resumed model continues from its own step count), with a
    checkpoint every ``checkpoint_freq`` steps and one more, marked trained, at the end. Ctrl-C or SIGTERM stop it at the
    next step with a checkpoint.

    :param model: A new model, or one of a checkpoint (:func:`load_checkpoint`)
    :param run_dir: The run folder
    :param n_timesteps: The run's budget
    :param checkpoint_freq: Environment steps between checkpoints (0: only on an interrupt)
    :param seconds_before: Training seconds of the earlier sessions of the run (0 for a new run)
    :param callbacks: The run's other callbacks
    :param progress_bar: Show a progress bar
    :param model_file: The model's file in a checkpoint (:data:`STUDENT_FILE` or :data:`TEACHER_FILE`)
    :param resume_command: The command that continues the run, quoted when it stops
    :return: The training seconds of every session of the run
    :raises RunInterrupted: Ctrl-C or SIGTERM stopped the run (after a checkpoint, unless Ctrl-C came twice)
    """
    resumed = model.num_timesteps > 0
    with graceful_interrupts() as stop:
        checkpoints = RunCheckpoints(run_dir, checkpoint_freq, stop, seconds_before, model_file)
        try:
            model.learn(
                max(n_timesteps - model.num_timesteps, 0),
                callback=[*callbacks, checkpoints],
                progress_bar=progress_bar,
                reset_num_timesteps=not resumed,
            )
        except KeyboardInterrupt:  # a second Ctrl-C: no checkpoint now, the model may be mid-update
            kept = read_checkpoint(run_dir)
            raise RunInterrupted(
                f"SIGINT twice at step {model.num_timesteps:,}: stopped at once without saving; "
                + (
                    f"the checkpoint of step {kept[1]['num_timesteps']:,} is kept; continue with: "
                    if kept is not None
                    else "no checkpoint was written yet; start again from step 0 with: "
                )
                + resume_command,
                SIGNAL_EXIT_STATUS[signal.SIGINT],
            ) from None
        interrupted = stop.signal
    train_seconds = checkpoints.train_seconds()
    if interrupted is not None:
        saved = checkpoints.save()
        raise RunInterrupted(
            f"{interrupted.name} at step {model.num_timesteps:,} of {n_timesteps:,}: the {Path(model_file).stem} and its "
            f"training state are saved in {saved}; continue with: {resume_command}",
            SIGNAL_EXIT_STATUS[interrupted],
        )
    write_checkpoint(run_dir, model, train_seconds, trained=True, model_file=model_file)
    return train_seconds
