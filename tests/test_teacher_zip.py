"""Reading teacher zips without unpickling: every teacher kind, legacy gym zips, broken files, pickle payloads."""

import importlib.util
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import QRDQN, TRPO, MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from sb3_distill.common.teacher_spaces import UnreadableField, read_literal, read_space
from sb3_distill.common.teacher import load_teacher
from sb3_distill.common.teacher_zip import TeacherFileError, read_teacher_zip
from tests.legacy_fixtures import make_legacy_zip, make_payload_zip, rewrite_zip, state_dict_bytes

IMAGE = spaces.Box(0, 255, (36, 36, 1), np.uint8)


class FakeEnv(gym.Env):
    """An env with the given spaces, for constructing models without learning."""

    def __init__(self, observation_space: spaces.Space, n_actions: int = 3):
        self.observation_space = observation_space
        self.action_space = spaces.Discrete(n_actions)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


class Squash(nn.Module):
    """An activation SB3 does not ship."""

    def forward(self, inputs: th.Tensor) -> th.Tensor:
        return inputs / (1 + inputs.abs())


class TinyExtractor(BaseFeaturesExtractor):
    """A features extractor SB3 does not ship."""

    def __init__(self, observation_space: spaces.Box):
        super().__init__(observation_space, features_dim=4)
        self.linear = nn.Linear(int(np.prod(observation_space.shape)), 4)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(observations.flatten(1))


class CustomPolicy(DQNPolicy):
    """A policy class from outside SB3."""


def dict_env() -> FakeEnv:
    return FakeEnv(spaces.Dict({"image": IMAGE, "state": spaces.Box(-1, 1, (3,), np.float32)}))


