"""
Rebuild gymnasium spaces and class names from the readable fields of an SB3 zip's ``data``, without unpickling.

For every object it cannot store as JSON, SB3's ``data_to_json`` writes a pickle (``:serialized:``) and, beside it,
the object's type (``:type:``) and its attributes: JSON values as they are, anything else as ``str(value)``.
This module reads only those readable fields: numbers come from numpy's and gymnasium's printed forms,
parsed by a small literal reader (Python's ``ast``, never ``eval``) that knows a handful of names.
``gym`` and ``gymnasium`` spaces (SB3 1.x and 2.x zips) both become gymnasium spaces.
"""

import ast
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

_CLASS_TEXT = re.compile(r"<class '([\w.]+)'>")
# Whitespace between two values of a printed numpy array ("[0. 1.]", "[[0 0]\n [0 0]]", "[0 0 ... 0]")
_ARRAY_GAP = re.compile(r"(?<=[\w.\]])\s+(?=[-+\w.\[])")
_QUOTED = re.compile(r"""('[^']*'|"[^"]*")""")
_DTYPE_KINDS = "biuf"
# Larger spaces are refused before anything is allocated (a 4-frame 84x84 Atari stack has 28,224 entries)
MAX_SPACE_SIZE = 2**26


class UnreadableField(ValueError):
    """A readable field of the zip's ``data`` that does not say enough to rebuild the object; the message says why."""


def class_path(text: Any, what: str) -> str:
    """
    The dotted path of a class from SB3's readable form ``"<class 'module.Name'>"``.

    :param text: The readable field
    :param what: What the field is, for the message
    :return: ``"module.Name"``
    """
    match = _CLASS_TEXT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise UnreadableField(f"{what} is {str(text)[:80]!r}, not a readable class name")
    return match.group(1)


def _dtype(value: Any) -> np.dtype:
    try:
        dtype = np.dtype(str(value))
    except TypeError as error:
        raise UnreadableField(f"dtype {str(value)[:40]!r} is not a numpy number type") from error
    if dtype.kind not in _DTYPE_KINDS:
        raise UnreadableField(f"dtype {str(value)[:40]!r} is not a numpy number type")
    return dtype


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(size, int) and size >= 0 for size in value):
        raise UnreadableField(f"shape {str(value)[:40]!r} is not a list of sizes")
    if math.prod(value) > MAX_SPACE_SIZE:
        raise UnreadableField(f"shape {tuple(value)} has more than {MAX_SPACE_SIZE} entries")
    return tuple(value)


def _flatten(value: Any) -> list[Any]:
    return [item for element in value for item in _flatten(element)] if isinstance(value, list) else [value]


