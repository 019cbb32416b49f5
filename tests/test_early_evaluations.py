"""How benchmarks/early_evaluations.py merges a replay's finer grid into its run's record."""

from benchmarks.early_evaluations import merge, shared_evaluations

REFERENCE = {"teacher_return": 100.0, "random_return": 0.0}


def record(returns: list[float], timesteps: list[int] | None = None) -> dict:
    timesteps = timesteps or [1000 * index for index in range(len(returns))]
    return {"env_id": "E", "arm": "A", "seed": 0, "parameters": 10, "budget": timesteps[-1], "final_return": returns[-1],
            "timesteps": timesteps, "returns": returns, "train_seconds": [float(step) / 100 for step in timesteps],
            "teacher_transitions": 0}  # fmt: skip


def replay(returns: list[float]) -> dict:
    # Every 250 steps over the first 2,000
    return {"timesteps": [250 * index for index in range(len(returns))], "returns": returns,
            "train_seconds": [2.5 * index for index in range(len(returns))]}  # fmt: skip


def test_a_replay_that_reaches_95_between_two_main_evaluations_moves_the_step_earlier():
    # Main grid: 95 first at 2,000; the replay's finer grid at 1,500
    run = merge(record([0, 50, 95, 100]), replay([0, 10, 20, 30, 50, 60, 96, 80, 95]), REFERENCE)
    assert run["steps_to_95"] == 1500 and run["seconds_to_95"] == 15.0 and run["reached_95"]
    assert run["steps_to_95_main_grid"] == 2000
    assert (run["shared_evaluations"], run["equal_evaluations"]) == (3, 3)


def test_a_replay_that_does_not_reach_95_in_its_window_keeps_the_records_step():
    run = merge(record([0, 50, 60, 95]), replay([0, 10, 20, 30, 50, 60, 70, 80, 60]), REFERENCE)
    assert run["steps_to_95"] == 3000 and run["steps_to_95_main_grid"] == 3000


def test_a_run_that_never_reached_95_is_counted_reached_if_its_replay_did():
    run = merge(record([0, 50, 60, 70]), replay([0, 10, 20, 30, 50, 96, 70, 80, 60]), REFERENCE)
    assert run["reached_95"] and run["steps_to_95"] == 1250
    # Main grid: not reached, counted at the budget
    assert run["steps_to_95_main_grid"] == 3000


def test_a_replay_that_departs_from_its_record_is_not_used():
    # At step 1,000 the replay returned 51 where the record has 50: not the same training
    departed = replay([0, 10, 20, 30, 51, 60, 96, 80, 95])
    assert shared_evaluations(record([0, 50, 95, 100]), departed) == (3, 2)
    run = merge(record([0, 50, 95, 100]), departed, REFERENCE)
    assert run["steps_to_95"] == 2000 and run["equal_evaluations"] == 2
