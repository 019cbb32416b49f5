"""
RL Zoo glue: register ``distilled_dqn`` with rl_zoo3, then hand the command line to rl_zoo3.

    python -m sb3_distill.zoo train --algo dqn --env CartPole-v1 --conf-file zoo_configs/dqn.yml
    python -m sb3_distill.zoo train --algo distilled_dqn --env CartPole-v1
    python -m sb3_distill.zoo enjoy --algo distilled_dqn --env CartPole-v1 -f logs/

rl_zoo3's ``train`` checks ``--algo`` against ``ALGOS`` when it parses its arguments, so registration must
happen before rl_zoo3 runs: ``--gym-packages`` comes too late. Registration mutates rl_zoo3's shared dicts
(they are imported by name into several of its modules) and never rebinds them.
"""

import runpy
import sys
from collections.abc import Sequence

from rl_zoo3 import hyperparams_opt as zoo_hyperparams_opt
from rl_zoo3 import train as zoo_train
from rl_zoo3.utils import ALGOS

from sb3_distill.distilled_dqn import DistilledDQN
from sb3_distill.hyperparams_opt import convert_distilled_dqn_params, sample_distilled_dqn_params
from sb3_distill.recipe import ALGO_NAME, DistillExperimentManager

# rl_zoo3 scripts this wrapper can run
ZOO_SCRIPTS = ("train", "enjoy", "record_video", "record_training")


def register() -> None:
    """Add ``distilled_dqn`` to rl_zoo3's algorithms, samplers and converters, and its experiment manager."""
    ALGOS[ALGO_NAME] = DistilledDQN
    zoo_hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO_NAME] = sample_distilled_dqn_params
    zoo_hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO_NAME] = convert_distilled_dqn_params
    # rl_zoo3.train builds its ExperimentManager by this name; the subclass changes nothing for other algos
    zoo_train.ExperimentManager = DistillExperimentManager  # type: ignore[misc]


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
