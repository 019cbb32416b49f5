"""
Which teacher can teach which student, and with which distillation term.

A teacher's *kind* says what it gives (:class:`sb3_distill.common.teacher.Teacher`): per-action values for a
Discrete action space (``q_values`` of DQN, ``quantiles`` of QR-DQN, ``logits`` of PPO/A2C/TRPO/MaskablePPO), or an
action distribution for a Box action space (``gaussian`` of PPO/A2C/TRPO, ``squashed_gaussian`` of SAC/TQC,
``deterministic`` of TD3/DDPG). A student compares what it has of the same kind:

- a KL term (``"kl"``: forward KL(teacher || student); ``"reverse_kl"``; ``"ppd"``: PPD's ratio-clipped KL) needs two
  distributions over the same support: two categoricals (softmaxed values), two Gaussians over env actions (PPO from
  PPO/A2C), or two pre-squash Gaussians (SAC from SAC/TQC, the same tanh on both sides);
- ``"mse"`` compares mean actions in the env's scaled [-1, 1] space: the only term where either policy is
  deterministic, or where one squashes its Gaussian and the other does not (no common support for a KL);
- DQN and QR-DQN students also take ``"mse"`` on values and ``"nll"`` on the teacher's greedy action.

``distill_loss=None`` picks the first term of the pair's row in :data:`TERMS`; a term the pair has not is refused
with one error naming the teacher, the two families and the terms that would work. Nothing falls back silently.
"""

from typing import Any

from gymnasium import spaces

#: What the teachers of each kind are
DISCRETE_KINDS = ("q_values", "quantiles", "logits")
CONTINUOUS_KINDS = ("gaussian", "squashed_gaussian", "deterministic")
KIND_FAMILIES = {
    "q_values": "DQN",
    "quantiles": "QR-DQN",
    "logits": "PPO/A2C/TRPO/MaskablePPO (Discrete actions)",
    "gaussian": "PPO/A2C/TRPO (Box actions, a Gaussian policy)",
    "squashed_gaussian": "SAC/TQC (a tanh-squashed Gaussian policy)",
    "deterministic": "TD3/DDPG (a deterministic policy)",
}
_VALUE_TERMS = ("kl", "mse", "nll")
_CATEGORICAL_TERMS = ("kl", "reverse_kl", "ppd")

#: The terms each student takes from each teacher kind; the first is the default. A kind not listed is refused
TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    "DQN": dict.fromkeys(DISCRETE_KINDS, _VALUE_TERMS),
    "QRDQN": dict.fromkeys(DISCRETE_KINDS, _VALUE_TERMS),
    "PPO": {
        **dict.fromkeys(DISCRETE_KINDS, _CATEGORICAL_TERMS),
        "gaussian": ("kl", "reverse_kl", "ppd", "mse"),
        "squashed_gaussian": ("mse",),
        "deterministic": ("mse",),
    },
    "SAC": {"squashed_gaussian": ("kl", "reverse_kl", "mse"), "gaussian": ("mse",), "deterministic": ("mse",)},
    "TD3": dict.fromkeys(CONTINUOUS_KINDS, ("mse",)),
}
#: Why a term is missing from a pair, for the message
_WHY_NO_KL = {
    "deterministic": "a deterministic policy has no distribution to take a KL over",
    "squashed_gaussian": "a squashed and an unsquashed Gaussian have no common support for a KL",
    "gaussian": "a squashed and an unsquashed Gaussian have no common support for a KL",
}


def terms_for(student_algorithm: str, teacher_kind: str) -> tuple[str, ...]:
    """
    The distillation terms a student takes from a teacher of ``teacher_kind`` (empty: the pair is refused).

    :param student_algorithm: The student's algorithm, a key of :data:`TERMS`
    :param teacher_kind: The teacher's kind
    """
    return TERMS[student_algorithm].get(teacher_kind, ())


def _student_term_names(student_algorithm: str) -> set[str]:
    return {term for terms in TERMS[student_algorithm].values() for term in terms}


