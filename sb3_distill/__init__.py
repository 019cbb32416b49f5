import os

from sb3_distill.config import shipped_teacher, shipped_teachers
from sb3_distill.dqn import DistilledDQN
from sb3_distill.common.losses import distillation_loss, teacher_agreement
from sb3_distill.common.teacher import Teacher, load_teacher

# Read version from file
version_file = os.path.join(os.path.dirname(__file__), "version.txt")
with open(version_file) as file_handler:
    __version__ = file_handler.read().strip()

__all__ = [
    "DistilledDQN",
    "Teacher",
    "__version__",
    "distillation_loss",
    "load_teacher",
    "shipped_teacher",
    "shipped_teachers",
    "teacher_agreement",
]
