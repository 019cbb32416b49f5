"""Tiny teachers made by the tests themselves: nothing is downloaded."""

from pathlib import Path

import pytest
from stable_baselines3 import DQN

# A small but real configuration: a few hundred steps, updates from the start
TINY_DQN_KWARGS = dict(learning_starts=50, buffer_size=1_000, batch_size=16, train_freq=4, target_update_interval=50)


@pytest.fixture(scope="session")
def cartpole_teacher_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DQN teacher on CartPole-v1 with a [32, 32] net, trained for 300 steps."""
    teacher = DQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[32, 32]), seed=0, **TINY_DQN_KWARGS)
    teacher.learn(300)
    path = tmp_path_factory.mktemp("teachers") / "cartpole_teacher.zip"
    teacher.save(path)
    return path


@pytest.fixture(scope="session")
def cartpole_teacher(cartpole_teacher_path: Path) -> DQN:
    return DQN.load(cartpole_teacher_path)
