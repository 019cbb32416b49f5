"""
Read the observation statistics of a saved ``VecNormalize`` (an RL Zoo run's ``vecnormalize.pkl``) without running code
from the file, and without ``gym`` for SB3 1.x files.

A pickle names the classes and functions that rebuild its objects, and loading calls them: a file from a stranger can
name ``os.system``. :class:`RestrictedUnpickler` calls only NumPy's array and dtype constructors and ``OrderedDict``.
Every class of SB3, ``gym`` or ``gymnasium`` (``VecNormalize``, ``RunningMeanStd``, the spaces, NumPy's random
generators inside them) becomes an inert :class:`Record` that keeps the state it is given and runs nothing; any other
global is refused, naming it. Only the running mean, variance, count, ``clip_obs``, ``epsilon`` and the normalized keys
are then taken.
"""

import importlib
import io
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from sb3_distill.common.teacher_values import ObservationNormalizer

#: Callables the reader may call (NumPy 1.x and 2.x names): they only rebuild arrays, dtypes and ordered dicts
_ALLOWED_CALLS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("collections", "OrderedDict"),
    }
)
#: Modules whose classes and functions are read as inert records, never called
_RECORDED_MODULES = ("stable_baselines3.", "gym.", "gymnasium.", "numpy.random.")


class Record:
    """An object of a class the reader does not call: its constructor arguments and state, nothing run."""

    qualified_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        # Pickle's BUILD: a dict, or (dict, slots) for classes with __slots__
        self.state = state[0] if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict) else state

    def get(self, key: str, default: Any = None) -> Any:
        state = getattr(self, "state", None)
        return state.get(key, default) if isinstance(state, dict) else default


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that calls only :data:`_ALLOWED_CALLS`, records SB3/gym/gymnasium objects, and refuses the rest."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_CALLS:
            # NumPy 2 reads its 1.x module names too (numpy.core is an alias of numpy._core)
            return getattr(importlib.import_module(module), name)
        if (module, name) == ("copyreg", "_reconstructor"):
            return _reconstructor
        if module.startswith(_RECORDED_MODULES):
            return type(name, (Record,), {"qualified_name": f"{module}.{name}"})
        raise pickle.UnpicklingError(f"it names {module}.{name}, which the restricted reader does not call")


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """``copyreg._reconstructor`` of protocols 0 and 1, for the reader's records only."""
    if not (isinstance(cls, type) and issubclass(cls, Record)):
        raise pickle.UnpicklingError(f"copyreg._reconstructor of {cls!r}, which the restricted reader does not build")
    return cls()


def _statistics(rms: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The mean and variance of a recorded ``RunningMeanStd``, checked."""
    mean, var, count = (rms.get(key) if isinstance(rms, Record) else None for key in ("mean", "var", "count"))
    if not isinstance(mean, np.ndarray) or not isinstance(var, np.ndarray) or mean.shape != var.shape:
        raise ValueError(f"its {where} has no mean and variance arrays of one shape")
    if not (np.isfinite(mean).all() and np.isfinite(var).all()) or (var < 0).any():
        raise ValueError(f"its {where} holds non-finite means or variances, or negative variances")
    if count is not None and not (isinstance(count, (int, float, np.number)) and count > 0):
        raise ValueError(f"its {where} has count {count!r}, expected a number > 0")
    return mean, var


def read_vec_normalize(path: str | Path) -> ObservationNormalizer | None:
    """
    The frozen observation normalization of a saved ``VecNormalize``, read by :class:`RestrictedUnpickler`.

    :param path: The ``vecnormalize.pkl`` file
    :return: The normalization, or None where the file normalizes no observations
    :raises ValueError: If the file is not a saved VecNormalize, names a global the reader does not call, or holds
        statistics that are not finite, non-negative variances of one shape, a positive ``clip_obs``; the message names
        the file
    """
    file = Path(path)
    try:
        loaded = RestrictedUnpickler(io.BytesIO(file.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise ValueError(f"Normalization statistics {str(file)!r} cannot be read safely: {error}") from error
    try:
        return _normalizer(loaded)
    except ValueError as error:
        raise ValueError(f"Normalization statistics {str(file)!r}: {error}") from error


def _normalizer(loaded: Any) -> ObservationNormalizer | None:
    if not (isinstance(loaded, Record) and loaded.qualified_name.endswith(".VecNormalize")):
        raise ValueError(
            f"it holds a {getattr(loaded, 'qualified_name', type(loaded).__name__)}, expected a saved VecNormalize"
        )
    if not loaded.get("norm_obs", True):
        return None
    clip_obs, epsilon = loaded.get("clip_obs"), loaded.get("epsilon")
    for name, value in (("clip_obs", clip_obs), ("epsilon", epsilon)):
        if not isinstance(value, (int, float, np.number)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"its {name} is {value!r}, expected a finite number > 0")
    obs_rms = loaded.get("obs_rms")
    if isinstance(obs_rms, dict):
        keys = loaded.get("norm_obs_keys") or list(obs_rms)
        statistics = {key: _statistics(obs_rms.get(key), f"obs_rms[{key!r}]") for key in keys}
    else:
        statistics = {None: _statistics(obs_rms, "obs_rms")}

    def as_tensor(array: np.ndarray) -> th.Tensor:
        return th.as_tensor(np.asarray(array), dtype=th.float32)

    return ObservationNormalizer(
        means={key: as_tensor(mean) for key, (mean, _) in statistics.items()},
        variances={key: as_tensor(var) for key, (_, var) in statistics.items()},
        clip_obs=float(clip_obs),  # type: ignore[arg-type]
        epsilon=float(epsilon),  # type: ignore[arg-type]
    )