ON_POLICY = dict(n_steps=16, batch_size=16)
TEACHERS: dict[str, Callable[[], BaseAlgorithm]] = {
    "dqn-mlp": lambda: DQN(
        "MlpPolicy", "CartPole-v1", buffer_size=100, policy_kwargs=dict(net_arch=[16, 8], activation_fn=nn.Tanh)
    ),
    "dqn-cnn": lambda: DQN(
        "CnnPolicy", FakeEnv(IMAGE), buffer_size=100, policy_kwargs=dict(features_extractor_kwargs={"features_dim": 16})
    ),
    "dqn-multiinput": lambda: DQN(
        "MultiInputPolicy",
        dict_env(),
        buffer_size=100,
        policy_kwargs=dict(net_arch=[8], features_extractor_kwargs={"cnn_output_dim": 8}),
    ),
    "qrdqn-mlp": lambda: QRDQN("MlpPolicy", "CartPole-v1", buffer_size=100, policy_kwargs=dict(net_arch=[8], n_quantiles=5)),
    "ppo-mlp": lambda: PPO(
        "MlpPolicy",
        "CartPole-v1",
        policy_kwargs=dict(net_arch=dict(pi=[8], vf=[4]), activation_fn=nn.ReLU, ortho_init=False),
        **ON_POLICY,
    ),
    "ppo-cnn": lambda: PPO("CnnPolicy", FakeEnv(IMAGE), policy_kwargs=dict(share_features_extractor=False), **ON_POLICY),
    "a2c-mlp": lambda: A2C("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), n_steps=16),
    "trpo-mlp": lambda: TRPO("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), **ON_POLICY),
    "maskableppo-mlp": lambda: MaskablePPO("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8]), **ON_POLICY),
}
ALGORITHMS = {"dqn": DQN, "qrdqn": QRDQN, "ppo": PPO, "a2c": A2C, "trpo": TRPO, "maskableppo": MaskablePPO}


def saved_teacher(name: str, folder: Path) -> Path:
    path = folder / f"{name}.zip"
    TEACHERS[name]().save(path)
    return path


def batch(space: spaces.Space, size: int = 8) -> th.Tensor | dict[str, th.Tensor]:
    space.seed(0)
    if isinstance(space, spaces.Dict):
        return {key: th.as_tensor(np.stack([sub.sample() for _ in range(size)])) for key, sub in space.spaces.items()}
    return th.as_tensor(np.stack([space.sample() for _ in range(size)]))


@th.no_grad()
def outputs(policy: BasePolicy, observations: th.Tensor | dict[str, th.Tensor]) -> th.Tensor:
    """Q-values for DQN, quantiles for QR-DQN, action logits for actor-critic policies."""
    if hasattr(policy, "q_net"):
        return policy.q_net(observations)
    if hasattr(policy, "quantile_net"):
        return policy.quantile_net(observations)
    return policy.get_distribution(observations).distribution.logits


def assert_same_teacher(path: Path, reference: BaseAlgorithm) -> None:
    teacher = read_teacher_zip(path)
    assert teacher.algorithm == type(reference).__name__
    assert type(teacher.policy) is type(reference.policy)
    assert teacher.path == path
    assert teacher.observation_space == reference.observation_space
    assert teacher.action_space == reference.action_space
    assert not teacher.policy.training
    observations = batch(reference.observation_space)
    assert th.equal(outputs(teacher.policy, observations), outputs(reference.policy, observations))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("teacher_zips")


@pytest.fixture(scope="module")
def dqn_path(folder: Path) -> Path:
    return saved_teacher("dqn-mlp", folder)


@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_each_teacher_kind_is_rebuilt_with_the_outputs_of_sb3s_loader(name: str, folder: Path):
    path = saved_teacher(name, folder)
    assert_same_teacher(path, ALGORITHMS[name.split("-")[0]].load(path, device="cpu"))


def test_reading_leaves_the_global_random_states_alone(dqn_path: Path):
    th_state, np_state, python_state = th.random.get_rng_state(), np.random.get_state(), random.getstate()
    read_teacher_zip(dqn_path)
    assert th.equal(th.random.get_rng_state(), th_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert random.getstate() == python_state


def test_a_teacher_saved_before_sb3_1_7_without_the_shared_extractors_aliases_loads(folder: Path):
    path = saved_teacher("ppo-cnn", folder)
    shared = PPO("CnnPolicy", FakeEnv(IMAGE), **ON_POLICY)
    old_weights = {key: value for key, value in shared.policy.state_dict().items() if not key.startswith(("pi_", "vf_"))}
    assert len(old_weights) < len(shared.policy.state_dict())
    shared.save(path)
    old = rewrite_zip(path, folder / "ppo-cnn-sb3-1.6.zip", members={"policy.pth": state_dict_bytes(old_weights)})
    assert_same_teacher(old, shared)


@pytest.mark.parametrize("name", ["dqn-mlp", "dqn-cnn", "ppo-mlp"])
@pytest.mark.parametrize("policy_name_readable", [True, False])
def test_a_legacy_gym_zip_loads_without_gym_and_gives_the_same_outputs(name: str, policy_name_readable: bool, folder: Path):
    assert importlib.util.find_spec("gym") is None, "these tests show that gym is not needed: run them without gym"
    path = saved_teacher(name, folder)
    legacy = make_legacy_zip(path, folder / f"{name}-legacy-{policy_name_readable}.zip", policy_name_readable)
    # The fixture is what SB3 1.x wrote: SB3's own loader cannot read it here
    with pytest.raises(ModuleNotFoundError, match="gym"):
        ALGORITHMS[name.split("-")[0]].load(legacy)
    assert_same_teacher(legacy, ALGORITHMS[name.split("-")[0]].load(path))


def test_a_pickle_payload_in_the_zip_does_not_run(dqn_path: Path, tmp_path: Path):
    marker = tmp_path / "payload-ran"
    poisoned = make_payload_zip(dqn_path, tmp_path / "poisoned.zip", marker)
    teacher = read_teacher_zip(poisoned)
    assert not marker.exists()
    assert_same_teacher(poisoned, DQN.load(dqn_path))
    # The test is meaningful: SB3's own loader runs the payload
    with pytest.raises(Exception):  # noqa: B017 (SB3 fails once the payload has run, in its own way)
        DQN.load(poisoned)
    assert marker.exists()
    assert teacher.algorithm == "DQN"


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def _weights(path: Path, edit: Callable[[dict[str, th.Tensor]], None]) -> bytes:
    weights = DQN.load(path).policy.state_dict()
    edit(weights)
    return state_dict_bytes(weights)


def _damaged(source: Path, out: Path) -> Path:
    content = bytearray(source.read_bytes())
    content[100:140] = b"\xff" * 40  # inside the first member's compressed bytes
    out.write_bytes(content)
    return out


class NotATensor:
    """An object a weights-only load refuses."""


BROKEN: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "not a zip": (lambda source, out: out.write_text("not a zip") and out, "is not a zip archive"),
    "damaged zip": (lambda source, out: _damaged(source, out), "is a damaged zip archive"),
    "no data": (lambda source, out: rewrite_zip(source, out, members={"data": None}), "has no 'data' and 'policy.pth'"),
    "no policy.pth": (
        lambda source, out: rewrite_zip(source, out, members={"policy.pth": None}),
        "has no 'data' and 'policy.pth'",
    ),
    "data not JSON": (lambda source, out: rewrite_zip(source, out, members={"data": b"{'not': json"}), "not JSON text"),
    "data not a JSON object": (lambda source, out: rewrite_zip(source, out, members={"data": b"[1, 2]"}), "not a JSON object"),
    "policy.pth not torch": (
        lambda source, out: rewrite_zip(source, out, members={"policy.pth": b"\x00" * 64}),
        "'policy.pth' that is not a PyTorch state dict file \\(Unsupported operand 0\\)",
    ),
    "policy.pth not weights-only": (
        lambda source, out: rewrite_zip(
            source, out, members={"policy.pth": _weights(source, lambda weights: weights.update(extra=NotATensor()))}
        ),
        "not a plain state dict of tensors: it holds test_teacher_zip.NotATensor.*trust_teacher=True",
    ),
    "policy.pth not a state dict": (
        lambda source, out: rewrite_zip(source, out, members={"policy.pth": state_dict_bytes([th.zeros(2)])}),  # type: ignore[arg-type]
        "not a state dict",
    ),
    "missing layer": (
        lambda source, out: rewrite_zip(
            source, out, members={"policy.pth": _weights(source, lambda weights: weights.pop("q_net.q_net.2.weight"))}
        ),
        "missing: q_net.q_net.2.weight",
    ),
    "unexpected layer": (
        lambda source, out: rewrite_zip(
            source, out, members={"policy.pth": _weights(source, lambda weights: weights.update(extra=th.zeros(1)))}
        ),
        "unexpected: extra",
    ),
    "mis-shaped layer": (
        lambda source, out: rewrite_zip(source, out, edit_data=lambda data: data["policy_kwargs"].update(net_arch=[16, 9])),
        r"mis-shaped: q_net.q_net.2.bias \(8,\) \(expected \(9,\)\)",
    ),
    "negative layer size": (
        lambda source, out: rewrite_zip(source, out, edit_data=lambda data: data["policy_kwargs"].update(net_arch=[-3])),
        "do not build a DQNPolicy",
    ),
    "layer larger than the weights": (
        lambda source, out: rewrite_zip(source, out, edit_data=lambda data: data["policy_kwargs"].update(net_arch=[10**9])),
        r"asks for layers of size \[1000000000\]",
    ),
    "no policy class": (
        lambda source, out: rewrite_zip(source, out, edit_data=_without("policy_class")),
        "policy_class is missing.*trust_teacher=True",
    ),
    "no observation space": (
        lambda source, out: rewrite_zip(source, out, edit_data=_without("observation_space")),
        "observation_space is missing or not a recorded space.*trust_teacher=True",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_file_raises_one_teacher_file_error_naming_the_file(case: str, dqn_path: Path, tmp_path: Path):
    make, message = BROKEN[case]
    broken = make(dqn_path, tmp_path / "broken.zip")
    with pytest.raises(TeacherFileError, match=message) as error:
        read_teacher_zip(broken)
    assert str(broken) in str(error.value)


def test_a_continuous_action_teacher_is_rebuilt_and_a_gsde_one_refused(tmp_path: Path):
    path = tmp_path / "pendulum.zip"
    PPO("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[4]), **ON_POLICY).save(path)
    rebuilt = read_teacher_zip(path)
    assert rebuilt.algorithm == "PPO" and rebuilt.action_space.shape == (1,)
    # gSDE's spread depends on noise resampled in training, not on the observation alone: refused by name
    gsde = tmp_path / "pendulum_gsde.zip"
    PPO("MlpPolicy", "Pendulum-v1", use_sde=True, policy_kwargs=dict(net_arch=[4]), **ON_POLICY).save(gsde)
    with pytest.raises(TypeError, match=r"pendulum_gsde\.zip.*gSDE"):
        load_teacher(gsde, rebuilt.observation_space, rebuilt.action_space)


def test_a_missing_file_is_not_found(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.zip"):
        read_teacher_zip(tmp_path / "nothing.zip")


def _saved(make: Callable[[], BaseAlgorithm]) -> Callable[[Path], Path]:
    def save(path: Path) -> Path:
        make().save(path)
        return path

    return save


def _with_unknown_setting(path: Path) -> Path:
    DQN("MlpPolicy", "CartPole-v1", buffer_size=100).save(path)
    return rewrite_zip(
        path, path.with_name("unknown.zip"), edit_data=lambda data: data.update(policy_kwargs={"dueling": True})
    )


CUSTOM: dict[str, tuple[Callable[[Path], Path], str]] = {
    "activation": (
        _saved(
            lambda: DQN("MlpPolicy", "CartPole-v1", buffer_size=100, policy_kwargs=dict(net_arch=[8], activation_fn=Squash))
        ),
        r"activation_fn.*test_teacher_zip\.Squash is not one",
    ),
    "features extractor": (
        _saved(
            lambda: DQN(
                "MlpPolicy", "CartPole-v1", buffer_size=100, policy_kwargs=dict(features_extractor_class=TinyExtractor)
            )
        ),
        r"features_extractor_class.*TinyExtractor",
    ),
    "policy class": (_saved(lambda: DQN(CustomPolicy, "CartPole-v1", buffer_size=100)), "module 'test_teacher_zip'"),
    "unknown setting": (_with_unknown_setting, "policy_kwargs\\['dueling'\\]"),
}


@pytest.mark.parametrize("case", sorted(CUSTOM))
def test_code_the_safe_reader_does_not_ship_is_refused_naming_the_trust_opt_in(case: str, tmp_path: Path):
    make, message = CUSTOM[case]
    path = make(tmp_path / "custom.zip")
    with pytest.raises(TeacherFileError, match=message) as error:
        read_teacher_zip(path)
    text = str(error.value)
    assert str(path) in text and "trust_teacher=True" in text and "--trust-teacher" in text and "trust_teacher: true" in text


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch x')",
        "Box.__init__",
        "(lambda: 1)()",
        "[0] * 10**9",
        "open('x', 'w')",
        "Box(0, 1, (2,), object)",
    ],
)
def test_the_literal_reader_evaluates_no_code(text: str):
    with pytest.raises(UnreadableField):
        read_literal(text)


def test_the_literal_reader_reads_numpy_and_gymnasium_prints():
    assert read_literal("[-4.8 -inf  0.41887903 inf]") == [-4.8, -np.inf, 0.41887903, np.inf]
    assert read_literal("[[0 0]\n [1 1]]") == [[0, 0], [1, 1]]
    assert read_literal("[ True False]") == [True, False]
    space = read_literal("{'image': Box(0, 255, (36, 36, 1), uint8), 'key with space': Discrete(3, start=1)}")
    assert space == {"image": spaces.Box(0, 255, (36, 36, 1), np.uint8), "key with space": spaces.Discrete(3, start=1)}


def test_spaces_are_read_from_the_fields_gym_and_gymnasium_wrote():
    legacy_dict = {
        ":type:": "<class 'gym.spaces.dict.Dict'>",
        "spaces": "OrderedDict([('a', Box(-1.0, 1.0, (2,), float32)), ('b', Discrete(3))])",
    }
    assert read_space(legacy_dict, "observation_space") == spaces.Dict(
        {"a": spaces.Box(-1, 1, (2,), np.float32), "b": spaces.Discrete(3)}
    )
    summarised = {":type:": "<class 'gym.spaces.box.Box'>", "dtype": "uint8", "_shape": [2, 600]}
    summarised |= {"low": "[[0 0 0 ... 0 0 0]\n [0 0 0 ... 0 0 7]]", "high": "[[255 ... 255]]"}
    with pytest.raises(UnreadableField, match="differing values"):
        read_space(summarised, "observation_space")
    box = read_space(summarised | {"low_repr": "0"}, "observation_space")
    assert box == spaces.Box(0, 255, (2, 600), np.uint8) and box.low.max() == 0 and box.high.min() == 255
    with pytest.raises(UnreadableField, match="not a gym or gymnasium space"):
        read_space({":type:": "<class 'os.system'>"}, "action_space")


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA device")
def test_the_rebuilt_policy_is_put_on_the_requested_device(dqn_path: Path):
    teacher = read_teacher_zip(dqn_path, device="cuda")
    assert all(parameter.is_cuda for parameter in teacher.policy.parameters())
    observations = batch(teacher.observation_space)
    on_cpu = outputs(read_teacher_zip(dqn_path).policy, observations)
    assert th.allclose(outputs(teacher.policy, observations.cuda()).cpu(), on_cpu, atol=1e-5)
