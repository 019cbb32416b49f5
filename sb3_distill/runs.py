"""
The run behind ``sb3-distill distill``: distill a student, then compare it with its teacher, and the helpers it shares
with a teacher's run (:mod:`sb3_distill.teacher_runs`).

A run takes a :class:`sb3_distill.recipe.Recipe` (an entry of a Zoo-format config, read by rl_zoo3) and writes its
outputs into a new numbered folder.
"""

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from sb3_distill.algorithms import PLAIN_CLASSES, STUDENT_ALGOS, acting_network
from sb3_distill.checkpoints import (
    CHECKPOINTS_DIR,
    POINTER_FILE,
    RUN_FILE,
    STUDENT_FILE,
    learn_with_checkpoints,
    load_checkpoint,
    read_checkpoint,
    resolve_checkpoint_freq,
    restore_vec_normalize,
    resume_evaluations,
    write_json_atomically,
)
from sb3_distill.interrupts import SIGNAL_EXIT_STATUS, RunInterrupted
from sb3_distill.common.distillation import DistillationMixin
from sb3_distill.recipe import Recipe, next_run_dir
from sb3_distill.report import (
    TeacherAgent,
    comparison_dict,
    count_parameters,
    comparison_table,
    evaluate_agent,
    plot_learning_curve,
    random_policy_return,
)
from sb3_distill.common.teacher import resolve_model_path
from sb3_distill.common.teacher_zip import read_zip_data
from sb3_distill.config import display_path

# Seeds of the evaluation envs, offset from the run's seed so that they never replay the training episodes
CURVE_SEED_OFFSET = 1_000
FINAL_SEED_OFFSET = 10_000


def saved_num_timesteps(path: str | os.PathLike) -> int:
    """The training steps an SB3 zip records: a plain number in its ``data`` JSON, read without unpickling anything."""
    return int(read_zip_data(resolve_model_path(path)).get("num_timesteps", 0))


#: A student above this share of its teacher's acting parameters is no compression worth the name: the run warns
LARGE_STUDENT_SHARE = 0.10
#: Episodes of the quick check, before training, that the teacher does better than a random policy
QUICK_CHECK_EPISODES = 3


def student_description(recipe: Recipe) -> str:
    """
    The student's hidden layers (``[64]``; ``SB3-default`` where the entry sets none), with its features extractor when
    it has its own (MinAtar's CNN).
    """
    extractor = (recipe.model_kwargs.get("policy_kwargs") or {}).get("features_extractor_class")
    layers = recipe.net_arch
    if extractor is None:
        return str(layers) if layers is not None else "SB3-default"
    return f"{extractor.__name__}{' + ' + str(layers) if layers else ''}"


def warn_before_training(
    student_parameters: int, teacher_parameters: int, teacher_return: float, random_return: float
) -> list[str]:
    """
    The warnings a run prints before it trains: a student above :data:`LARGE_STUDENT_SHARE` of its teacher, or a teacher
    no better than a random policy on the quick check (the scores normalized by its return would mean nothing).

    :return: The warning lines (also printed to stderr)
    """
    lines = []
    share = student_parameters / teacher_parameters
    if share > LARGE_STUDENT_SHARE:
        lines.append(
            f"warning: the student has {student_parameters:,} parameters, {share:.1%} of the teacher's {teacher_parameters:,} "
            f"(more than {LARGE_STUDENT_SHARE:.0%}): pass a smaller --net-arch for a compressed student"
        )
    if not teacher_return > random_return:
        lines.append(
            f"warning: the teacher's mean return {teacher_return:.1f} over {QUICK_CHECK_EPISODES} episodes is no better than "
            f"a random policy's {random_return:.1f}: check the teacher and the env (the student's score against it would "
            "mean nothing)"
        )
    for line in lines:
        print(line, file=sys.stderr)
    return lines


def _settings_text(student: Any) -> str:
    """The distillation settings a run announces: alpha, the term (where the student has a choice) and T."""
    loss = f", distill_loss={student.distill_loss}" if student.distill_loss not in (None, "kl") else ""
    return f"alpha={student.alpha}, temperature={student.temperature}{loss}"


def check_writable_folder(folder: Path) -> None:
    """Fail now, before any training, if files cannot be written into ``folder`` (or its nearest existing parent)."""
    existing = folder.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"Cannot write into {str(folder)!r}: {str(existing)!r} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise PermissionError(f"Cannot write into {str(folder)!r} ({error.strerror}): choose another output") from None


def check_recipe_algo(recipe: Recipe, algos: dict[str, Any], kind: str) -> None:
    """Fail unless the recipe is one of ``algos`` (a ``kind`` of recipe: student or teacher)."""
    if recipe.algo not in algos:
        raise ValueError(f"This run needs a {kind} recipe ({', '.join(sorted(algos))}), got one for {recipe.algo!r}")


def resume_command(run_dir: Path) -> str:
    return f"sb3-distill distill --resume {run_dir}"


