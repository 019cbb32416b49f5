"""QDagger's performance-based alpha (sb3_distill/distilled_dqn/alpha.py) and its use by DistilledDQN."""

import json
import math
import zipfile
from collections import deque

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_distill import DistilledDQN
from sb3_distill.common.alpha import PerformanceAlpha
from tests.conftest import TINY_DQN_KWARGS

STUDENT_KWARGS = dict(policy_kwargs=dict(net_arch=[8]), **TINY_DQN_KWARGS)


def performance_student(teacher, env="CartPole-v1", **kwargs) -> DistilledDQN:
    settings = dict(alpha="performance", alpha_0=0.8, teacher_return=100.0, random_return=20.0, seed=0)
    return DistilledDQN("MlpPolicy", env, teacher=teacher, **{**STUDENT_KWARGS, **settings, **kwargs})


def episodes(*returns: float) -> deque:
    return deque({"r": value, "l": int(value), "t": 0.0} for value in returns)


def test_weight_from_the_normalized_score():
    weight = PerformanceAlpha(alpha_0=0.8, teacher_return=100.0, random_return=20.0)
    assert weight([]) == (0.8, None)
    # Mean 40: s = (40 - 20) / (100 - 20) = 0.25, alpha = 0.8 * 0.75
    alpha, score = weight([30.0, 50.0])
    assert score == pytest.approx(0.25) and alpha == pytest.approx(0.6)
    # At or above the teacher's return: no distillation; at or below random: alpha_0
    assert weight([100.0]) == (0.0, 1.0)
    assert weight([180.0]) == (0.0, 2.0)
    assert weight([20.0]) == (0.8, 0.0)
    assert weight([0.0]) == (0.8, -0.25)


def test_alpha_min_is_the_least_weight():
    weight = PerformanceAlpha(alpha_0=0.8, teacher_return=100.0, random_return=20.0, alpha_min=0.3)
    assert weight([]) == (0.8, None)
    # Above the floor the rule is QDagger's: s = 0.25, alpha = 0.8 * 0.75
    assert weight([40.0])[0] == pytest.approx(0.6)
    # s = 0.75: QDagger's 0.2 is below the floor
    assert weight([80.0])[0] == pytest.approx(0.3)
    assert weight([100.0]) == (0.3, 1.0) and weight([180.0]) == (0.3, 2.0)
    assert "alpha_min=0.3" in repr(weight)


def test_negative_returns():
    weight = PerformanceAlpha(alpha_0=1.0, teacher_return=-100.0, random_return=-500.0)
    alpha, score = weight([-200.0])
    assert score == pytest.approx(0.75) and alpha == pytest.approx(0.25)


def test_alpha_0_before_any_episode(cartpole_teacher_path):
    student = performance_student(cartpole_teacher_path)
    assert student.ep_info_buffer is None
    assert student._current_alpha() == 0.8


def test_alpha_follows_the_training_episodes(cartpole_teacher_path):
    student = performance_student(cartpole_teacher_path)
    student.learn(300)
    returns = [info["r"] for info in student.ep_info_buffer]
    assert len(returns) > 2
    score = (np.mean(returns) - 20.0) / (100.0 - 20.0)
    assert student._current_alpha() == pytest.approx(0.8 * min(max(1.0 - score, 0.0), 1.0))
    # A student that matches the teacher is no longer distilled; one at random level fully
    student.ep_info_buffer = episodes(100.0, 100.0)
    assert student._current_alpha() == 0.0
    student.ep_info_buffer = episodes(10.0, 30.0)
    assert student._current_alpha() == pytest.approx(0.8)
    student.ep_info_buffer = episodes(60.0)
    assert student._current_alpha() == pytest.approx(0.4)


def test_a_student_with_alpha_min_keeps_that_weight_at_its_teachers_level(tmp_path, cartpole_teacher_path):
    student = performance_student(cartpole_teacher_path, alpha_min=0.25)
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.ep_info_buffer = episodes(100.0, 120.0)
    assert student._current_alpha() == 0.25
    student.ep_info_buffer = episodes(60.0)
    assert student._current_alpha() == pytest.approx(0.4)
    # Saved and loaded with the student; a zip saved before alpha_min existed loads with QDagger's rule (0)
    student.save(tmp_path / "student.zip")
    loaded = DistilledDQN.load(tmp_path / "student.zip", teacher=cartpole_teacher_path)
    loaded.set_logger(configure(str(tmp_path), ["csv"]))
    loaded.ep_info_buffer = episodes(100.0)
    assert loaded.alpha_min == 0.25 and loaded._current_alpha() == 0.25
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(files["data"])
    del data["alpha_min"]
    with zipfile.ZipFile(tmp_path / "older.zip", "w") as archive:
        for name, content in {**files, "data": json.dumps(data).encode()}.items():
            archive.writestr(name, content)
    assert DistilledDQN.load(tmp_path / "older.zip", teacher=cartpole_teacher_path).alpha_min == 0.0


