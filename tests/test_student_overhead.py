"""benchmarks/student_overhead.py: every student's time per update against its plain algorithm's (issue #22, Cost)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (student, its plain algorithm, env, what one update is)
PAIRS = [
    ("DistilledDQN", "DQN", "CartPole-v1", "gradient step, batch 64"),
    ("DistilledQRDQN", "QRDQN", "CartPole-v1", "gradient step, batch 64"),
    ("DistilledPPO", "PPO", "CartPole-v1", "train() call: 20 epochs x 1 minibatch(es) of 256"),
    ("DistilledSAC", "SAC", "Pendulum-v1", "gradient step, batch 256"),
    ("DistilledTD3", "TD3", "Pendulum-v1", "gradient step, batch 256"),
]


def test_plain_kwargs_leave_out_only_the_students_own_arguments():
    from benchmarks.student_overhead import plain_kwargs

    kwargs = {"policy": "MlpPolicy", "teacher": "t.zip", "alpha": 0.5, "temperature": 1.0, "n_epochs": 20}
    assert plain_kwargs("distilled_ppo", kwargs) == {"policy": "MlpPolicy", "n_epochs": 20}
    kwargs = {"policy": "MlpPolicy", "teacher": "t.zip", "critic_term": True, "teacher_cache": None, "tau": 0.01}
    assert plain_kwargs("distilled_td3", kwargs) == {"policy": "MlpPolicy", "tau": 0.01}
    kwargs = {"policy_kwargs": {"n_quantiles": 10}, "quantile_term": True, "offline_transitions": 100, "batch_size": 64}
    assert plain_kwargs("distilled_qrdqn", kwargs) == {"policy_kwargs": {"n_quantiles": 10}, "batch_size": 64}


def test_replay_buffers_hold_a_runs_mean_number_of_transitions():
    from benchmarks.student_overhead import FAMILIES, default_fill_steps
    from sb3_distill.recipe import make_recipe

    fills = {family.algo: default_fill_steps(make_recipe(family.env_id, family.algo)) for family in FAMILIES}
    # Budgets within the buffers: half the budget (DQN and QR-DQN: 10,000 steps; SAC, TD3: 5,000); PPO has no buffer
    assert fills == {
        "distilled_dqn": 5_000, "distilled_qrdqn": 5_000, "distilled_ppo": None, "distilled_sac": 2_500,
        "distilled_td3": 2_500,
    }  # fmt: skip


# A subprocess that builds, fills and times ten models (about 10 s)
@pytest.mark.slow
def test_student_overhead_smoke(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "student_overhead.py"), "--smoke", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    with open(tmp_path / "student_overhead.csv") as file_handler:
        rows = list(csv.DictReader(file_handler))
    # Every student, each after its plain algorithm, on the entry's env and the shipped teacher
    expected = [(student, variant, env_id) for student, plain, env_id, _ in PAIRS for variant in (plain, student)]
    assert [(row["student"], row["variant"], row["env_id"]) for row in rows] == expected
    teachers = {row["env_id"]: row["teacher"] for row in rows}
    assert teachers == {
        "CartPole-v1": "zoo_configs/teachers/CartPole-v1_dqn.zip (DQN, q_values)",
        "Pendulum-v1": "zoo_configs/teachers/Pendulum-v1_sac.zip (SAC, squashed_gaussian)",
    }
    assert [row["update"] for row in rows[1::2]] == [update for *_, update in PAIRS]
    for plain, student in zip(rows[::2], rows[1::2], strict=True):
        # The plain algorithm is the reference: ratio 1 in every round
        assert float(plain["ratio_to_plain"]) == float(plain["ratio_q25"]) == float(plain["ratio_q75"]) == 1.0
        # The smoke run's 3 rounds of 1 call: the median ratio lies within its interquartile range
        assert float(student["ratio_q25"]) <= float(student["ratio_to_plain"]) <= float(student["ratio_q75"])
        assert student["within_target"] == str(float(student["ratio_to_plain"]) <= 1.15)
        for row in (plain, student):
            assert (int(row["rounds"]), int(row["calls_per_round"])) == (3, 1)
            assert 0 < float(row["ms_per_update_median"]) < 1_000
            # The printed table shows the CSV's figures
            assert f"{row['variant']:<16}{float(row['ms_per_update_median']):>12.3f}" in completed.stdout
    # Off-policy buffers hold the smoke run's 300 transitions; a PPO rollout is 8 envs x 32 steps; the DQN entries take
    # 128 gradient steps per train() call, SAC and TD3 one
    assert [int(row["stored_transitions"]) for row in rows] == [300] * 4 + [256] * 2 + [300] * 4
    assert [int(row["updates_per_call"]) for row in rows] == [128] * 4 + [1] * 6
    # Only the PPO student has a timed teacher pass (once per rollout), part of its update's time
    passes = [row["teacher_pass_ms_median"] for row in rows]
    assert passes[:5] == [""] * 5 and passes[6:] == [""] * 4
    assert 0 < float(passes[5]) < float(rows[5]["ms_per_update_median"])
    summary = json.loads((tmp_path / "student_overhead.json").read_text())
    assert summary["target_ratio"] == 1.15 and summary["torch_threads"] == 1
    assert summary["command"].startswith("python ") and "--smoke" in summary["command"]
    assert "CPU cores" in summary["machine"] and "_prepare_teacher_values()" in summary["timed"]
    assert len(summary["rows"]) == 10
    assert (tmp_path / "student_overhead.png").read_bytes().startswith(PNG_SIGNATURE)
