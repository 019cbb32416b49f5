"""
The students' checks that fail early, saying what to do: a teacher wherever one is needed, the raw observations for the
teacher, and a finite loss before any weight is updated.
"""

import math

from sb3_distill.common.alpha import AlphaLike
from sb3_distill.common.teacher import Teacher, TeacherLike


def is_plain_algorithm(alpha: AlphaLike) -> bool:
    """Whether alpha is the constant 0, so that no teacher is needed (the student trains as its plain algorithm)."""
    return not callable(alpha) and alpha == 0


def check_teacher_given(
    teacher: TeacherLike | None, alpha: AlphaLike, offline_transitions: int, algorithm: str = "DQN"
) -> None:
    """
    Fail, when a model is constructed, unless it has a teacher or needs none.

    :param teacher: The constructor's ``teacher``
    :param alpha: Its ``alpha``
    :param offline_transitions: Its ``offline_transitions``
    :param algorithm: The student's SB3 algorithm, for the message
    """
    if teacher is None and not is_plain_algorithm(alpha):
        raise ValueError(
            f"alpha={alpha!r} needs a teacher: pass teacher='path/to/teacher.zip' (or a loaded SB3 model), "
            f"or alpha=0.0 for plain {algorithm}"
        )
    if teacher is None and offline_transitions > 0:
        raise ValueError(f"offline_transitions={offline_transitions!r} needs a teacher to act: pass teacher=...")


def check_teacher_ready(teacher: Teacher | None, alpha: AlphaLike, student_class: str = "DistilledDQN") -> None:
    """
    Fail, before training, unless a model that needs a teacher has one (teachers are never saved with the student).

    :param teacher: The model's teacher
    :param alpha: Its ``alpha``
    :param student_class: The student's class name, for the message
    """
    if teacher is None and not is_plain_algorithm(alpha):
        raise ValueError(
            f"This {student_class} has alpha={alpha!r} but no teacher (teachers are never saved with the student): "
            f"load it with {student_class}.load(path, env=env, teacher='teacher.zip') or call "
            "model.set_teacher('teacher.zip') before learn()"
        )


def check_finite_loss(
    loss: float,
    own_loss: float,
    distill_loss: float | None,
    alpha: float,
    update: int,
    num_timesteps: int,
    own_loss_name: str = "td_loss",
    network: str | None = None,
) -> None:
    """
    Fail, before any weight is updated, if the loss of a gradient step is NaN or inf.

    :param loss: The value of the loss about to be minimised
    :param own_loss: Its part from the student's algorithm (DQN's TD loss, QR-DQN's quantile loss, SAC's actor loss, ...)
    :param distill_loss: Its distillation term's (None without a teacher)
    :param alpha: The weight of the distillation term
    :param update: The number of the update (gradient step) the loss is for, counted from 1 over the model's life
    :param num_timesteps: The model's ``num_timesteps``
    :param own_loss_name: The name of ``own_loss`` in the message
    :param network: The network the loss updates (``"actor"``, ``"critic"``, ``"policy"``), None for the whole student
    """
    if math.isfinite(loss):
        return
    distill_text = f"{distill_loss}" if distill_loss is not None else "none (no teacher)"
    which = "" if network is None else f"{network} "
    raise ValueError(
        f"Non-finite {which}loss at update {update} (num_timesteps={num_timesteps}): "
        f"loss={loss}, {own_loss_name}={own_loss}, distill_loss={distill_text}, alpha={alpha}; "
        f"the {network or 'student'} was not updated. Check the rewards (inf or NaN?), the teacher, learning_rate and "
        "max_grad_norm"
    )
