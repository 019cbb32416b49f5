from sb3_distill.ppo.distilled_ppo import DistilledPPO

__all__ = ["DistilledPPO"]
