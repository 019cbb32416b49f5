from sb3_distill.dqn.distilled_dqn import DistilledDQN

__all__ = ["DistilledDQN"]