def check_distill_loss_name(student_algorithm: str, distill_loss: Any) -> None:
    """
    Fail unless ``distill_loss`` is None or a term the student takes from some teacher (checked at construction,
    before the teacher is known).

    :param student_algorithm: The student's algorithm, a key of :data:`TERMS`
    :param distill_loss: The constructor's ``distill_loss``
    """
    names = _student_term_names(student_algorithm)
    if distill_loss is not None and (not isinstance(distill_loss, str) or distill_loss not in names):
        why = (
            f": a {student_algorithm} student's policy is deterministic, it has no distribution to take a KL over"
            if student_algorithm == "TD3" and distill_loss in _CATEGORICAL_TERMS
            else ""
        )
        raise ValueError(
            f"distill_loss={distill_loss!r} is not a distillation term of a {student_algorithm} student{why}; choose one "
            f"of {sorted(names)}, or None for the pair's default"
        )


def resolve_distill_loss(student_algorithm: str, teacher: Any, distill_loss: str | None) -> str:
    """
    The term a student uses with a teacher: ``distill_loss``, or the pair's default when it is None.

    :param student_algorithm: The student's algorithm, a key of :data:`TERMS`
    :param teacher: The prepared teacher (its ``kind``, ``algorithm`` and ``source``)
    :param distill_loss: The student's ``distill_loss``
    :return: The term's name
    """
    check_teacher_pair(student_algorithm, teacher, distill_loss)
    return distill_loss if distill_loss is not None else terms_for(student_algorithm, teacher.kind)[0]


def check_teacher_pair(
    student_algorithm: str, teacher: Any, distill_loss: str | None, action_space: spaces.Space | None = None
) -> None:
    """
    Fail unless the teacher's kind can teach a student of ``student_algorithm`` with ``distill_loss``.

    :param student_algorithm: The student's algorithm, a key of :data:`TERMS`
    :param teacher: The prepared teacher (its ``kind``, ``algorithm`` and ``source``)
    :param distill_loss: The student's ``distill_loss`` (None: the pair's default)
    :param action_space: The student's action space, for the message
    """
    check_distill_loss_name(student_algorithm, distill_loss)
    terms = terms_for(student_algorithm, teacher.kind)
    where = f" on action space {action_space}" if action_space is not None else ""
    family = KIND_FAMILIES.get(teacher.kind, teacher.kind)
    if not terms:
        accepted = sorted({KIND_FAMILIES[kind] for kind in TERMS[student_algorithm]})
        raise ValueError(
            f"Teacher {teacher.source} is a {teacher.algorithm} teacher ({family}), which cannot teach a "
            f"{student_algorithm} student{where}: a {student_algorithm} student learns from {'; '.join(accepted)}"
        )
    if distill_loss is not None and distill_loss not in terms:
        why = _WHY_NO_KL.get(teacher.kind, "") if distill_loss in _CATEGORICAL_TERMS else ""
        raise ValueError(
            f"distill_loss={distill_loss!r} does not apply to a {teacher.algorithm} teacher ({family}, {teacher.source}) "
            f"and a {student_algorithm} student{f': {why}' if why else ''}; this pair takes {list(terms)} "
            f"(distill_loss=None picks {terms[0]!r})"
        )


def compatibility_rows() -> list[tuple[str, str, str]]:
    """
    The compatibility table of the documentation: (student, teacher family, the terms or "refused").

    :return: One row per student and teacher kind
    """
    kinds = DISCRETE_KINDS + CONTINUOUS_KINDS
    return [
        (student, KIND_FAMILIES[kind], ", ".join(terms_for(student, kind)) or "refused") for student in TERMS for kind in kinds
    ]


def compatibility_table_markdown() -> str:
    """The compatibility table as the documentation shows it (one row per teacher family, one column per student)."""
    rows = compatibility_rows()
    students = list(TERMS)
    families = list(dict.fromkeys(family for _, family, _ in rows))
    terms = {(student, family): text for student, family, text in rows}
    lines = [f"| teacher \\ student | {' | '.join(students)} |", "|---|" + "---|" * len(students)]
    lines += [f"| {family} | {' | '.join(terms[student, family] for student in students)} |" for family in families]
    return "\n".join(lines)