def distill(
    recipe: Recipe,
    log_folder: str | os.PathLike,
    *,
    seed: int = 0,
    device: str = "auto",
    verbose: int = 0,
    progress_bar: bool = True,
    eval_freq: int = 1_000,
    curve_episodes: int = 5,
    eval_episodes: int = 20,
    reference_episodes: int = 100,
    tensorboard_log: str | None = None,
    command: str = "",
    checkpoint_freq: int | None = None,
    resume: str | os.PathLike | None = None,
    argv: list[str] | None = None,
) -> dict[str, Any]:
    """
    Distill a student with a recipe, then compare it with its teacher and a random policy: print the table, and write
    ``student.zip``, ``evaluations.npz``, ``learning_curve.png`` and ``comparison.json`` into a new run folder.

    The run saves checkpoints as it trains (:mod:`sb3_distill.checkpoints`); Ctrl-C or SIGTERM stop it at the next step
    with a checkpoint, and ``resume`` continues it to its budget.

    :param recipe: A student's recipe (``distilled_dqn``, ``distilled_sac``, ...)
    :param log_folder: Where the run folder ``<env>_<n>`` is made
    :param seed: Seed of the run
    :param device: torch device
    :param verbose: SB3 verbosity
    :param progress_bar: Show a progress bar
    :param eval_freq: Environment steps between the learning curve's evaluations
    :param curve_episodes: Deterministic episodes per learning-curve point
    :param eval_episodes: Deterministic episodes of the student's final evaluation
    :param reference_episodes: Episodes of the score's references, the teacher's (deterministic) and a random
        policy's return, as the benchmarks measure them (``--reference-episodes``)
    :param tensorboard_log: TensorBoard log folder (None: no TensorBoard logging)
    :param command: The command line, recorded in ``comparison.json``
    :param checkpoint_freq: Environment steps between checkpoints (None: :func:`default_checkpoint_freq`; 0: a
        checkpoint only when interrupted)
    :param resume: A run folder of the same recipe to continue from its latest checkpoint (from the start where it has
        none) instead of a new run
    :param argv: The command line's arguments, recorded in ``run.json`` for ``sb3-distill distill --resume``
    :return: What ``comparison.json`` holds
    :raises RunInterrupted: Ctrl-C or SIGTERM stopped the run, after it saved a checkpoint
    """
    check_recipe_algo(recipe, STUDENT_ALGOS, "student")
    checkpoint_freq = resolve_checkpoint_freq(checkpoint_freq, recipe.n_timesteps)
    if resume is None:
        check_writable_folder(Path(log_folder))
    env = recipe.make_env(seed=seed)
    checkpoint = None
    if resume is not None:
        run_dir = Path(resume)
        checkpoint = read_checkpoint(run_dir)
        if (run_dir / "comparison.json").exists():
            raise ValueError(f"--resume {run_dir}: the run is complete (comparison.json is written); nothing to resume")
    student: Any
    state: dict[str, Any] = {"num_timesteps": 0, "train_seconds": 0.0, "trained": False}
    if checkpoint is not None:
        checkpoint_dir, state = checkpoint
        env = restore_vec_normalize(env, checkpoint_dir)
        student = load_checkpoint(
            STUDENT_ALGOS[recipe.algo],
            checkpoint_dir,
            env,
            device=device,
            verbose=verbose,
            teacher=recipe.teacher,
            trust_teacher=bool(recipe.model_kwargs.get("trust_teacher", False)),
            tensorboard_log=tensorboard_log,
        )
    else:
        # Builds and checks the teacher before any training or any folder is made
        student = recipe.make_model(env, seed=seed, verbose=verbose, device=device, tensorboard_log=tensorboard_log)
    if not isinstance(student, DistillationMixin) or student.teacher is None:  # the recipe was checked: a student
        raise TypeError(f"{type(student).__name__} is not a student with a teacher")
    student = cast(Any, student)
    teacher = student.teacher
    student_parameters = count_parameters(acting_network(student))
    if resume is None:
        check_env = recipe.make_env(seed=seed + FINAL_SEED_OFFSET, n_envs=1, eval_env=True)
        sync_envs_normalization(env, check_env)
        quick_teacher = evaluate_agent("teacher", TeacherAgent(teacher, student.device), 0, check_env, QUICK_CHECK_EPISODES)
        warn_before_training(
            student_parameters,
            teacher.num_parameters(),
            quick_teacher.mean_return,
            random_policy_return(check_env, QUICK_CHECK_EPISODES, seed=seed),
        )
        check_env.close()
        run_dir = next_run_dir(log_folder, recipe.env_id)
        write_json_atomically(
            run_dir / RUN_FILE,
            {"argv": argv, "cwd": os.getcwd(), "env_id": recipe.env_id, "algo": recipe.algo, "seed": seed,
             "n_timesteps": recipe.n_timesteps, "checkpoint_freq": checkpoint_freq, "command": command},
        )  # fmt: skip
        what = "Distilling"
        for note in recipe.notes:
            print(f"Recipe from the teacher: {note}")
    else:
        what = f"Resuming at step {student.num_timesteps:,}: distilling"
    print(
        f"{what} the {teacher.algorithm} teacher {display_path(str(recipe.teacher))} ({teacher.num_parameters():,} "
        f"parameters) into a {student_description(recipe)} {PLAIN_CLASSES[recipe.algo].__name__} student "
        f"({student_parameters:,} parameters, {student_parameters / teacher.num_parameters():.2%} of the teacher) on "
        f"{recipe.env_id} for {recipe.n_timesteps:,} steps ({_settings_text(student)}) -> {run_dir}"
    )
    if not state["trained"]:
        eval_callback = EvalCallback(
            recipe.make_env(seed=seed + CURVE_SEED_OFFSET, n_envs=1, eval_env=True),
            n_eval_episodes=curve_episodes,
            eval_freq=max(eval_freq // recipe.n_envs, 1),
            log_path=str(run_dir),
            deterministic=True,
            verbose=0,
        )
        if checkpoint is not None:
            resume_evaluations(eval_callback, run_dir, student.num_timesteps, recipe.n_envs)
        train_seconds = learn_with_checkpoints(
            student,
            run_dir,
            recipe.n_timesteps,
            checkpoint_freq=checkpoint_freq,
            seconds_before=float(state["train_seconds"]),
            callbacks=[*recipe.callbacks, eval_callback],
            progress_bar=progress_bar,
            model_file=STUDENT_FILE,
            resume_command=resume_command(run_dir),
        )
        student.save(run_dir / "student.zip")
    else:
        train_seconds = float(state["train_seconds"])
        student.save(run_dir / "student.zip")
    try:
        comparison = _evaluate_and_report(
            recipe,
            student,
            env,
            run_dir,
            train_seconds,
            seed=seed,
            eval_episodes=eval_episodes,
            reference_episodes=reference_episodes,
            command=command,
        )
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"Interrupted during the final evaluation: the trained student is saved in {run_dir / 'student.zip'}; "
            f"evaluate it with: {resume_command(run_dir)}",
            SIGNAL_EXIT_STATUS[signal.SIGINT],
        ) from None
    # The run is complete: its checkpoints (a replay buffer can be large) are no longer needed
    shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
    (run_dir / POINTER_FILE).unlink(missing_ok=True)
    return comparison


