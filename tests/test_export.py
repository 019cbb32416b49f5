"""Export of a student's network, every family: ONNX and TorchScript files that agree with SB3, the latency table, the CLI."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import QRDQN, RecurrentPPO
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.envs import FakeImageEnv, IdentityEnv, IdentityEnvMultiDiscrete, SimpleMultiObsEnv

from sb3_distill import export_runtimes
from sb3_distill.cli import main
from sb3_distill.export import export_student
from sb3_distill.export_latency import BATCH_SIZES

# The latency table's rows for a DQN student
DQN_RUNTIMES = ["SB3 predict", "torch q_net", "TorchScript", "onnxruntime"]

KINDS = {
    # kind: (policy, env of the check, policy_kwargs)
    "Mlp": ("MlpPolicy", lambda: "CartPole-v1", dict(net_arch=[16])),
    "Cnn": (
        "CnnPolicy",
        lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=3, discrete=True),  # channel-last uint8
        dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=16)),
    ),
    "MultiInput": (
        "MultiInputPolicy",
        SimpleMultiObsEnv,
        dict(net_arch=[16], features_extractor_kwargs=dict(cnn_output_dim=8)),
    ),
}


@pytest.fixture(scope="module")
def students(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny untrained students of each policy kind, saved as DQN zips (no learning needed to test an export)."""
    folder = tmp_path_factory.mktemp("students")
    paths = {}
    for kind, (policy, make_env, policy_kwargs) in KINDS.items():
        env = make_env()
        model = DQN(policy, env, policy_kwargs=policy_kwargs, buffer_size=100, seed=0, device="cpu")
        paths[kind] = folder / f"{kind}.zip"
        model.save(paths[kind])
    return paths


def fresh_observations(space: spaces.Space, n: int, seed: int) -> np.ndarray | dict[str, np.ndarray]:
    """Observations the export's check did not see."""
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    if isinstance(space, spaces.Dict):
        return {key: np.stack([sample[key] for sample in samples]) for key in space.spaces}
    return np.stack(samples)


def run_exported(
    path: Path, export_format: str, observations: np.ndarray | dict[str, np.ndarray], output: str = "q_values"
) -> np.ndarray:
    """The exported file's output, read back with its own runtime (not the exporter's helpers)."""
    arrays = observations if isinstance(observations, dict) else {"obs": observations}
    if export_format == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [node.name for node in session.get_inputs()] == list(arrays)
        assert all(node.shape[0] == "batch" for node in session.get_inputs())
        assert [node.name for node in session.get_outputs()] == [output]
        return session.run(None, arrays)[0]
    module = th.jit.load(str(path))
    with th.no_grad():
        return module(*(th.as_tensor(array) for array in arrays.values())).numpy()