def _bounds(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An array of ``shape`` from a literal: a number, a nested list, or a numpy summary with ``...`` in it."""
    values = _flatten(value)
    numbers = [item for item in values if item is not Ellipsis]
    if not numbers or not all(isinstance(item, (int, float)) for item in numbers):
        raise UnreadableField(f"bounds {str(value)[:60]!r} are not numbers")
    if Ellipsis in values:
        # numpy prints only the ends of arrays with over 1000 entries: uniform ends are read as a uniform array
        if len(set(numbers)) != 1:
            raise UnreadableField("bounds were printed as a numpy summary ('...') with differing values")
        value = numbers[0]
    if dtype.kind in "biu" and not all(math.isfinite(item) for item in numbers):
        raise UnreadableField(f"integer bounds {str(value)[:60]!r} are not finite")
    try:
        array = np.asarray(value).astype(dtype)
        return np.array(np.broadcast_to(array, shape) if array.size == 1 else array.reshape(shape))
    except (ValueError, OverflowError) as error:
        raise UnreadableField(f"bounds {str(value)[:60]!r} do not fit shape {shape} and dtype {dtype}: {error}") from error


def _box(low: Any, high: Any, shape: Any, dtype: Any) -> spaces.Box:
    box_dtype, box_shape = _dtype(dtype), _shape(shape)
    box_low, box_high = _bounds(low, box_shape, box_dtype), _bounds(high, box_shape, box_dtype)
    return spaces.Box(low=box_low, high=box_high, shape=box_shape, dtype=box_dtype)  # type: ignore[arg-type]


def _discrete(n: Any, start: Any = 0) -> spaces.Discrete:
    try:
        size, first = int(str(n)), int(str(start))
    except ValueError as error:
        raise UnreadableField(f"Discrete(n={str(n)[:20]!r}, start={str(start)[:20]!r}) is not made of integers") from error
    if size <= 0:
        raise UnreadableField(f"Discrete(n={size}) has no actions")
    return spaces.Discrete(size, start=first)


def _dict(items: Any = ()) -> spaces.Dict:
    pairs = items.items() if isinstance(items, dict) else items
    if not all(isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[1], spaces.Space) for pair in pairs):
        raise UnreadableField(f"Dict sub-spaces {str(items)[:80]!r} are not (name, space) pairs")
    return spaces.Dict(dict(pairs))


_CONSTRUCTORS: dict[str, Callable[..., Any]] = {"Box": _box, "Discrete": _discrete, "Dict": _dict, "OrderedDict": _dict}
_NAMES: dict[str, Any] = {"inf": math.inf, "nan": math.nan}


def _literal(node: ast.AST) -> Any:
    """The value of a printed literal: numbers, strings, lists, tuples, dicts and the known space reprs only."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    elif isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    elif isinstance(node, ast.Name):
        return node.id  # a bare name is only meaningful as a dtype ("float32"), which _dtype checks
    elif isinstance(node, ast.List):
        return [_literal(element) for element in node.elts]
    elif isinstance(node, ast.Tuple):
        return tuple(_literal(element) for element in node.elts)
    elif isinstance(node, ast.Dict) and None not in node.keys:
        return {_literal(key): _literal(value) for key, value in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CONSTRUCTORS:
        arguments = [_literal(argument) for argument in node.args]
        keywords = {keyword.arg: _literal(keyword.value) for keyword in node.keywords if keyword.arg is not None}
        try:
            return _CONSTRUCTORS[node.func.id](*arguments, **keywords)
        except TypeError as error:
            raise UnreadableField(f"{node.func.id}(...) has unexpected arguments: {error}") from error
    raise UnreadableField(f"{ast.dump(node)[:80]} is not a number, list or known space")


def read_literal(text: str) -> Any:
    """
    Read a printed value (a numpy array's ``str``, a gymnasium space's ``repr``) without evaluating code.

    :param text: The printed value
    :return: Numbers, lists, tuples, dicts and spaces
    """
    # Put commas between the values of printed numpy arrays, leaving quoted names alone
    parts = _QUOTED.split(text.strip())
    python_text = "".join(part if index % 2 else _ARRAY_GAP.sub(", ", part) for index, part in enumerate(parts))
    try:
        return _literal(ast.parse(python_text, mode="eval").body)
    except (SyntaxError, RecursionError, MemoryError, ValueError) as error:
        if isinstance(error, UnreadableField):
            raise
        raise UnreadableField(f"{text[:60]!r} is not a printed number, array or space") from error


def _box_bound(field: dict[str, Any], name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A Box bound from ``low``/``high`` (numpy's print) or, when that is missing or summarised, ``low_repr``/``high_repr``."""
    for key in (name, f"{name}_repr"):
        text = field.get(key)
        if isinstance(text, (int, float)) or (isinstance(text, str) and "..." not in text):
            return _bounds(read_literal(str(text)), shape, dtype)
    for key in (name, f"{name}_repr"):
        if isinstance(field.get(key), str):
            return _bounds(read_literal(field[key]), shape, dtype)
    raise UnreadableField(f"Box has no readable {name!r} bound")


def read_space(field: Any, what: str) -> spaces.Space:
    """
    Rebuild a space from the readable fields SB3 wrote beside its pickle.

    :param field: The ``data`` entry (``{":type:": "<class 'gym.spaces.box.Box'>", "dtype": ..., ...}``)
    :param what: Which space it is, for messages
    :return: The gymnasium space
    """
    if not isinstance(field, dict):
        raise UnreadableField(f"{what} is missing or not a recorded space")
    path = class_path(field.get(":type:"), f"{what}'s type")
    package, _, kind = path.rpartition(".")
    if package.split(".")[0] not in ("gym", "gymnasium") or ".spaces" not in package:
        raise UnreadableField(f"{what} has type {path}, not a gym or gymnasium space")
    try:
        if kind == "Box":
            dtype, shape = _dtype(field.get("dtype")), _shape(field.get("_shape", field.get("shape")))
            low, high = _box_bound(field, "low", shape, dtype), _box_bound(field, "high", shape, dtype)
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)  # type: ignore[arg-type]
        if kind == "Discrete":
            return _discrete(field.get("n"), field.get("start", 0))
        if kind == "Dict" and isinstance(field.get("spaces"), str):
            space = read_literal(field["spaces"])
            return space if isinstance(space, spaces.Dict) else _dict(space)
    except ValueError as error:  # UnreadableField, or gymnasium refusing the bounds
        raise UnreadableField(f"{what} ({kind}): {error}") from error
    raise UnreadableField(f"{what} of type {path} cannot be rebuilt from its readable fields (Box, Discrete, Dict can)")
