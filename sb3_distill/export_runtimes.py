"""
The exported network and its two runtimes: a student's network on raw observations (one input per observation key),
written as ONNX (run with onnxruntime) or TorchScript (run with ``torch.jit.load``).
"""

import contextlib
import importlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType

import numpy as np
import torch as th
from gymnasium import spaces

EXPORT_EXTRA = "pip install 'sb3_distill[export]'"
# What an ONNX export needs: the exporter (torch.export-based, the default since torch 2.9) and the runtime of the check
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
# Exported networks take the observation batch first, so the batch size is free
BATCH_AXIS = "batch"

Observations = np.ndarray | dict[str, np.ndarray]
# A network on the exported inputs (numpy arrays in input order) -> its output, batch first
Runner = Callable[[list[np.ndarray]], np.ndarray]


class MissingExtraError(ImportError):
    """A package of the ``export`` extra is not installed; the message says what to install."""


class ExportedNetwork(th.nn.Module):
    """
    A student's network on raw observations, one positional input per observation key.

    SB3's networks preprocess their input themselves (``preprocess_obs`` in ``extract_features``: images / 255 when
    ``normalize_images``, one-hot Discrete and MultiDiscrete, casts to float), then their features extractor flattens
    or combines the inputs: all of it is traced into the exported graph, so the runtime is fed the env's observations
    as they are.

    :param network: Observations (a tensor, or a dict of them by key) -> the output (a DQN's ``q_net``, ...)
    :param keys: A Dict observation's keys, in input order (None: one input, the observation)
    """

    def __init__(self, network: th.nn.Module, keys: list[str] | None = None):
        super().__init__()
        self.network = network
        self.keys = keys

    def forward(self, *observations: th.Tensor) -> th.Tensor:
        if self.keys is None:
            return self.network(observations[0])
        return self.network(dict(zip(self.keys, observations, strict=True)))


def input_names(observation_space: spaces.Space) -> list[str]:
    """The exported inputs' names: a Dict observation's keys, else ``obs``."""
    return list(observation_space.spaces) if isinstance(observation_space, spaces.Dict) else ["obs"]


def input_spaces(observation_space: spaces.Space) -> list[spaces.Space]:
    """The space of each exported input, in input order."""
    if isinstance(observation_space, spaces.Dict):
        return list(observation_space.spaces.values())
    return [observation_space]


def input_arrays(observations: Observations, observation_space: spaces.Space) -> list[np.ndarray]:
    """A batch of observations as the exported inputs take it: arrays in input order, in the space's dtype."""
    batches = (
        [observations[key] for key in input_names(observation_space)] if isinstance(observations, dict) else [observations]
    )
    return [
        np.asarray(batch, dtype=space.dtype) for batch, space in zip(batches, input_spaces(observation_space), strict=True)
    ]


def import_extra(name: str) -> ModuleType:
    """Import a package of the ``export`` extra, failing with what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise MissingExtraError(
            f"exporting to ONNX needs the {name} package, which is not installed: {EXPORT_EXTRA}"
        ) from error


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings and log lines (deprecations inside torch, optional torchvision ops)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnx_bytes(module: ExportedNetwork, example: list[th.Tensor], names: list[str], output: str) -> bytes:
    """
    The module as an ONNX model, one file, with a dynamic batch axis on every input and on the output.

    ``torch.onnx.export``'s default exporter (``dynamo=True``, torch.export) needs ``onnxscript``; the older
    TorchScript-based exporter is deprecated since torch 2.9.

    :param module: The network
    :param example: An example batch (at least 2 observations: torch.export specializes a batch of 1)
    :param names: The inputs' names
    :param output: The output's name
    """
    for package in ONNX_PACKAGES[:2]:
        import_extra(package)
    batch = th.export.Dim(BATCH_AXIS)
    with quiet_exporter():
        program = th.onnx.export(
            module,
            tuple(example),
            dynamo=True,
            input_names=names,
            output_names=[output],
            dynamic_shapes=(tuple({0: batch} for _ in example),),
            verbose=False,
        )
    if program is None:  # only when a file is given; typed as optional
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto.SerializeToString()


def onnx_runner(model: str | os.PathLike | bytes, names: list[str], threads: int) -> Runner:
    """
    Run an ONNX model with onnxruntime on the CPU.

    :param model: An ONNX file or its bytes
    :param names: The inputs' names
    :param threads: onnxruntime's intra-op threads (as many as torch's, for a fair comparison)
    """
    onnxruntime = import_extra("onnxruntime")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model if isinstance(model, bytes) else os.fspath(model), options, providers=["CPUExecutionProvider"]
    )

    def run(arrays: list[np.ndarray]) -> np.ndarray:
        return session.run(None, dict(zip(names, arrays, strict=True)))[0]

    return run


def torchscript_module(module: ExportedNetwork, example: list[th.Tensor]) -> th.jit.ScriptModule:
    """The module traced by ``torch.jit.trace`` (its forward has no data-dependent branch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", th.jit.TracerWarning)
        return th.jit.trace(module.eval(), tuple(example))


def torchscript_runner(module: th.jit.ScriptModule) -> Runner:
    """Run a TorchScript module (traced here, or read back with ``torch.jit.load``) on the CPU."""

    def run(arrays: list[np.ndarray]) -> np.ndarray:
        with th.inference_mode():
            return module(*(th.as_tensor(array) for array in arrays)).numpy()

    return run