@pytest.mark.parametrize("export_format", ["onnx", "torchscript"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_export_writes_a_file_that_agrees_with_sb3(students, kind, export_format, tmp_path, capsys):
    output = tmp_path / f"student.{export_format}"
    result = export_student(students[kind], export_format, output, env=KINDS[kind][1](), n_check=64, latency_repeats=0)
    assert output.is_file() and result.size_bytes == output.stat().st_size > 0
    assert result.n_checked == 64 and result.max_difference <= 1e-5 and result.latency_seconds == {}
    assert f"Wrote {output} ({result.size_bytes:,} bytes" in capsys.readouterr().out
    assert [path.name for path in tmp_path.iterdir()] == [output.name]  # no temporary file left

    model = DQN.load(students[kind], device="cpu")
    for n in (1, 37):  # the batch axis is free, down to a single observation
        observations = fresh_observations(model.observation_space, n, seed=123 + n)
        exported = run_exported(output, export_format, observations)
        with th.no_grad():
            expected = model.q_net(model.policy.obs_to_tensor(observations)[0]).numpy()
        actions, _ = model.predict(observations, deterministic=True)
        assert exported.shape == (n, model.action_space.n)
        np.testing.assert_array_equal(exported.argmax(axis=1), actions)
        np.testing.assert_allclose(exported, expected, rtol=0, atol=1e-5)


def test_images_are_scaled_inside_the_exported_graph(students, tmp_path):
    """The file takes raw uint8 pixels: feeding them pre-scaled by 1/255 gives other Q-values than SB3's."""
    output = tmp_path / "cnn.pt"
    export_student(students["Cnn"], "torchscript", output, env=KINDS["Cnn"][1](), n_check=16, latency_repeats=0)
    model = DQN.load(students["Cnn"], device="cpu")
    pixels = fresh_observations(model.observation_space, 8, seed=5)
    with th.no_grad():
        expected = model.q_net(th.as_tensor(pixels)).numpy()
    np.testing.assert_allclose(run_exported(output, "torchscript", pixels), expected, rtol=0, atol=1e-5)
    with th.no_grad():
        scaled_twice = model.q_net.q_net(model.q_net.features_extractor(th.as_tensor(pixels).float() / 255.0 / 255.0))
    assert np.abs(scaled_twice.numpy() - expected).max() > 1e-4


def test_discrete_observations_are_one_hot_inside_the_exported_graph(tmp_path):
    student = tmp_path / "identity.zip"
    DQN("MlpPolicy", IdentityEnv(5), policy_kwargs=dict(net_arch=[8]), buffer_size=100, seed=0, device="cpu").save(student)
    output = tmp_path / "identity.pt"
    export_student(student, "torchscript", output, env=IdentityEnv(5), n_check=16, latency_repeats=0)
    model = DQN.load(student, device="cpu")
    states = np.arange(5)  # the raw Discrete observations, one per state
    exported = run_exported(output, "torchscript", states)
    np.testing.assert_array_equal(exported.argmax(axis=1), model.predict(states, deterministic=True)[0])
    with th.no_grad():
        one_hot = model.q_net.q_net(th.eye(5))
    np.testing.assert_allclose(exported, one_hot.numpy(), rtol=0, atol=1e-5)


def test_export_prints_the_latency_of_both_runtimes_whatever_the_format(students, tmp_path, capsys):
    result = export_student(students["Mlp"], "torchscript", tmp_path / "student.pt", env="CartPole-v1", n_check=32,
                            latency_repeats=4)  # fmt: skip
    assert list(result.latency_seconds) == DQN_RUNTIMES
    assert all(sorted(sizes) == list(BATCH_SIZES) and min(sizes.values()) > 0 for sizes in result.latency_seconds.values())
    lines = capsys.readouterr().out.splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("runtime"))
    assert "batch 1 (us)" in lines[header] and "batch 256 (us)" in lines[header]
    rows = lines[header + 1 : header + 5]
    assert [row[:16].strip() for row in rows] == DQN_RUNTIMES
    for row, name in zip(rows, DQN_RUNTIMES, strict=True):
        # batch 1 and batch 256 in microseconds, then the throughput at 256
        assert float(row.split()[-3]) == pytest.approx(1e6 * result.latency_seconds[name][1], abs=0.06)
        assert float(row.split()[-2]) == pytest.approx(1e6 * result.latency_seconds[name][256], abs=0.06)
    assert json.dumps(result.to_dict())  # JSON-ready figures


def export_args(path: Path, *extra: str) -> list[str]:
    return ["export", str(path), "--format", "torchscript", "--n-check", "16", "--repeats", "0", *extra]


def test_cli_writes_next_to_the_zip_with_the_env_recorded_beside_it_or_without_one(students, tmp_path, capsys):
    student = tmp_path / "CartPole-v1_1" / "student.zip"
    student.parent.mkdir()
    student.write_bytes(students["Mlp"].read_bytes())
    # No env recorded, none given: every observation of the check sampled from the zip's observation space, with a note
    assert main(export_args(student)) == 0
    out = capsys.readouterr().out
    assert f"no env is recorded beside {str(student)!r}" in out and "Box(" in out
    assert "Checked on 16 observations (sampled from the zip's observation space)" in out
    assert th.jit.load(str(student.with_suffix(".pt")))(th.zeros(3, 4)).shape == (3, 2)
    student.with_suffix(".pt").unlink()
    (student.parent / "comparison.json").write_text(json.dumps({"env_id": "CartPole-v1"}))
    assert main(export_args(student)) == 0
    assert "rollout of CartPole-v1" in capsys.readouterr().out
    assert th.jit.load(str(student.with_suffix(".pt")))(th.zeros(3, 4)).shape == (3, 2)


def test_cli_refuses_to_overwrite_without_force(students, tmp_path, capsys):
    output = tmp_path / "student.pt"
    output.write_bytes(b"keep me")
    assert main(export_args(students["Mlp"], "-o", str(output), "--env", "CartPole-v1")) == 2
    assert output.read_bytes() == b"keep me"
    error = capsys.readouterr().err
    assert error.startswith("error: ") and str(output) in error and "--force" in error
    assert main(export_args(students["Mlp"], "-o", str(output), "--env", "CartPole-v1", "--force")) == 0
    assert th.jit.load(str(output))(th.zeros(1, 4)).shape == (1, 2)


def test_cli_refuses_what_cannot_be_exported_naming_the_file_and_why(tmp_path, capsys):
    multi_discrete = tmp_path / "multi_discrete.zip"
    PPO("MlpPolicy", IdentityEnvMultiDiscrete(2), n_steps=64, batch_size=64, policy_kwargs=dict(net_arch=[8])).save(
        multi_discrete
    )
    recurrent = tmp_path / "recurrent.zip"
    RecurrentPPO(
        "MlpLstmPolicy", "CartPole-v1", n_steps=64, batch_size=64, policy_kwargs=dict(net_arch=[8], lstm_hidden_size=8)
    ).save(recurrent)
    not_a_zip = tmp_path / "notes.zip"
    not_a_zip.write_text("not a model")
    refusals = (
        (multi_discrete, "PPO is exported with Discrete or Box actions, not MultiDiscrete"),
        (recurrent, "(saved by RecurrentPPO, Discrete actions)"),
        (not_a_zip, "not an SB3 model zip"),
    )
    for path, why in refusals:
        assert main(export_args(path, "--env", "CartPole-v1")) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and error.count("\n") == 1
        assert str(path) in error and why in error and "DQN, QRDQN" in error  # what is exported, listed
    assert sorted(path.name for path in tmp_path.iterdir()) == ["multi_discrete.zip", "notes.zip", "recurrent.zip"]


def test_cli_names_the_extra_when_onnxruntime_is_missing(students, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    output = tmp_path / "student.onnx"
    args = ["export", str(students["Mlp"]), "--format", "onnx", "-o", str(output), "--env", "CartPole-v1"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "onnxruntime" in error and "pip install 'sb3_distill[export]'" in error
    assert not output.exists()


def test_cli_fails_a_file_that_disagrees_with_sb3_and_leaves_no_file(students, tmp_path, monkeypatch, capsys):
    forward = export_runtimes.ExportedNetwork.forward

    def corrupted(self, *observations):  # an exported graph that drifts from the Q-network by 1e-3
        return forward(self, *observations) + 1e-3

    monkeypatch.setattr(export_runtimes.ExportedNetwork, "forward", corrupted)
    output = tmp_path / "student.pt"
    assert main(export_args(students["Mlp"], "-o", str(output), "--env", "CartPole-v1")) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "max |Q difference| = 0.001" in error and error.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_tolerance_decides_the_parity_check(students, tmp_path, monkeypatch, capsys):
    forward = export_runtimes.ExportedNetwork.forward

    def drifted(self, *observations):  # an exported graph 1e-3 away from the Q-network (Q-values of CartPole are ~1-10)
        return forward(self, *observations) + 1e-3

    monkeypatch.setattr(export_runtimes.ExportedNetwork, "forward", drifted)
    output = tmp_path / "student.pt"
    arguments = export_args(students["Mlp"], "-o", str(output), "--env", "CartPole-v1", "--repeats", "0")
    assert main([*arguments, "--tolerance", "1e-4"]) == 2
    assert "tolerance 0.0001" in capsys.readouterr().err and not output.exists()
    assert main([*arguments, "--tolerance", "2e-3"]) == 0
    assert "(tolerance 0.002)" in capsys.readouterr().out and output.exists()


@pytest.mark.parametrize("tolerance", ["0", "-1e-5", "1.5"])
def test_a_tolerance_outside_0_1_is_refused(students, tmp_path, tolerance, capsys):
    output = tmp_path / "student.pt"
    arguments = export_args(students["Mlp"], "-o", str(output), "--env", "CartPole-v1", f"--tolerance={tolerance}")
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: tolerance=") and "expected a number in (0, 1)" in error and not output.exists()


# Students of the other families: tiny, trained a few hundred steps on the env of their check
FAMILY_STUDENTS = {
    # name: (algorithm, env id, constructor arguments, the exported output)
    "QRDQN": (QRDQN, "CartPole-v1", dict(policy_kwargs=dict(net_arch=[16], n_quantiles=5), learning_starts=50), "q_values"),
    "PPO-Discrete": (PPO, "CartPole-v1", dict(n_steps=64, batch_size=32, n_epochs=1), "log_probs"),
    "A2C-Discrete": (A2C, "CartPole-v1", dict(n_steps=8), "log_probs"),
    "PPO-Box": (PPO, "Pendulum-v1", dict(n_steps=64, batch_size=32, n_epochs=1), "actions"),
    "A2C-Box": (A2C, "Pendulum-v1", dict(n_steps=8), "actions"),
    "SAC": (SAC, "Pendulum-v1", dict(learning_starts=50, batch_size=16), "actions"),
    "TD3": (TD3, "Pendulum-v1", dict(learning_starts=50, batch_size=16), "actions"),
    "DDPG": (DDPG, "Pendulum-v1", dict(learning_starts=50, batch_size=16), "actions"),
}


@pytest.fixture(scope="module")
def family_students(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("family_students")
    paths = {}
    for name, (algorithm, env_id, kwargs, _) in FAMILY_STUDENTS.items():
        kwargs = {"policy_kwargs": dict(net_arch=[16]), **kwargs}
        if "learning_starts" in kwargs:
            kwargs["buffer_size"] = 500
        model = algorithm("MlpPolicy", env_id, seed=0, device="cpu", **kwargs)
        model.learn(128)
        paths[name] = folder / f"{name}.zip"
        model.save(paths[name])
    return paths


def expected_values(model: QRDQN | PPO | A2C, observations: np.ndarray) -> np.ndarray:
    """A value family's output computed from SB3 itself: a QR-DQN's mean over quantiles, the log of an actor-critic's
    action probabilities."""
    obs = model.policy.obs_to_tensor(observations)[0]
    with th.no_grad():
        if isinstance(model, QRDQN):
            return model.quantile_net(obs).mean(dim=1).numpy()
        return th.log(model.policy.get_distribution(obs).distribution.probs).numpy()


@pytest.mark.parametrize("export_format", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", list(FAMILY_STUDENTS))
def test_every_family_exports_a_file_that_acts_as_predict(family_students, name, export_format, tmp_path):
    algorithm, env_id, _, output_name = FAMILY_STUDENTS[name]
    output = tmp_path / f"student.{export_format}"
    result = export_student(family_students[name], export_format, output, env=env_id, n_check=32, latency_repeats=0)
    assert (result.algorithm, result.output) == (algorithm.__name__, output_name)
    assert result.max_scaled_difference <= 1e-5 and [path.name for path in tmp_path.iterdir()] == [output.name]

    model = algorithm.load(family_students[name], device="cpu")
    for n in (1, 37):
        observations = fresh_observations(model.observation_space, n, seed=123 + n)
        exported = run_exported(output, export_format, observations, output_name)
        actions, _ = model.predict(observations, deterministic=True)
        if output_name == "actions":
            assert exported.shape == (n, *model.action_space.shape)
            np.testing.assert_allclose(exported, actions, rtol=0, atol=1e-5)
        else:
            assert exported.shape == (n, model.action_space.n)
            np.testing.assert_array_equal(exported.argmax(axis=1), actions)
            np.testing.assert_allclose(exported, expected_values(model, observations), rtol=0, atol=1e-5)
    if export_format == "torchscript":  # the acting network alone: no critic, no value network
        assert not any("critic" in key or "value" in key for key in th.jit.load(str(output)).state_dict())


def test_box_actions_reach_the_env_bounds_as_predict_puts_them(tmp_path):
    """A Gaussian mean beyond the bounds is clipped to them; a squashed actor's [-1, 1] output is unscaled to them."""
    bounded = gym.wrappers.RescaleAction(gym.make("Pendulum-v1"), np.zeros(1, np.float32), np.full(1, 3.0, np.float32))
    ppo = PPO("MlpPolicy", bounded, n_steps=64, batch_size=64, policy_kwargs=dict(net_arch=[8]), seed=0, device="cpu")
    with th.no_grad():
        ppo.policy.action_net.bias.fill_(5.0)  # every mean above the high bound
    td3 = TD3("MlpPolicy", bounded, policy_kwargs=dict(net_arch=[8]), buffer_size=100, seed=0, device="cpu")
    for model, name in ((ppo, "ppo"), (td3, "td3")):
        model.save(tmp_path / f"{name}.zip")
        export_student(tmp_path / f"{name}.zip", "onnx", tmp_path / f"{name}.onnx", env=bounded, n_check=16, latency_repeats=0)
    observations = fresh_observations(bounded.observation_space, 16, seed=7)
    np.testing.assert_array_equal(run_exported(tmp_path / "ppo.onnx", "onnx", observations, "actions"), np.full((16, 1), 3.0))
    with th.no_grad():
        squashed = td3.actor(th.as_tensor(observations)).numpy()  # in [-1, 1]
    exported = run_exported(tmp_path / "td3.onnx", "onnx", observations, "actions")
    np.testing.assert_allclose(exported, 1.5 * (squashed + 1.0), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name, label", [("QRDQN", "Q"), ("PPO-Discrete", "log-prob"), ("SAC", "action")])
def test_a_family_file_that_disagrees_with_sb3_is_not_written(family_students, name, label, tmp_path, monkeypatch, capsys):
    forward = export_runtimes.ExportedNetwork.forward
    monkeypatch.setattr(export_runtimes.ExportedNetwork, "forward", lambda self, *obs: forward(self, *obs) + 1e-3)
    output = tmp_path / "student.onnx"
    arguments = [
        "export",
        str(family_students[name]),
        "--format",
        "onnx",
        "-o",
        str(output),
        "--env",
        FAMILY_STUDENTS[name][1],
    ]
    assert main([*arguments, "--n-check", "16", "--repeats", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1
    assert f"max |{label} difference| = 0.001" in error and "no file was written" in error
    assert list(tmp_path.iterdir()) == []
