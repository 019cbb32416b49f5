"""
The run behind ``sb3-distill teacher``: train a teacher with a recipe (the RL Zoo's settings: ``zoo_configs/dqn.yml``,
``zoo_configs/sac.yml``, or the Zoo's own file for the other algorithms), evaluate it, and save it with a ``.json``
beside it recording how it was made.

A teacher's run survives interrupts as a distillation does (:mod:`sb3_distill.checkpoints`). While it trains, its run
folder ``<output without .zip>.run/`` beside the zip (``teachers/CartPole-v1_dqn.run/`` for
``teachers/CartPole-v1_dqn.zip``) holds ``run.json`` and the latest checkpoint; Ctrl-C or SIGTERM stop it with a
checkpoint, and ``resume=True`` (``sb3-distill teacher --resume RUN_DIR``) continues it to its budget. A complete run
removes its run folder: the zip's ``.json`` records the command.
"""

import os
import shutil
import signal
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from sb3_distill.algorithms import TEACHER_ALGOS, acting_network
from sb3_distill.checkpoints import (
    RUN_FILE,
    TEACHER_FILE,
    learn_with_checkpoints,
    load_checkpoint,
    read_checkpoint,
    read_run_file,
    resolve_checkpoint_freq,
    restore_vec_normalize,
    write_json_atomically,
)
from sb3_distill.config import display_path
from sb3_distill.interrupts import SIGNAL_EXIT_STATUS, RunInterrupted
from sb3_distill.recipe import Recipe
from sb3_distill.report import evaluate_agent
from sb3_distill.runs import FINAL_SEED_OFFSET, check_recipe_algo, check_writable_folder

#: The suffix of a teacher's run folder, which takes the zip's name
RUN_SUFFIX = ".run"


def teacher_output(output: str | os.PathLike) -> Path:
    """The teacher zip to write, ``.zip`` added when missing; an error for an empty path or a folder."""
    if not str(output).strip():
        raise ValueError("--output '': expected the teacher zip to write, e.g. teachers/CartPole-v1_dqn.zip")
    path = Path(output)
    if path.is_dir():
        raise IsADirectoryError(f"--output {str(path)!r} is a folder: expected the teacher zip to write in it or elsewhere")
    return path if path.suffix == ".zip" else path.with_name(path.name + ".zip")


def teacher_run_dir(output: Path) -> Path:
    """The run folder of a teacher zip: ``teachers/CartPole-v1_dqn.run`` for ``teachers/CartPole-v1_dqn.zip``."""
    return output.with_suffix(RUN_SUFFIX)


def output_of_run(run_dir: Path) -> Path:
    """The teacher zip of a run folder (:func:`teacher_run_dir` read backwards)."""
    if run_dir.suffix != RUN_SUFFIX:
        raise ValueError(
            f"--resume {run_dir}: a teacher's run folder is named after its zip, <output without .zip>{RUN_SUFFIX} "
            f"(teachers/CartPole-v1_dqn{RUN_SUFFIX} for teachers/CartPole-v1_dqn.zip)"
        )
    return run_dir.with_suffix(".zip")


def read_teacher_run(run_dir: Path) -> dict[str, Any]:
    """
    The ``run.json`` of a teacher's run folder given to ``--resume``, with a clear error for a complete run (which
    removed its folder) and for a folder that is not a run's.
    """
    if run_dir.suffix == RUN_SUFFIX and not run_dir.exists():
        output = run_dir.with_suffix(".zip")
        if output.exists() and output.with_suffix(".json").exists():
            raise ValueError(
                f"--resume {run_dir}: the run is complete ({output} and its .json are written, its run folder "
                "removed); nothing to resume"
            )
    return read_run_file(run_dir, "teacher")


def resume_command(run_dir: Path) -> str:
    return f"sb3-distill teacher --resume {run_dir}"


def _check_new_run(output: Path, run_dir: Path, force: bool) -> None:
    """Fail, before anything is built, if the run would overwrite a file or an unfinished run unasked."""
    if output.exists() and not force:
        raise FileExistsError(f"{output} exists; pass --force to overwrite it or --output to choose another file")
    if run_dir.exists():
        if not (run_dir / RUN_FILE).exists():
            raise FileExistsError(
                f"{run_dir} exists and is not a run folder of sb3-distill teacher: the run of {output} writes its "
                "checkpoints there; move it, or choose another --output"
            )
        if not force:
            raise FileExistsError(
                f"{run_dir} holds an unfinished run of {output}: continue it with {resume_command(run_dir)}, or pass "
                "--force to start again"
            )
    check_writable_folder(output.parent)


