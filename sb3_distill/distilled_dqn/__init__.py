from sb3_distill.distilled_dqn.distilled_dqn import DistilledDQN

__all__ = ["DistilledDQN"]
