"""
The algorithms the project runs, by their RL Zoo names: the students (``distilled_dqn``, ``distilled_qrdqn``,
``distilled_ppo``, ``distilled_sac``, ``distilled_td3``) and the teachers the ``teacher`` command trains (``dqn``,
``qrdqn``, ``ppo``, ``a2c``, ``sac``, ``td3``, ``tqc``), and each model's acting network (what a deployed agent runs,
the part whose size a student is compared by).
"""

from typing import Any

from sb3_contrib import QRDQN, TQC
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import MlpExtractor
from torch import nn

from sb3_distill.dqn import DistilledDQN
from sb3_distill.ppo import DistilledPPO
from sb3_distill.qrdqn import DistilledQRDQN
from sb3_distill.sac import DistilledSAC
from sb3_distill.td3 import DistilledTD3

#: The students, by Zoo name
STUDENT_ALGOS: dict[str, type[BaseAlgorithm]] = {
    "distilled_dqn": DistilledDQN,
    "distilled_qrdqn": DistilledQRDQN,
    "distilled_ppo": DistilledPPO,
    "distilled_sac": DistilledSAC,
    "distilled_td3": DistilledTD3,
}
#: The teachers the ``teacher`` command trains, by Zoo name
TEACHER_ALGOS: dict[str, type[BaseAlgorithm]] = {
    "dqn": DQN,
    "qrdqn": QRDQN,
    "ppo": PPO,
    "a2c": A2C,
    "sac": SAC,
    "td3": TD3,
    "tqc": TQC,
}
#: The plain SB3 class that loads each student's zip (for deployment, and in messages)
PLAIN_CLASSES: dict[str, type[BaseAlgorithm]] = {
    name: next(base for base in student.__mro__[1:] if base in TEACHER_ALGOS.values())
    for name, student in STUDENT_ALGOS.items()
}


def is_student(algo: str) -> bool:
    """Whether ``algo`` (a Zoo name) is one of the project's students."""
    return algo in STUDENT_ALGOS


def check_algo(algo: Any, kind: str = "any") -> None:
    """
    Fail unless ``algo`` is a known Zoo name.

    :param algo: The name
    :param kind: ``"student"``, ``"teacher"`` or ``"any"``
    """
    known = {"student": STUDENT_ALGOS, "teacher": TEACHER_ALGOS, "any": {**TEACHER_ALGOS, **STUDENT_ALGOS}}[kind]
    if algo not in known:
        raise ValueError(
            f"algo={algo!r} is not a {'known' if kind == 'any' else kind} algorithm: choose one of {sorted(known)}"
        )


class _ParameterHolder(nn.Module):
    """A module holding loose parameters (a Gaussian policy's ``log_std``) so that they are counted with the rest."""

    def __init__(self, *parameters: nn.Parameter):
        super().__init__()
        self.held = nn.ParameterList(parameters)


def acting_network(model: BaseAlgorithm) -> nn.Module:
    """
    The part of a model that acts: DQN's ``q_net``, QR-DQN's ``quantile_net``, the actor of SAC/TD3/TQC, and the
    actor's path of an actor-critic policy (its features extractor, the actor's layers, ``action_net`` and ``log_std``;
    not the critic). A student's size is compared with its teacher's by this part.

    :param model: An SB3 or sb3-contrib model
    :return: A module whose parameters are the acting ones
    """
    policy: Any = model.policy
    for attribute in ("q_net", "quantile_net", "actor"):
        network = getattr(policy, attribute, None)
        if isinstance(network, nn.Module):
            return network
    if isinstance(policy, ActorCriticPolicy):
        mlp_extractor = policy.mlp_extractor
        actor_layers = mlp_extractor.policy_net if type(mlp_extractor) is MlpExtractor else mlp_extractor
        parts: list[nn.Module] = [policy.pi_features_extractor, actor_layers, policy.action_net]
        if isinstance(getattr(policy, "log_std", None), nn.Parameter):
            parts.append(_ParameterHolder(policy.log_std))
        return nn.ModuleList(parts)
    raise TypeError(f"No acting network known for a {type(model).__name__} with policy {type(policy).__name__}")
