import os

from sb3_distill.common.losses import distillation_loss, teacher_agreement
from sb3_distill.common.teacher import ActionDistribution, Teacher, load_teacher
from sb3_distill.config import shipped_teacher, shipped_teachers
from sb3_distill.dqn import DistilledDQN
from sb3_distill.ppo import DistilledPPO
from sb3_distill.qrdqn import DistilledQRDQN
from sb3_distill.sac import DistilledSAC
from sb3_distill.td3 import DistilledTD3

# Read version from file
version_file = os.path.join(os.path.dirname(__file__), "version.txt")
with open(version_file) as file_handler:
    __version__ = file_handler.read().strip()

__all__ = [
    "ActionDistribution",
    "DistilledDQN",
    "DistilledPPO",
    "DistilledQRDQN",
    "DistilledSAC",
    "DistilledTD3",
    "Teacher",
    "__version__",
    "distillation_loss",
    "load_teacher",
    "shipped_teacher",
    "shipped_teachers",
    "teacher_agreement",
]
