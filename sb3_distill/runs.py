"""
The runs behind the ``sb3-distill`` command: train a teacher, and distill a student then compare it with its teacher.

Both take a :class:`sb3_distill.recipe.Recipe` (an entry of a Zoo-format config, read by rl_zoo3) and write their
outputs into a new numbered folder or a file they will not overwrite unasked.
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.vec_env import sync_envs_normalization

from sb3_distill.algorithms import PLAIN_CLASSES, STUDENT_ALGOS, TEACHER_ALGOS, acting_network
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


def _check_algo(recipe: Recipe, algos: dict[str, Any], kind: str) -> None:
    if recipe.algo not in algos:
        raise ValueError(f"This run needs a {kind} recipe ({', '.join(sorted(algos))}), got one for {recipe.algo!r}")


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
) -> dict[str, Any]:
    """
    Train a teacher with a recipe (the RL Zoo's settings: ``zoo_configs/dqn.yml``, ``zoo_configs/sac.yml``, or the
    Zoo's own file for the other algorithms), evaluate it, and save it with a ``.json`` beside it recording how it was
    made.

    :param recipe: A teacher's recipe (``dqn``, ``sac``, ``ppo``, ...)
    :param output: The zip to write (``.zip`` is added when missing)
    :param seed: Seed of the run
    :param device: torch device
    :param verbose: SB3 verbosity
    :param progress_bar: Show a progress bar
    :param eval_episodes: Deterministic episodes of the final evaluation
    :param force: Overwrite ``output`` if it exists
    :param command: The command line, recorded in the ``.json``
    :return: What the ``.json`` holds
    """
    _check_algo(recipe, TEACHER_ALGOS, "teacher")
    output = Path(output)
    if output.suffix != ".zip":
        output = output.with_name(output.name + ".zip")
    if output.exists() and not force:
        raise FileExistsError(f"{output} exists; pass --force to overwrite it or --output to choose another file")
    print(
        f"Training a {TEACHER_ALGOS[recipe.algo].__name__} teacher on {recipe.env_id} for {recipe.n_timesteps:,} steps "
        f"with the Zoo settings of {display_path(recipe.config_file)}"
    )
    env = recipe.make_env(seed=seed)
    model = recipe.make_model(env, seed=seed, verbose=verbose, device=device)
    start = time.perf_counter()
    model.learn(recipe.n_timesteps, callback=recipe.callbacks, progress_bar=progress_bar)
    train_seconds = time.perf_counter() - start
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output)
    eval_env = recipe.make_env(seed=seed + FINAL_SEED_OFFSET, n_envs=1, eval_env=True)
    sync_envs_normalization(env, eval_env)
    result = evaluate_agent("teacher", model, acting_network(model), eval_env, eval_episodes)
    metadata = {
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
    output.with_suffix(".json").write_text(json.dumps(metadata, indent=2, default=str) + "\n")
    print(
        f"Saved {output} ({result.parameters:,} parameters, trained in {train_seconds:.0f} s): "
        f"mean return {result.mean_return:.1f} +/- {result.std_return:.1f} over {result.n_episodes} episodes"
    )
    return metadata


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
    tensorboard_log: str | None = None,
    command: str = "",
) -> dict[str, Any]:
    """
    Distill a student with a recipe, then compare it with its teacher and a random policy: print the table, and write
    ``student.zip``, ``evaluations.npz``, ``learning_curve.png`` and ``comparison.json`` into a new run folder.

    :param recipe: A student's recipe (``distilled_dqn``, ``distilled_sac``, ...)
    :param log_folder: Where the run folder ``<env>_<n>`` is made
    :param seed: Seed of the run
    :param device: torch device
    :param verbose: SB3 verbosity
    :param progress_bar: Show a progress bar
    :param eval_freq: Environment steps between the learning curve's evaluations
    :param curve_episodes: Deterministic episodes per learning-curve point
    :param eval_episodes: Deterministic episodes of the final evaluation of teacher, student and random policy
    :param tensorboard_log: TensorBoard log folder (None: no TensorBoard logging)
    :param command: The command line, recorded in ``comparison.json``
    :return: What ``comparison.json`` holds
    """
    _check_algo(recipe, STUDENT_ALGOS, "student")
    env = recipe.make_env(seed=seed)
    # Builds and checks the teacher before any training or any folder is made
    student = recipe.make_model(env, seed=seed, verbose=verbose, device=device, tensorboard_log=tensorboard_log)
    assert isinstance(student, DistillationMixin) and student.teacher is not None
    teacher = student.teacher
    student_parameters = count_parameters(acting_network(student))
    check_env = recipe.make_env(seed=seed + FINAL_SEED_OFFSET, n_envs=1, eval_env=True)
    sync_envs_normalization(env, check_env)
    quick_teacher = evaluate_agent("teacher", TeacherAgent(teacher, student.device), 0, check_env, QUICK_CHECK_EPISODES)
    warn_before_training(
        student_parameters,
        teacher.num_parameters(),
        quick_teacher.mean_return,
        random_policy_return(check_env, QUICK_CHECK_EPISODES, seed=seed),
    )
    run_dir = next_run_dir(log_folder, recipe.env_id)
    print(
        f"Distilling the {teacher.algorithm} teacher {display_path(str(recipe.teacher))} ({teacher.num_parameters():,} "
        f"parameters) into a {student_description(recipe)} {PLAIN_CLASSES[recipe.algo].__name__} student "
        f"({student_parameters:,} parameters, {student_parameters / teacher.num_parameters():.2%} of the teacher) on "
        f"{recipe.env_id} for {recipe.n_timesteps:,} steps ({_settings_text(student)}) -> {run_dir}"
    )
    eval_callback = EvalCallback(
        recipe.make_env(seed=seed + CURVE_SEED_OFFSET, n_envs=1, eval_env=True),
        n_eval_episodes=curve_episodes,
        eval_freq=max(eval_freq // recipe.n_envs, 1),
        log_path=str(run_dir),
        deterministic=True,
        verbose=0,
    )
    start = time.perf_counter()
    student.learn(recipe.n_timesteps, callback=[*recipe.callbacks, eval_callback], progress_bar=progress_bar)
    train_seconds = time.perf_counter() - start
    student.save(run_dir / "student.zip")

    # The teacher acts greedily on the values it was distilled from, or with its mean action: its SB3 model is never
    # unpickled
    teacher_agent = TeacherAgent(student.teacher, student.device, saved_num_timesteps(str(recipe.teacher)))
    eval_env = recipe.make_env(seed=seed + FINAL_SEED_OFFSET, n_envs=1, eval_env=True)
    sync_envs_normalization(env, eval_env)
    teacher_result = evaluate_agent("teacher", teacher_agent, student.teacher.num_parameters(), eval_env, eval_episodes)
    student_result = evaluate_agent("student", student, acting_network(student), eval_env, eval_episodes)
    random_return = random_policy_return(eval_env, eval_episodes, seed=seed)
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
        train_seconds=round(train_seconds, 1),
        # The offline phase's teacher steps, apart from the student's own (student.env_steps)
        teacher_transitions=getattr(student, "teacher_transitions", 0),
        hyperparams=recipe.hyperparams,
        command=command,
    )
    (run_dir / "comparison.json").write_text(json.dumps(comparison, indent=2, default=str) + "\n")
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
    outputs.append(run_dir / "comparison.json")
    plain = PLAIN_CLASSES[recipe.algo]
    print(
        f"\nSaved {outputs[0]} (loads with {plain.__module__.split('.')[0]}.{plain.__name__}.load), "
        + " and ".join(str(path) for path in outputs[1:])
    )
    return comparison
