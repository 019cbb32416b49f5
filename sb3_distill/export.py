"""
Export a student for deployment: the network that acts, alone, with SB3's preprocessing and post-processing inside, as
ONNX (run with onnxruntime) or TorchScript. A DQN's or QR-DQN's per-action values (observation -> Q-values), an
actor-critic's action log-probabilities (Discrete actions), or the action a SAC, TD3 or actor-critic (Box actions)
``predict`` returns, in the env's bounds: ``sb3_distill.export_families`` says what each family writes. The export
checks itself against SB3 before it keeps the file, and reports the file's size and the latency of SB3 ``predict``,
torch, TorchScript and onnxruntime side by side.

The student is read with SB3's own loader (``DQN.load``, ``SAC.load``, ...), which unpickles the zip's ``data``:
export your own (trusted) files. Zips of other kinds (a recurrent PPO, MultiDiscrete actions, ...) are refused before
that, from the zip's readable JSON.
"""

import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from sb3_distill.export_check import (
    Q_TOLERANCE,
    ExportError,
    Observations,
    check_observations,
    check_parity,
    check_student_zip,
    recorded_env_id,
    select,
)
from sb3_distill.export_families import ExportFamily
from sb3_distill.export_latency import BATCH_SIZES, latency_table, median_latency
from sb3_distill.export_runtimes import (
    ONNX_PACKAGES,
    ExportedNetwork,
    MissingExtraError,
    Runner,
    import_extra,
    input_arrays,
    input_names,
    onnx_bytes,
    onnx_runner,
    torchscript_module,
    torchscript_runner,
)

__all__ = ["EXPORT_FORMATS", "Q_TOLERANCE", "ExportError", "ExportResult", "MissingExtraError", "export_student"]

# Format -> suffix of the default output file
EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# The exported file's runtimes, in the order of the latency table (after SB3 predict and the torch network)
RUNTIMES = ("TorchScript", "onnxruntime")


@dataclass
class ExportResult:
    """
    What an export wrote and measured.

    :param path: The exported file
    :param format: ``onnx`` or ``torchscript``
    :param algorithm: The SB3 algorithm whose zip was exported (``DQN``, ``SAC``, ...)
    :param output: The exported output's name (``q_values``, ``log_probs`` or ``actions``)
    :param size_bytes: The file's size
    :param inputs: Each input's name, dtype and shape (``batch`` first)
    :param n_checked: Observations of the parity check
    :param max_difference: Largest absolute difference between the file's output and SB3's (its torch network's
        values, or ``predict``'s actions)
    :param max_scaled_difference: Largest ``|difference| / max(1, |output|)``, the quantity held under the tolerance
    :param latency_seconds: Runtime -> batch size -> median seconds per call (empty when not timed)
    :param threads: Threads torch and onnxruntime ran with
    """

    path: str
    format: str
    algorithm: str
    output: str
    size_bytes: int
    inputs: list[str]
    n_checked: int
    max_difference: float
    max_scaled_difference: float
    latency_seconds: dict[str, dict[int, float]] = field(default_factory=dict)
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return asdict(self)


def _latency(
    model: BaseAlgorithm,
    network: tuple[str, th.nn.Module],
    runners: dict[str, Runner],
    observations: Observations,
    repeats: int,
) -> dict:
    """Median seconds per call of SB3 predict, the torch network and each runner, at batch 1 and 256."""
    torch_name, torch_network = network
    runs: dict[str, dict] = {"SB3 predict": {}, torch_name: {}, **{name: {} for name in RUNTIMES if name in runners}}
    n_observations = len(next(iter(observations.values())) if isinstance(observations, dict) else observations)
    for size in BATCH_SIZES:
        batch = select(observations, np.arange(size) % n_observations)
        arrays, tensors = input_arrays(batch, model.observation_space), model.policy.obs_to_tensor(batch)[0]

        def torch_call(tensors: Any = tensors) -> None:
            with th.inference_mode():
                torch_network(tensors)

        runs["SB3 predict"][size] = lambda batch=batch: model.predict(batch, deterministic=True)
        runs[torch_name][size] = torch_call
        for name, runner in runners.items():
            runs[name][size] = lambda runner=runner, arrays=arrays: runner(arrays)
    return median_latency(runs, repeats)


