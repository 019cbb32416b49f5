"""A saved VecNormalize read without running code from it (and without gym for SB3 1.x files): the statistics only."""

import pickle
import sys
import types

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_distill.common.vecnormalize_reader import read_vec_normalize


def saved(path, clip_obs: float = 5.0) -> VecNormalize:
    vec_normalize = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), clip_obs=clip_obs)
    vec_normalize.seed(0)
    vec_normalize.reset()
    for _ in range(100):
        vec_normalize.step(np.array([vec_normalize.action_space.sample()]))
    vec_normalize.save(str(path))
    return vec_normalize


def test_the_statistics_are_sb3s_own(tmp_path):
    vec_normalize = saved(tmp_path / "vecnormalize.pkl")
    normalizer = read_vec_normalize(tmp_path / "vecnormalize.pkl")
    np.testing.assert_allclose(normalizer.means[None].numpy(), vec_normalize.obs_rms.mean, rtol=1e-6)
    observations = np.stack([vec_normalize.observation_space.sample() for _ in range(4)])
    import torch as th

    np.testing.assert_allclose(
        normalizer(th.as_tensor(observations)).numpy(), vec_normalize.normalize_obs(observations), rtol=1e-5, atol=1e-6
    )
    assert normalizer.clip_obs == 5.0


def test_a_payload_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w')",))

    (tmp_path / "vecnormalize.pkl").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match=r"vecnormalize\.pkl.*cannot be read safely: it names builtins\.exec"):
        read_vec_normalize(tmp_path / "vecnormalize.pkl")
    assert not marker.exists()


def test_an_sb3_1x_file_with_gym_spaces_reads_without_gym(tmp_path, monkeypatch):
    vec_normalize = saved(tmp_path / "modern.pkl")
    # An SB3 1.x file: its spaces are gym's. Pickle them from a stand-in `gym.spaces.box` module, then forget it
    gym_box = types.ModuleType("gym.spaces.box")

    class Box:
        def __init__(self, low, high):
            self.low, self.high = low, high

    Box.__module__, Box.__qualname__ = "gym.spaces.box", "Box"
    gym_box.Box = Box
    for name in ("gym", "gym.spaces", "gym.spaces.box"):
        monkeypatch.setitem(sys.modules, name, gym_box if name.endswith("box") else types.ModuleType(name))
    state = vec_normalize.__getstate__()
    state["observation_space"] = Box(np.zeros(3, np.float32), np.ones(3, np.float32))
    legacy = object.__new__(VecNormalize)
    # What VecNormalize.__getstate__ drops when it pickles
    legacy.__dict__.update(state, venv=None, class_attributes=None, returns=None)
    (tmp_path / "legacy.pkl").write_bytes(pickle.dumps(legacy))
    for name in ("gym", "gym.spaces", "gym.spaces.box"):
        monkeypatch.delitem(sys.modules, name)
    normalizer = read_vec_normalize(tmp_path / "legacy.pkl")
    np.testing.assert_allclose(normalizer.means[None].numpy(), vec_normalize.obs_rms.mean, rtol=1e-6)


def test_broken_statistics_name_the_file(tmp_path):
    vec_normalize = saved(tmp_path / "good.pkl")
    (tmp_path / "truncated.pkl").write_bytes((tmp_path / "good.pkl").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"truncated\.pkl.*cannot be read safely"):
        read_vec_normalize(tmp_path / "truncated.pkl")
    vec_normalize.obs_rms.var[0] = float("nan")
    vec_normalize.save(str(tmp_path / "nan.pkl"))
    with pytest.raises(ValueError, match=r"nan\.pkl.*non-finite means or variances"):
        read_vec_normalize(tmp_path / "nan.pkl")
    vec_normalize.obs_rms.var[0] = 1.0
    vec_normalize.clip_obs = 0.0
    vec_normalize.save(str(tmp_path / "clip.pkl"))
    with pytest.raises(ValueError, match=r"clip\.pkl.*clip_obs is 0\.0, expected a finite number > 0"):
        read_vec_normalize(tmp_path / "clip.pkl")
    (tmp_path / "other.pkl").write_bytes(pickle.dumps({"obs_rms": None}))
    with pytest.raises(ValueError, match=r"other\.pkl.*expected a saved VecNormalize"):
        read_vec_normalize(tmp_path / "other.pkl")
