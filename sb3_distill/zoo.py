"""
RL Zoo glue: register ``distilled_dqn`` with rl_zoo3, then hand the command line to rl_zoo3.

    python -m sb3_distill.zoo train --algo dqn --env CartPole-v1 --conf-file zoo_configs/dqn.yml
    python -m sb3_distill.zoo train --algo distilled_dqn --env CartPole-v1
    python -m sb3_distill.zoo enjoy --algo distilled_dqn --env CartPole-v1 -f logs/

rl_zoo3's ``train`` checks ``--algo`` against ``ALGOS`` when it parses its arguments, so registration must
happen before rl_zoo3 runs: ``--gym-packages`` comes too late. Registration mutates rl_zoo3's shared dicts
(they are imported by name into several of its modules) and never rebinds them.
"""

import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from rl_zoo3 import hyperparams_opt as zoo_hyperparams_opt
from rl_zoo3 import train as zoo_train
from rl_zoo3.exp_manager import ExperimentManager
from rl_zoo3.utils import ALGOS

from sb3_distill.config import resolve_relative_to, zoo_config_path
from sb3_distill.distilled_dqn import DistilledDQN
from sb3_distill.hyperparams_opt import convert_distilled_dqn_params, sample_distilled_dqn_params
from sb3_distill.teacher import find_zoo_model, load_teacher, read_zoo_saved_config

ALGO_NAME = "distilled_dqn"
# What decides the observations a policy sees: a teacher trained on other ones gives meaningless values
ENV_PIPELINE_KEYS = ("env_wrapper", "vec_env_wrapper", "frame_stack", "normalize")
# rl_zoo3 scripts this wrapper can run
ZOO_SCRIPTS = ("train", "enjoy", "record_video", "record_training")


def register() -> None:
    """Add ``distilled_dqn`` to rl_zoo3's algorithms, samplers and converters, and its experiment manager."""
    ALGOS[ALGO_NAME] = DistilledDQN
    zoo_hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO_NAME] = sample_distilled_dqn_params
    zoo_hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO_NAME] = convert_distilled_dqn_params
    # rl_zoo3.train builds its ExperimentManager by this name; the subclass changes nothing for other algos
    zoo_train.ExperimentManager = DistillExperimentManager  # type: ignore[misc]


def check_teacher_pipeline(teacher_config: dict[str, Any], student_hyperparams: dict[str, Any], context: str) -> None:
    """
    Fail if a Zoo teacher saw its observations through other wrappers, frame stacking or normalization than the student.

    :param teacher_config: The hyperparameters the teacher's Zoo run saved
    :param student_hyperparams: The student's hyperparameters
    :param context: Where the teacher was named, for the message
    """
    differences = []
    for key in ENV_PIPELINE_KEYS:
        teacher_value, student_value = teacher_config.get(key), student_hyperparams.get(key)
        # An absent key, None and False all mean "not used"
        if (teacher_value or None) != (student_value or None):
            differences.append(f"{key}: teacher {teacher_value!r}, student {student_value!r}")
    if differences:
        raise ValueError(
            f"{context}: the teacher was trained on differently processed observations ("
            + "; ".join(differences)
            + "): make the student's config match the teacher's, or use another teacher"
        )