def load_student(path: str | os.PathLike, family: ExportFamily) -> tuple[BaseAlgorithm, th.nn.Module]:
    """
    The student of a checked zip (:func:`check_student_zip`), loaded with its algorithm's SB3 loader, and its network
    to export (observations -> the family's output), in eval mode, its weights finite.
    """
    try:
        model = family.algorithm.load(Path(path), device="cpu")
    except (KeyError, ValueError, RuntimeError, zipfile.BadZipFile) as error:
        raise ValueError(f"Student file {str(path)!r} could not be loaded as a {family.name} student: {error}") from None
    model.policy.set_training_mode(False)
    network = family.network(model).eval()
    broken = [name for name, tensor in network.state_dict().items() if not th.isfinite(tensor).all()]
    if broken:
        raise ValueError(f"Student file {str(path)!r} has NaN or infinite weights ({', '.join(broken[:3])}): no export")
    return model, network


def export_student(
    path: str | os.PathLike,
    export_format: str = "onnx",
    output: str | os.PathLike | None = None,
    *,
    env: str | gym.Env | VecEnv | None = None,
    n_check: int = 256,
    force: bool = False,
    seed: int = 0,
    latency_repeats: int = 200,
    tolerance: float = Q_TOLERANCE,
) -> ExportResult:
    """
    Export a student's deployable network (observations -> its family's output, SB3's preprocessing and
    post-processing included), check it and time it.

    What is written, by family (``sb3_distill.export_families``): a DQN's Q-values, a QR-DQN's mean over quantiles
    (``q_values``, the greedy action is their argmax), a PPO's or A2C's action log-probabilities for Discrete actions
    (``log_probs``), and for Box actions the action ``predict(obs, deterministic=True)`` returns (``actions``: a SAC's
    tanh of its mean, a TD3's or DDPG's actor output, unscaled to the action space's bounds; a PPO's or A2C's Gaussian
    mean, clipped to them).

    The file is written only if the check passes: on a seeded sample of observations (half from a rollout of ``env``
    with random actions, half sampled from the observation space), its output equals SB3's within ``tolerance``
    (relative to ``max(1, |output|)``): the values of SB3's torch network, whose argmax must also equal ``predict``'s
    actions, or ``predict``'s actions themselves.
    Loads the student with SB3's loader (``DQN.load``, ``SAC.load``, ...), which unpickles: trusted files only.

    :param path: The student's zip (a DistilledDQN, DistilledQRDQN, DistilledPPO, DistilledSAC or DistilledTD3, or the
        SB3 algorithm's own)
    :param export_format: ``onnx`` (torch.onnx.export, run with onnxruntime) or ``torchscript`` (torch.jit.trace)
    :param output: The file to write (None: ``path`` with ``.onnx`` or ``.pt``)
    :param env: The env of the check: an env id, a Gymnasium env or a VecEnv (None: the env id recorded beside the zip;
        without one, every observation of the check is sampled from the zip's observation space)
    :param n_check: Observations of the check
    :param force: Overwrite ``output`` if it exists
    :param seed: Seed of the check's observations
    :param latency_repeats: Timed calls at batch 1 (a quarter at batch 256); 0: no latency table
    :param tolerance: Largest ``|difference| / max(1, |output|)`` the check allows (default ``Q_TOLERANCE``, 1e-5;
        float32 sums over wide layers, e.g. a [256, 256] teacher's, can differ between runtimes by a few 1e-5)
    :return: The file, its size, the check's result and the latencies
    """
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"format={export_format!r}, expected one of {sorted(EXPORT_FORMATS)}")
    if not (isinstance(tolerance, int | float) and 0 < tolerance < 1):
        raise ValueError(f"tolerance={tolerance!r}, expected a number in (0, 1), e.g. 1e-5")
    output = Path(output) if output is not None else Path(path).with_suffix(EXPORT_FORMATS[export_format])
    if output.exists() and not force:
        raise FileExistsError(f"{str(output)!r} exists: pass --force (force=True) to overwrite it, or another output")
    family = check_student_zip(path)
    if export_format == "onnx":
        for package in ONNX_PACKAGES:
            import_extra(package)
    env = env if env is not None else recorded_env_id(path)
    env_name = env if isinstance(env, str) or env is None else type(env).__name__
    model, network = load_student(path, family)
    if env is None:
        print(
            f"Note: no env is recorded beside {str(path)!r} (comparison.json) and none was given (--env): the check's "
            f"observations are all sampled from the observation space the zip records, {model.observation_space}"
        )
    observations = check_observations(model, env, n_check, seed, family.zoo_algo)
    names, threads = input_names(model.observation_space), th.get_num_threads()
    module = ExportedNetwork(network, names if isinstance(model.observation_space, gym.spaces.Dict) else None).eval()
    example = [th.as_tensor(array) for array in input_arrays(select(observations, np.arange(2)), model.observation_space)]

    output.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    os.close(descriptor)
    try:
        runners: dict[str, Runner] = {}
        try:
            traced = torchscript_module(module, example)
            onnx_model = onnx_bytes(module, example, names, family.output) if export_format == "onnx" else None
        except MissingExtraError:
            raise
        except Exception as error:  # the exporters fail in many ways on unsupported layers
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ExportError(f"{export_format} export of {str(path)!r} failed: {first_line}") from error
        if onnx_model is not None:
            Path(temporary).write_bytes(onnx_model)
            runners["onnxruntime"] = onnx_runner(temporary, names, threads)
        else:
            traced.save(temporary)
            runners["TorchScript"] = torchscript_runner(th.jit.load(temporary))
        max_difference, max_scaled = check_parity(model, family, next(iter(runners.values())), observations, output, tolerance)
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)

    inputs = [
        f"{name}: {array.dtype} (batch, {', '.join(map(str, array.shape[1:]))})"
        for name, array in zip(names, input_arrays(observations, model.observation_space), strict=True)
    ]
    result = ExportResult(
        path=str(output),
        format=export_format,
        algorithm=family.name,
        output=family.output,
        size_bytes=output.stat().st_size,
        inputs=inputs,
        n_checked=n_check,
        max_difference=max_difference,
        max_scaled_difference=max_scaled,
        threads=threads,
    )
    print(
        f"Wrote {output} ({result.size_bytes:,} bytes, {export_format}); inputs: {'; '.join(result.inputs)}; "
        f"output: {family.output}"
    )
    label = family.label
    agreement = (
        f"greedy actions equal {family.name}.predict" if family.values is not None else f"actions match {family.name}.predict"
    )
    print(
        f"Checked on {n_check} observations ("
        + (
            f"{n_check // 2} from a random-action rollout of {env_name}, the rest sampled from the observation space"
            if env is not None
            else "sampled from the zip's observation space"
        )
        + f"): {agreement}, max |{label} difference| {max_difference:.2g}, "
        f"{max_scaled:.2g} relative to max(1, |{label}|) (tolerance {tolerance:g})"
    )
    if latency_repeats > 0:
        # Both runtimes are timed whatever the format, so the table compares them
        if "TorchScript" not in runners:
            runners["TorchScript"] = torchscript_runner(traced)
        if "onnxruntime" not in runners:
            try:
                runners["onnxruntime"] = onnx_runner(onnx_bytes(module, example, names, family.output), names, threads)
            except MissingExtraError as error:
                print(f"(onnxruntime not timed: {error})")
        torch_network = (f"torch {family.network_name}", network)
        result.latency_seconds = _latency(model, torch_network, runners, observations, latency_repeats)
        print(latency_table(result.latency_seconds, threads, latency_repeats))
    return result