def _evaluate_and_report(
    recipe: Recipe,
    student: Any,
    env: VecEnv,
    run_dir: Path,
    train_seconds: float,
    *,
    seed: int,
    eval_episodes: int,
    reference_episodes: int,
    command: str,
) -> dict[str, Any]:
    """The final evaluation of teacher, student and a random policy: the table printed, the run folder's files."""
    # The teacher acts greedily on the values it was distilled from, or with its mean action: its SB3 model is never
    # unpickled
    teacher_agent = TeacherAgent(student.teacher, student.device, saved_num_timesteps(str(recipe.teacher)))
    eval_env = recipe.make_env(seed=seed + FINAL_SEED_OFFSET, n_envs=1, eval_env=True)
    sync_envs_normalization(env, eval_env)
    # The references of the score, teacher and random policy, over reference_episodes as the benchmarks measure them
    # (a 20-episode mean of a teacher whose returns vary from episode to episode, MinAtar's, is off by 20-30%)
    teacher_result = evaluate_agent("teacher", teacher_agent, student.teacher.num_parameters(), eval_env, reference_episodes)
    student_result = evaluate_agent("student", student, acting_network(student), eval_env, eval_episodes)
    random_return = random_policy_return(eval_env, reference_episodes, seed=seed)
    print(
        f"\n{recipe.env_id}: distilled in {train_seconds:.0f} s\n"
        + comparison_table(teacher_result, student_result, random_return, getattr(student, "teacher_transitions", 0))
    )
    comparison = comparison_dict(teacher_result, student_result, random_return)
    comparison.update(
        env_id=recipe.env_id,
        teacher_path=display_path(str(recipe.teacher)),
        algo=recipe.algo,
        alpha=student.alpha,
        temperature=student.temperature,
        distill_loss=student.distill_loss,
        seed=seed,
        reference_episodes=reference_episodes,
        train_seconds=round(train_seconds, 1),
        # The offline phase's teacher steps, apart from the student's own (student.env_steps)
        teacher_transitions=getattr(student, "teacher_transitions", 0),
        hyperparams=recipe.hyperparams,
        command=command,
    )
    outputs = [run_dir / "student.zip"]
    if (run_dir / "evaluations.npz").exists():
        outputs.append(
            plot_learning_curve(
                run_dir / "evaluations.npz",
                teacher_result.mean_return,
                run_dir / "learning_curve.png",
                title=f"{recipe.env_id}: student ({student_result.parameters:,} params) vs teacher",
            )
        )
    # Written last, and atomically: a run folder with a comparison.json is complete
    write_json_atomically(run_dir / "comparison.json", comparison)
    outputs.append(run_dir / "comparison.json")
    plain = PLAIN_CLASSES[recipe.algo]
    print(
        f"\nSaved {outputs[0]} (loads with {plain.__module__.split('.')[0]}.{plain.__name__}.load), "
        + " and ".join(str(path) for path in outputs[1:])
    )
    return comparison
