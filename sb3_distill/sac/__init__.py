from sb3_distill.sac.distilled_sac import DistilledSAC

__all__ = ["DistilledSAC"]
