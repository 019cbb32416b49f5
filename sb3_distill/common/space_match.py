"""
Whether a teacher's spaces fit a student's: same kind, shape and dtype (``n`` for Discrete, sub-spaces for Dict and
Tuple) are required; other bounds of a Box only deserve a warning (a teacher published for ``LunarLander-v2`` serves
``LunarLander-v3``). Spaces are compared by kind, not by class, so that equal spaces from other builders match.
"""

from typing import Any

import numpy as np
from gymnasium import spaces

# The kinds of space, most specific first (a subclass of one of them is of its kind)
SPACE_KINDS: tuple[type[spaces.Space], ...] = (
    spaces.Discrete,
    spaces.Box,
    spaces.MultiDiscrete,
    spaces.MultiBinary,
    spaces.Dict,
    spaces.Tuple,
)


def space_kind(space: spaces.Space) -> str:
    """The kind of a space: the name of the gymnasium class it is an instance of (or of its own class)."""
    for kind in SPACE_KINDS:
        if isinstance(space, kind):
            return kind.__name__
    return type(space).__name__


def _sub_spaces(space: spaces.Space) -> dict[Any, spaces.Space]:
    """The sub-spaces of a Dict (by key) or Tuple (by index) space."""
    if isinstance(space, spaces.Dict):
        return dict(space.spaces)
    if isinstance(space, spaces.Tuple):
        return dict(enumerate(space.spaces))
    return {}


def _size_mismatch(teacher_space: spaces.Space, student_space: spaces.Space) -> str | None:
    """Why two spaces of one kind, shape and dtype hold other values (``n``, ``nvec``, an unknown kind's equality)."""
    if isinstance(teacher_space, spaces.Discrete) and isinstance(student_space, spaces.Discrete):
        if (teacher_space.n, teacher_space.start) != (student_space.n, student_space.start):
            return f"n {teacher_space.n} (start {teacher_space.start}) vs {student_space.n} (start {student_space.start})"
        return None
    if isinstance(teacher_space, spaces.MultiDiscrete) and isinstance(student_space, spaces.MultiDiscrete):
        same_nvec = np.array_equal(teacher_space.nvec, student_space.nvec)
        if not (same_nvec and np.array_equal(teacher_space.start, student_space.start)):
            return f"nvec {teacher_space.nvec} vs {student_space.nvec}"
        return None
    if not isinstance(teacher_space, SPACE_KINDS) and teacher_space != student_space:
        return "they are not equal"
    return None


def space_mismatch(teacher_space: spaces.Space, student_space: spaces.Space, where: str = "") -> str | None:
    """
    Why two spaces differ in kind, shape, dtype, ``n``/``nvec`` or sub-spaces; None if they agree (bounds aside).

    :param teacher_space: The teacher's space
    :param student_space: The student's space
    :param where: The sub-space's place in the enclosing Dict or Tuple space, for the message
    :return: The first difference, or None
    """
    kind, student_kind = space_kind(teacher_space), space_kind(student_space)
    if kind != student_kind:
        return f"{where}kind {kind} vs {student_kind}"
    if isinstance(teacher_space, (spaces.Dict, spaces.Tuple)):
        teacher_subs, student_subs = _sub_spaces(teacher_space), _sub_spaces(student_space)
        if list(teacher_subs) != list(student_subs) and set(teacher_subs) != set(student_subs):
            return f"{where}sub-spaces {list(teacher_subs)} vs {list(student_subs)}"
        for key, sub_space in teacher_subs.items():
            if reason := space_mismatch(sub_space, student_subs[key], f"{where}[{key!r}] "):
                return reason
        return None
    if teacher_space.shape != student_space.shape:
        return f"{where}shape {teacher_space.shape} vs {student_space.shape}"
    if teacher_space.dtype != student_space.dtype:
        return f"{where}dtype {teacher_space.dtype} vs {student_space.dtype}"
    reason = _size_mismatch(teacher_space, student_space)
    return f"{where}{reason}" if reason is not None else None


def bounds_differ(teacher_space: spaces.Space, student_space: spaces.Space) -> bool:
    """
    Whether two spaces that agree in kind, shape and dtype have Box bounds that differ (in a sub-space too).

    :param teacher_space: The teacher's space
    :param student_space: The student's space
    """
    if isinstance(teacher_space, spaces.Box) and isinstance(student_space, spaces.Box):
        same_low = np.array_equal(teacher_space.low, student_space.low)
        return not (same_low and np.array_equal(teacher_space.high, student_space.high))
    student_subs = _sub_spaces(student_space)
    return any(bounds_differ(sub_space, student_subs[key]) for key, sub_space in _sub_spaces(teacher_space).items())
