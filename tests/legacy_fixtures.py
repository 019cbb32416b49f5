"""
Teacher zips as strangers hand them out, made from a model saved today: nothing is downloaded.

- ``make_legacy_zip``: the zip SB3 1.x wrote under ``gym`` (spaces pickled as ``gym.spaces.*`` classes, schedules
  pickled as functions from an older Python), with the readable fields SB3 1.x wrote beside the pickles.
- ``make_payload_zip``: a zip whose pickles run code when unpickled (they create a marker file).
- ``rewrite_zip``: copy a model zip with its ``data`` edited or members replaced or removed.
"""

import base64
import io
import json
import pickle
import sys
import types
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

# A function cloudpickled by another Python version fails to load with a TypeError from code();
# these bytes call types.CodeType() without arguments, which fails the same way
OLD_PYTHON_FUNCTION_PICKLE = b"\x80\x02ctypes\nCodeType\n)R."


def rewrite_zip(
    model_path: str | Path,
    out_path: str | Path,
    edit_data: Callable[[dict[str, Any]], None] | None = None,
    members: dict[str, bytes | None] | None = None,
) -> Path:
    """
    Copy an SB3 model zip, editing its ``data`` JSON in place and replacing (bytes) or removing (None) members.

    :param model_path: The zip to copy
    :param out_path: Where to write the copy
    :param edit_data: Called with the parsed ``data`` before it is written back
    :param members: Member name -> new bytes, or None to leave the member out
    :return: ``out_path``
    """
    members = members or {}
    with zipfile.ZipFile(model_path) as source:
        contents = {name: source.read(name) for name in source.namelist()}
    if edit_data is not None:
        data = json.loads(contents["data"])
        edit_data(data)
        contents["data"] = json.dumps(data, indent=4).encode()
    contents.update({name: content for name, content in members.items() if content is not None})
    with zipfile.ZipFile(out_path, "w") as target:
        for name, content in contents.items():
            if members.get(name, b"") is not None:
                target.writestr(name, content)
    return Path(out_path)


def pickle_of_missing_class(module_name: str, class_name: str, state: dict[str, Any]) -> bytes:
    """
    Pickle bytes of an instance of ``module_name.class_name``, from a module that does not exist when they are loaded.

    :param module_name: A module that is not installed, e.g. ``gym.spaces.box``
    :param class_name: The class's name in it
    :param state: The instance's ``__dict__``
    :return: The pickle
    """
    parts = module_name.split(".")
    created = [".".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    if any(name in sys.modules for name in created):
        raise RuntimeError(f"{module_name} is importable here: a legacy fixture needs a module that is not installed")
    for name in created:
        sys.modules[name] = types.ModuleType(name)
    try:
        missing_class = type(class_name, (), {"__module__": module_name, "__qualname__": class_name})
        setattr(sys.modules[module_name], class_name, missing_class)
        instance = missing_class.__new__(missing_class)
        instance.__dict__.update(state)
        return pickle.dumps(instance, protocol=4)
    finally:
        for name in created:
            del sys.modules[name]


def _legacy_space(record: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` record of a gymnasium Box or Discrete as SB3 1.x wrote a gym 0.21 space."""
    kind = record[":type:"].rpartition(".")[2].rstrip("'>")
    if kind == "Box":
        dtype, shape = np.dtype(record["dtype"]), tuple(record["_shape"])
        state = {"dtype": dtype, "_shape": shape, "_np_random": None}
        # The readable fields are copied from today's record: numpy's printed arrays, as SB3 1.x wrote them
        readable = {"dtype": record["dtype"], "_shape": record["_shape"], "low": record["low"], "high": record["high"]}
        readable |= {"bounded_below": record["bounded_below"], "bounded_above": record["bounded_above"], "_np_random": None}
    elif kind == "Discrete":
        state = {"n": int(record["n"]), "_shape": (), "dtype": np.dtype("int64"), "_np_random": None}
        readable = {"n": int(record["n"]), "_shape": [], "dtype": "int64", "_np_random": None}
    else:
        raise ValueError(f"make_legacy_zip rewrites Box and Discrete spaces, not {record[':type:']}")
    module = f"gym.spaces.{kind.lower()}"
    serialized = base64.b64encode(pickle_of_missing_class(module, kind, state)).decode()
    return {":type:": f"<class '{module}.{kind}'>", ":serialized:": serialized, **readable}


def make_legacy_zip(model_path: str | Path, out_path: str | Path, policy_name_readable: bool = True) -> Path:
    """
    Turn a model zip saved today into the zip SB3 1.x wrote under ``gym``: its spaces are pickles of ``gym.spaces``
    classes (``gym`` is not installed, so SB3's loader fails with ``No module named 'gym'``), its schedules are
    functions pickled by another Python, and only the readable fields of SB3 1.x are left beside them.

    :param model_path: A zip saved by SB3 2.x with a Box or Discrete observation space and a Discrete action space
    :param out_path: Where to write the legacy zip
    :param policy_name_readable: Keep the policy class's ``__init__`` entry, which names the class; without it a
        reader must infer the class from the module and the weights
    :return: ``out_path``
    """

    def to_legacy(data: dict[str, Any]) -> None:
        data["observation_space"] = _legacy_space(data["observation_space"])
        data["action_space"] = _legacy_space(data["action_space"])
        for key, record in data.items():
            if isinstance(record, dict) and any(word in record.get(":type:", "") for word in ("Schedule", "function")):
                serialized = base64.b64encode(OLD_PYTHON_FUNCTION_PICKLE).decode()
                data[key] = {":type:": "<class 'function'>", ":serialized:": serialized}
        policy = data["policy_class"]
        kept = [":type:", ":serialized:", "__module__", "__doc__"] + (["__init__"] if policy_name_readable else [])
        data["policy_class"] = {key: policy[key] for key in kept if key in policy} | {"__abstractmethods__": "frozenset()"}

    return rewrite_zip(model_path, out_path, edit_data=to_legacy)


class _CreatesFile:
    """Unpickling this creates a file: what a malicious teacher zip could do with any code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return open, (self.marker, "w")


def make_payload_zip(model_path: str | Path, out_path: str | Path, marker: str | Path) -> Path:
    """
    Copy a model zip with every ``:serialized:`` pickle in its ``data`` replaced by one that creates ``marker``
    when unpickled; the readable fields beside the pickles are left as they were.

    :param model_path: The zip to copy
    :param out_path: Where to write the malicious copy
    :param marker: The file the payload creates
    :return: ``out_path``
    """
    payload = base64.b64encode(pickle.dumps(_CreatesFile(Path(marker)))).decode()

    def poison(data: dict[str, Any]) -> None:
        for record in data.values():
            if isinstance(record, dict) and ":serialized:" in record:
                record[":serialized:"] = payload

    return rewrite_zip(model_path, out_path, edit_data=poison)


def state_dict_bytes(state_dict: dict[str, Any]) -> bytes:
    """
    The bytes of a ``policy.pth`` holding ``state_dict`` (which may hold objects a weights-only load refuses).

    :param state_dict: What to save
    :return: The file's bytes
    """
    buffer = io.BytesIO()
    th.save(state_dict, buffer)
    return buffer.getvalue()
