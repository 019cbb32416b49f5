from sb3_distill.qrdqn.distilled_qrdqn import (
    DistilledQRDQN,
    quantile_distillation_loss,
    quantile_matching_loss,
    teacher_quantiles,
)

__all__ = ["DistilledQRDQN", "quantile_distillation_loss", "quantile_matching_loss", "teacher_quantiles"]