def train_teacher(
    recipe: Recipe,
    output: str | os.PathLike,
    *,
    seed: int = 0,
    device: str = "auto",
    verbose: int = 0,
    progress_bar: bool = True,
    eval_episodes: int = 20,
    force: bool = False,
    command: str = "",
    checkpoint_freq: int | None = None,
    resume: bool = False,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """
    Train a teacher with a recipe, evaluate it, and save it with a ``.json`` beside it recording how it was made.

    The run saves checkpoints into its run folder (:func:`teacher_run_dir`) as it trains; Ctrl-C or SIGTERM stop it at
    the next step with a checkpoint, and ``resume`` continues it to its budget.

    :param recipe: A teacher's recipe (``dqn``, ``sac``, ``ppo``, ...)
    :param output: The zip to write (``.zip`` is added when missing)
    :param seed: Seed of the run
    :param device: torch device
    :param verbose: SB3 verbosity
    :param progress_bar: Show a progress bar
    :param eval_episodes: Deterministic episodes of the final evaluation
    :param force: Overwrite ``output`` if it exists, and an unfinished run of it
    :param command: The command line, recorded in the ``.json``
    :param checkpoint_freq: Environment steps between checkpoints (None: a tenth of the budget, at least 10,000; 0: a
        checkpoint only when interrupted)
    :param resume: Continue the unfinished run of ``output``, of the same recipe, from its latest checkpoint (from the
        start where it has none)
    :param argv: The command line's arguments, recorded in ``run.json`` for ``sb3-distill teacher --resume``
    :return: What the ``.json`` holds
    :raises RunInterrupted: Ctrl-C or SIGTERM stopped the run, after it saved a checkpoint
    """
    check_recipe_algo(recipe, TEACHER_ALGOS, "teacher")
    output = teacher_output(output)
    run_dir = teacher_run_dir(output)
    checkpoint_freq = resolve_checkpoint_freq(checkpoint_freq, recipe.n_timesteps)
    checkpoint = None
    if resume:
        read_teacher_run(run_dir)
        checkpoint = read_checkpoint(run_dir)
    else:
        _check_new_run(output, run_dir, force)
    env = recipe.make_env(seed=seed)
    model: BaseAlgorithm
    state: dict[str, Any] = {"num_timesteps": 0, "train_seconds": 0.0, "trained": False}
    if checkpoint is not None:
        checkpoint_dir, state = checkpoint
        env = restore_vec_normalize(env, checkpoint_dir)
        model = load_checkpoint(TEACHER_ALGOS[recipe.algo], checkpoint_dir, env, TEACHER_FILE, device=device, verbose=verbose)
    else:
        model = recipe.make_model(env, seed=seed, verbose=verbose, device=device)
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)  # with --force: the unfinished run of a former command
        run_dir.mkdir(parents=True)
        write_json_atomically(
            run_dir / RUN_FILE,
            {"argv": argv, "cwd": os.getcwd(), "env_id": recipe.env_id, "algo": recipe.algo, "seed": seed,
             "n_timesteps": recipe.n_timesteps, "checkpoint_freq": checkpoint_freq, "command": command},
        )  # fmt: skip
    what = f"Resuming at step {model.num_timesteps:,}: training" if checkpoint is not None else "Training"
    print(
        f"{what} a {TEACHER_ALGOS[recipe.algo].__name__} teacher on {recipe.env_id} for {recipe.n_timesteps:,} steps "
        f"with the Zoo settings of {display_path(recipe.config_file)} (checkpoints in {run_dir})"
    )
    if state["trained"]:
        train_seconds = float(state["train_seconds"])
    else:
        train_seconds = learn_with_checkpoints(
            model,
            run_dir,
            recipe.n_timesteps,
            checkpoint_freq=checkpoint_freq,
            seconds_before=float(state["train_seconds"]),
            callbacks=recipe.callbacks,
            progress_bar=progress_bar,
            model_file=TEACHER_FILE,
            resume_command=resume_command(run_dir),
        )
    model.save(output)
    try:
        metadata = _evaluate_and_describe(
            recipe, model, env, train_seconds, seed=seed, eval_episodes=eval_episodes, command=command
        )
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"Interrupted during the final evaluation: the trained teacher is saved in {run_dir}; evaluate it with: "
            f"{resume_command(run_dir)}",
            SIGNAL_EXIT_STATUS[signal.SIGINT],
        ) from None
    write_json_atomically(output.with_suffix(".json"), metadata)
    # The run is complete: its checkpoints (a replay buffer can be large) are no longer needed
    shutil.rmtree(run_dir, ignore_errors=True)
    evaluation = metadata["evaluation"]
    print(
        f"Saved {output} ({metadata['parameters']:,} parameters, trained in {train_seconds:.0f} s): mean return "
        f"{evaluation['mean_return']:.1f} +/- {evaluation['std_return']:.1f} over {evaluation['n_episodes']} episodes"
    )
    return metadata


def _evaluate_and_describe(
    recipe: Recipe, model: BaseAlgorithm, env: VecEnv, train_seconds: float, *, seed: int, eval_episodes: int, command: str
) -> dict[str, Any]:
    """The final evaluation of a trained teacher, and what its ``.json`` records."""
    eval_env = recipe.make_env(seed=seed + FINAL_SEED_OFFSET, n_envs=1, eval_env=True)
    sync_envs_normalization(env, eval_env)
    result = evaluate_agent("teacher", model, acting_network(model), eval_env, eval_episodes)
    return {
        "env_id": recipe.env_id,
        "algo": recipe.algo,
        "seed": seed,
        "n_timesteps": recipe.n_timesteps,
        "env_steps": int(model.num_timesteps),
        "config_file": display_path(recipe.config_file),
        "hyperparams": recipe.hyperparams,
        "train_seconds": round(train_seconds, 1),
        "evaluation": {"mean_return": result.mean_return, "std_return": result.std_return, "n_episodes": result.n_episodes},
        "parameters": result.parameters,
        "command": command,
    }
