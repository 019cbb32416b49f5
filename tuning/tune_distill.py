"""
Tune DistilledDQN's alpha and temperature with an Optuna study: the same as ``sb3-distill tune``.

    python tuning/tune_distill.py --env CartPole-v1 --teacher teacher.zip --n-trials 50 --n-timesteps 10000

Run it again with the same ``--storage`` and ``--study-name`` to continue the study, or in several processes (on
several machines with a PostgreSQL ``--storage``) to share it. Defaults: ``tuning/study.yml``; options: ``--help``.
"""

import sys

from sb3_distill.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
