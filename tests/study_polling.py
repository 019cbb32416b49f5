"""Watching a study that another process is writing, without touching it.

Opening the study with Optuna while a worker creates it races with the worker on the schema (both insert Alembic's
version row; the loser fails with an IntegrityError), so the tests read the worker's SQLite file through a read-only
connection until the worker is where they need it.
"""

import contextlib
import sqlite3
from pathlib import Path


def running_trial_numbers(database: Path, with_params: tuple[str, ...] = ()) -> list[int]:
    """The numbers of the trials that are RUNNING in the SQLite file ``database`` with all of ``with_params`` sampled
    (a trial is RUNNING before its parameters are suggested); [] while the file or its tables do not exist yet."""
    if not database.exists():
        return []
    query = "SELECT trials.number FROM trials WHERE trials.state = 'RUNNING'"
    for _ in with_params:
        query += " AND ? IN (SELECT param_name FROM trial_params WHERE trial_params.trial_id = trials.trial_id)"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
            return [number for (number,) in connection.execute(query + " ORDER BY trials.number", with_params)]
    except sqlite3.OperationalError:  # the tables do not exist yet, or the worker holds the write lock
        return []