def test_alpha_and_score_are_logged(tmp_path, cartpole_teacher_path):
    student = performance_student(cartpole_teacher_path)
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(400, log_interval=1)
    rows = pd.read_csv(tmp_path / "progress.csv").dropna(subset=["train/alpha"])
    assert len(rows) > 2
    scores, alphas = rows["train/student_score"].to_numpy(), rows["train/alpha"].to_numpy()
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(alphas, 0.8 * np.clip(1.0 - scores, 0.0, 1.0), rtol=1e-6)
    # The logged loss mixes the terms with that alpha
    np.testing.assert_allclose(
        rows["train/loss"], (1 - alphas) * rows["train/td_loss"] + alphas * rows["train/distill_loss"], rtol=1e-5
    )


def test_missing_returns_are_measured_on_a_copy_of_the_env(cartpole_teacher_path, cartpole_teacher):
    student = performance_student(cartpole_teacher_path, teacher_return=None, random_return=-1.0, seed=7)
    student.performance_eval_episodes = 3
    student.learn(100)
    # The teacher's greedy return over 3 episodes of CartPole-v1 with the same seed, measured independently
    env = DummyVecEnv([lambda: Monitor(gym.make("CartPole-v1"))])
    env.seed(7)
    expected, _ = evaluate_policy(cartpole_teacher, env, n_eval_episodes=3, deterministic=True)
    assert student.performance_alpha.teacher_return == pytest.approx(expected)
    assert student.performance_alpha.random_return == -1.0
    assert student.teacher_return is None  # the constructor argument is kept: measured again for another teacher
    measured = student.performance_alpha
    student.learn(100, reset_num_timesteps=False)
    assert student.performance_alpha is measured  # measured once
    student.set_teacher(cartpole_teacher_path)
    assert student.performance_alpha is None


def test_a_teacher_no_better_than_random_is_refused(cartpole_teacher_path):
    # The tiny test teacher is worse than random on CartPole (about 10 vs 22)
    student = performance_student(cartpole_teacher_path, teacher_return=None, random_return=None)
    with pytest.raises(ValueError, match=r"teacher_return=.* must exceed random_return=.*measured over 10 episodes"):
        student.learn(100)


class NoArgumentsWrapper(gym.Wrapper):
    """A wrapper that records no constructor arguments: its env cannot be remade from the spec."""


def test_an_env_that_cannot_be_remade_needs_the_returns(cartpole_teacher_path):
    student = performance_student(cartpole_teacher_path, env=NoArgumentsWrapper(gym.make("CartPole-v1")), teacher_return=None)
    with pytest.raises(ValueError, match=r"cannot be remade that way.*pass teacher_return= and random_return="):
        student.learn(100)
    performance_student(cartpole_teacher_path, env=NoArgumentsWrapper(gym.make("CartPole-v1"))).learn(100)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(alpha="perf"), TypeError, r"alpha='perf' .*'performance'"),
        (dict(alpha_0=2.0), ValueError, r"alpha_0=2\.0 must be a float in \[0, 1\]"),
        (dict(alpha_0=math.nan), ValueError, r"alpha_0=nan"),
        (dict(teacher_return=20.0), ValueError, r"teacher_return=20\.0 must exceed random_return=20\.0"),
        (dict(teacher_return=10.0), ValueError, r"teacher_return=10\.0 must exceed random_return=20\.0"),
        (dict(random_return=math.inf), ValueError, r"random_return=inf must be a finite float"),
        (dict(teacher_return="high"), ValueError, r"teacher_return='high'"),
        (dict(performance_eval_episodes=0), ValueError, r"performance_eval_episodes=0 must be an int >= 1"),
        (dict(alpha_min=0.9), ValueError, r"alpha_min=0\.9 must be a float in \[0, alpha_0=0\.8\]"),
        (dict(alpha_min=-0.1), ValueError, r"alpha_min=-0\.1 must be a float in \[0, alpha_0=0\.8\]"),
        (dict(alpha_min="some"), ValueError, r"alpha_min='some'"),
    ],
)
def test_bad_settings_fail_at_construction(cartpole_teacher_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        performance_student(cartpole_teacher_path, **kwargs)


def test_performance_alpha_needs_a_teacher():
    with pytest.raises(ValueError, match=r"alpha='performance' needs a teacher"):
        performance_student(None)