class DistillExperimentManager(ExperimentManager):
    """
    rl_zoo3's ExperimentManager, which for ``distilled_dqn`` also: reads ``zoo_configs/distilled_dqn.yml`` when no
    ``--conf-file`` is given, resolves the teacher's path (relative to the YAML file that names it, or to the working
    directory when given with ``-params``), and checks the teacher before anything is trained.
    """

    def __init__(self, *args: Any, config: str | None = None, **kwargs: Any):
        algo = kwargs.get("algo", args[1] if len(args) > 1 else None)
        if algo == ALGO_NAME and config is None:
            config = str(zoo_config_path(ALGO_NAME))
        super().__init__(*args, config=config, **kwargs)  # type: ignore[misc]

    def _config_entry_key(self) -> str:
        """The key of the config entry the Zoo used for this env (the env id, ``atari`` or ``default``)."""
        if not self.config.endswith((".yml", ".yaml")):
            return self.env_name.gym_id
        with open(self.config) as file_handler:
            entries = yaml.safe_load(file_handler) or {}
        if self.env_name.gym_id in entries:
            return self.env_name.gym_id
        return "atari" if self._is_atari and "atari" in entries else "default"

    def _resolve_teacher(self, hyperparams: dict[str, Any]) -> str:
        from_command_line = bool(self.custom_hyperparams) and "teacher" in self.custom_hyperparams  # type: ignore[operator]
        where = "-params teacher" if from_command_line else f"{self.config}, entry {self._config_entry_key()!r}"
        teacher = hyperparams.get("teacher")
        if not isinstance(teacher, (str, os.PathLike)):
            raise ValueError(
                f"{where}: teacher={teacher!r}, expected the path of a teacher zip or Zoo log folder "
                "(add `teacher: path/to/teacher.zip` to the entry or pass -params teacher:\"'path/to/teacher.zip'\")"
            )
        # {env_id} stands for the env's file-safe name, as in the Zoo's own file names (ALE/Pong-v5 -> ALE-Pong-v5)
        written = str(teacher).replace("{env_id}", str(self.env_name))
        base_dir = Path.cwd() if from_command_line else Path(self.config).resolve().parent
        path = resolve_relative_to(written, base_dir)
        is_zip = path.is_file() or path.with_name(path.name + ".zip").is_file()
        if not is_zip and not (path.is_dir() and find_zoo_model(path) is not None):
            raise FileNotFoundError(
                f"{where}: teacher {str(teacher)!r} (resolved to {str(path)!r}) is neither an SB3 model zip nor an RL Zoo "
                "log folder; train one first, e.g. `python -m sb3_distill.zoo train --algo dqn --env "
                f"{self.env_name.gym_id} --conf-file zoo_configs/dqn.yml`"
            )
        if path.is_dir():
            check_teacher_pipeline(read_zoo_saved_config(path), hyperparams, f"{where}: teacher {str(path)!r}")
        return str(path)

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        hyperparams, saved_hyperparams = super().read_hyperparameters()
        if self.algo == ALGO_NAME:
            # The saved config.yml records the resolved path, so the run can be reproduced from anywhere
            hyperparams["teacher"] = saved_hyperparams["teacher"] = self._resolve_teacher(hyperparams)
        return hyperparams, saved_hyperparams

    def hyperparameters_optimization(self) -> None:
        if self.algo == ALGO_NAME:
            # Each trial builds its own model, and the Zoo prunes trials whose construction fails:
            # check the teacher against the env once, so a wrong teacher fails now rather than every trial silently
            env = self.create_envs(1, no_log=True)
            try:
                load_teacher(self._hyperparams["teacher"], env.observation_space, env.action_space)
            finally:
                env.close()
        super().hyperparameters_optimization()


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run an rl_zoo3 script with ``distilled_dqn`` registered.

    :param argv: ``[script, *zoo_arguments]``, script one of train, enjoy, record_video, record_training
    :return: exit status
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ZOO_SCRIPTS:
        print(f"usage: python -m sb3_distill.zoo {{{','.join(ZOO_SCRIPTS)}}} [rl_zoo3 arguments ...]", file=sys.stderr)
        return 2
    script, *zoo_arguments = argv
    register()
    saved_argv = sys.argv
    sys.argv = [f"sb3_distill.zoo {script}", *zoo_arguments]
    try:
        if script == "train":
            zoo_train.train()
        else:
            runpy.run_module(f"rl_zoo3.{script}", run_name="__main__")
    except (ValueError, TypeError, FileNotFoundError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved_argv
    return 0


if __name__ == "__main__":
    sys.exit(main())
