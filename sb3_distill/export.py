"""
Export a DQN student for deployment: its Q-network alone (observation -> Q-values), with SB3's preprocessing inside,
as ONNX (run with onnxruntime) or TorchScript. The export checks itself against SB3 before it keeps the file, and
reports the file's size and the latency of SB3 ``predict``, torch, TorchScript and onnxruntime side by side.

The student is read with SB3's own loader, ``DQN.load``, which unpickles the zip's ``data``: export your own (trusted)
files. Other SB3 zips (PPO, ...) are refused before that, from the zip's readable JSON.
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
from stable_baselines3 import DQN
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
from sb3_distill.export_latency import BATCH_SIZES, latency_table, median_latency
from sb3_distill.export_runtimes import (
    ONNX_PACKAGES,
    MissingExtraError,
    QNetworkModule,
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
# Rows of the latency table, in order
RUNTIMES = ("SB3 predict", "torch q_net", "TorchScript", "onnxruntime")


@dataclass
class ExportResult:
    """
    What an export wrote and measured.

    :param path: The exported file
    :param format: ``onnx`` or ``torchscript``
    :param size_bytes: The file's size
    :param inputs: Each input's name, dtype and shape (``batch`` first)
    :param n_checked: Observations of the parity check
    :param max_q_difference: Largest absolute difference between the file's Q-values and the torch Q-network's
    :param max_scaled_q_difference: Largest ``|difference| / max(1, |Q|)``, the quantity held under ``Q_TOLERANCE``
    :param latency_seconds: Runtime -> batch size -> median seconds per call (empty when not timed)
    :param threads: Threads torch and onnxruntime ran with
    """

    path: str
    format: str
    size_bytes: int
    inputs: list[str]
    n_checked: int
    max_q_difference: float
    max_scaled_q_difference: float
    latency_seconds: dict[str, dict[int, float]] = field(default_factory=dict)
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return asdict(self)


def _latency(model: DQN, runners: dict[str, Runner], observations: Observations, repeats: int) -> dict:
    """Median seconds per call of SB3 predict, the torch Q-network and each runner, at batch 1 and 256."""
    runs: dict[str, dict] = {name: {} for name in RUNTIMES if name in runners or name in RUNTIMES[:2]}
    n_observations = len(next(iter(observations.values())) if isinstance(observations, dict) else observations)
    for size in BATCH_SIZES:
        batch = select(observations, np.arange(size) % n_observations)
        arrays, tensors = input_arrays(batch, model.observation_space), model.policy.obs_to_tensor(batch)[0]

        def torch_call(tensors: Any = tensors) -> None:
            with th.inference_mode():
                model.q_net(tensors)

        runs["SB3 predict"][size] = lambda batch=batch: model.predict(batch, deterministic=True)
        runs["torch q_net"][size] = torch_call
        for name, runner in runners.items():
            runs[name][size] = lambda runner=runner, arrays=arrays: runner(arrays)
    return median_latency(runs, repeats)


def load_student(path: str | os.PathLike) -> DQN:
    """The student of a checked zip (:func:`check_student_zip`), loaded with SB3's loader, its weights finite."""
    try:
        model = DQN.load(Path(path), device="cpu")
    except (KeyError, ValueError, RuntimeError, zipfile.BadZipFile) as error:
        raise ValueError(f"Student file {str(path)!r} could not be loaded as a DQN student: {error}") from None
    broken = [name for name, tensor in model.q_net.state_dict().items() if not th.isfinite(tensor).all()]
    if broken:
        raise ValueError(f"Student file {str(path)!r} has NaN or infinite weights ({', '.join(broken[:3])}): no export")
    return model


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
    Export a DQN student's Q-network (observations -> Q-values, SB3's preprocessing included), check it and time it.

    The file is written only if the check passes: on a seeded sample of observations (half from a rollout of ``env``
    with random actions, half sampled from the observation space), its greedy actions equal
    ``DQN.load(path).predict(obs, deterministic=True)`` and its Q-values the torch Q-network's within ``tolerance``
    (relative to ``max(1, |Q|)``).
    Loads the student with SB3's loader, which unpickles: trusted files only.

    :param path: The student's zip (DQN or DistilledDQN)
    :param export_format: ``onnx`` (torch.onnx.export, run with onnxruntime) or ``torchscript`` (torch.jit.trace)
    :param output: The file to write (None: ``path`` with ``.onnx`` or ``.pt``)
    :param env: The env of the check: an env id, a Gymnasium env or a VecEnv (None: the env id recorded beside the zip;
        without one, every observation of the check is sampled from the zip's observation space)
    :param n_check: Observations of the check
    :param force: Overwrite ``output`` if it exists
    :param seed: Seed of the check's observations
    :param latency_repeats: Timed calls at batch 1 (a quarter at batch 256); 0: no latency table
    :param tolerance: Largest ``|Q difference| / max(1, |Q|)`` the check allows (default ``Q_TOLERANCE``, 1e-5; float32
        sums over wide layers, e.g. a [256, 256] teacher's, can differ between runtimes by a few 1e-5)
    :return: The file, its size, the check's result and the latencies
    """
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"format={export_format!r}, expected one of {sorted(EXPORT_FORMATS)}")
    if not (isinstance(tolerance, int | float) and 0 < tolerance < 1):
        raise ValueError(f"tolerance={tolerance!r}, expected a number in (0, 1), e.g. 1e-5")
    output = Path(output) if output is not None else Path(path).with_suffix(EXPORT_FORMATS[export_format])
    if output.exists() and not force:
        raise FileExistsError(f"{str(output)!r} exists: pass --force (force=True) to overwrite it, or another output")
    check_student_zip(path)
    if export_format == "onnx":
        for package in ONNX_PACKAGES:
            import_extra(package)
    env = env if env is not None else recorded_env_id(path)
    env_name = env if isinstance(env, str) or env is None else type(env).__name__
    model = load_student(path)
    if env is None:
        print(
            f"Note: no env is recorded beside {str(path)!r} (comparison.json) and none was given (--env): the check's "
            f"observations are all sampled from the observation space the zip records, {model.observation_space}"
        )
    model.policy.set_training_mode(False)
    observations = check_observations(model, env, n_check, seed)
    names, threads = input_names(model.observation_space), th.get_num_threads()
    module = QNetworkModule(model.q_net, names if isinstance(model.observation_space, gym.spaces.Dict) else None).eval()
    example = [th.as_tensor(array) for array in input_arrays(select(observations, np.arange(2)), model.observation_space)]

    output.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".part")
    os.close(descriptor)
    try:
        runners: dict[str, Runner] = {}
        try:
            traced = torchscript_module(module, example)
            onnx_model = onnx_bytes(module, example, names) if export_format == "onnx" else None
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
        max_difference, max_scaled = check_parity(model, next(iter(runners.values())), observations, output, tolerance)
        os.replace(temporary, output)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)

    inputs = [
        f"{name}: {array.dtype} (batch, {', '.join(map(str, array.shape[1:]))})"
        for name, array in zip(names, input_arrays(observations, model.observation_space), strict=True)
    ]
    size = output.stat().st_size
    result = ExportResult(str(output), export_format, size, inputs, n_check, max_difference, max_scaled, threads=threads)
    print(
        f"Wrote {output} ({result.size_bytes:,} bytes, {export_format}); inputs: {'; '.join(result.inputs)}; output: q_values"
    )
    print(
        f"Checked on {n_check} observations ("
        + (
            f"{n_check // 2} from a random-action rollout of {env_name}, the rest sampled from the observation space"
            if env is not None
            else "sampled from the zip's observation space"
        )
        + f"): greedy actions equal DQN.predict, max |Q difference| {max_difference:.2g}, "
        f"{max_scaled:.2g} relative to max(1, |Q|) (tolerance {tolerance:g})"
    )
    if latency_repeats > 0:
        # Both runtimes are timed whatever the format, so the table compares them
        if "TorchScript" not in runners:
            runners["TorchScript"] = torchscript_runner(traced)
        if "onnxruntime" not in runners:
            try:
                runners["onnxruntime"] = onnx_runner(onnx_bytes(module, example, names), names, threads)
            except MissingExtraError as error:
                print(f"(onnxruntime not timed: {error})")
        result.latency_seconds = _latency(model, runners, observations, latency_repeats)
        print(latency_table(result.latency_seconds, threads, latency_repeats))
    return result
