from sb3_distill.td3.distilled_td3 import DistilledTD3

__all__ = ["DistilledTD3"]
