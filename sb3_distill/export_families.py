"""
What an export writes for each family of SB3 student: the deployable network (observations -> the family's output,
SB3's preprocessing and post-processing inside) and what the parity check compares its output with.

- DQN and QR-DQN: per-action values (QR-DQN: the mean over quantiles), whose argmax is the greedy action.
- PPO and A2C with Discrete actions: the log-probabilities of the actions (log-softmax of the logits).
- SAC, TD3 (DDPG), and PPO and A2C with Box actions: the action ``predict(obs, deterministic=True)`` returns, in the
  env's bounds (a squashed actor's tanh output unscaled to them, a Gaussian's mean clipped to them).

A family is one :class:`ExportFamily`: the loader, the network and the reference; ``sb3_distill.export`` holds the
flow (check, write, time) that every family shares.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.sac.policies import Actor as SACActor

from sb3_distill.export_runtimes import Observations


class MeanQuantiles(th.nn.Module):
    """A QR-DQN's per-action values, as its ``predict`` ranks the actions: the mean over the quantiles."""

    def __init__(self, quantile_net: th.nn.Module):
        super().__init__()
        self.quantile_net = quantile_net

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        # quantile_net: (batch, n_quantiles, n_actions)
        return self.quantile_net(observations).mean(dim=1)


class ActorCriticActions(th.nn.Module):
    """
    An actor-critic policy's deterministic action parameters: the log-probabilities of a Discrete action space
    (log-softmax of the logits, as SB3's ``Categorical`` normalizes them), or a Box action space's Gaussian mean
    (through tanh when the policy squashes, gSDE's ``squash_output``). Only the actor's layers are held: the value
    network stays out of the exported file.

    :param policy: The actor-critic policy (one of SB3's, whose ``mlp_extractor`` is an ``MlpExtractor``)
    """

    def __init__(self, policy: ActorCriticPolicy):
        super().__init__()
        self.observation_space = policy.observation_space
        self.normalize_images = policy.normalize_images
        self.features_extractor = policy.pi_features_extractor
        self.policy_net = policy.mlp_extractor.policy_net
        self.action_net = policy.action_net
        self.discrete = isinstance(policy.action_space, spaces.Discrete)
        self.squashed = policy.squash_output

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        # ActorCriticPolicy.get_distribution's path: preprocess, the actor's features, its latent, the action net
        features = self.features_extractor(preprocess_obs(observations, self.observation_space, self.normalize_images))
        action_parameters = self.action_net(self.policy_net(features))
        if self.discrete:
            return th.log_softmax(action_parameters, dim=-1)
        return th.tanh(action_parameters) if self.squashed else action_parameters


class SquashedGaussianMean(th.nn.Module):
    """A SAC actor's deterministic action in [-1, 1]: tanh of its Gaussian's mean (the mode SB3 returns)."""

    def __init__(self, actor: SACActor):
        super().__init__()
        self.actor = actor

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        mean_actions, _, _ = self.actor.get_action_dist_params(observations)
        return th.tanh(mean_actions)


class EnvActions(th.nn.Module):
    """
    Actions in the env's bounds, as ``BasePolicy.predict`` post-processes them for a Box action space: a squashing
    policy's [-1, 1] output unscaled to ``[low, high]`` (``unscale_action``), any other clipped to it.

    :param actions: Observations -> the policy's actions before post-processing, ``(batch, action_dim)``
    :param policy: The policy (its action space and ``squash_output``)
    """

    low: th.Tensor
    high: th.Tensor

    def __init__(self, actions: th.nn.Module, policy: BasePolicy):
        super().__init__()
        if not isinstance(policy.action_space, spaces.Box):
            raise TypeError(f"EnvActions needs a Box action space, got {policy.action_space}")
        self.actions = actions
        self.shape = tuple(policy.action_space.shape)
        self.squashed = policy.squash_output
        # Not in the state dict: unbounded spaces have infinite bounds, which clipping handles and weights must not hold
        self.register_buffer("low", th.as_tensor(policy.action_space.low, dtype=th.float32), persistent=False)
        self.register_buffer("high", th.as_tensor(policy.action_space.high, dtype=th.float32), persistent=False)

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        actions = self.actions(observations).reshape(-1, *self.shape)
        if self.squashed:
            return self.low + 0.5 * (actions + 1.0) * (self.high - self.low)
        # minimum/maximum rather than clamp: ONNX's Clip takes scalar bounds only
        return th.maximum(th.minimum(actions, self.high), self.low)


def _torch_output(network: Callable[[PyTorchObs], th.Tensor], model: BaseAlgorithm, observations: Observations) -> np.ndarray:
    """A torch network of the model on a batch of observations, preprocessed as SB3's ``predict`` does."""
    with th.no_grad():
        return network(model.policy.obs_to_tensor(observations)[0]).cpu().numpy()


def _predicted_actions(model: BaseAlgorithm, observations: Observations) -> np.ndarray:
    """SB3's ``predict(obs, deterministic=True)`` on a batch, ``(batch, *action_shape)``."""
    actions, _ = model.predict(observations, deterministic=True)
    return np.asarray(actions).reshape(-1, *(model.action_space.shape or ()))


@dataclass(frozen=True)
class ExportFamily:
    """
    How one family of SB3 models is exported and checked: its network, and what the parity check compares.

    :param algorithm: The SB3 class whose ``load`` reads the zip, and whose ``predict`` the export must match
    :param network_name: The model's torch network, for messages and the latency table (``q_net``, ``actor``, ...)
    :param output: The exported output's name (``q_values``, ``log_probs``, ``actions``)
    :param values: For outputs that are per-action values, what they are (``Q``, ``log-prob``): their argmax must be
        ``predict``'s greedy action; None: the output is the action itself
    :param network: The model -> its torch network from observations (a tensor, or a dict of them) to the output
    :param reference: (model, a batch of observations) -> what the exported output must equal: the values of SB3's
        own torch network, or ``predict``'s actions
    :param zoo_algo: The Zoo algorithm whose config entry builds a registered env for the check (as it builds the
        env the student trained on: wrappers, frame stacking)
    """

    algorithm: type[BaseAlgorithm]
    network_name: str
    output: str
    values: str | None
    network: Callable[[Any], th.nn.Module]
    reference: Callable[[Any, Observations], np.ndarray]
    zoo_algo: str

    @property
    def name(self) -> str:
        """The algorithm's name, as SB3 spells it."""
        return self.algorithm.__name__

    @property
    def label(self) -> str:
        """What the output holds, in messages (``|Q difference|``, ``|action difference|``)."""
        return self.values or "action"


def _q_values(model: DQN, observations: Observations) -> np.ndarray:
    return _torch_output(model.q_net, model, observations)


def _mean_quantiles(model: QRDQN, observations: Observations) -> np.ndarray:
    return _torch_output(MeanQuantiles(model.quantile_net), model, observations)


def _log_probs(model: PPO | A2C, observations: Observations) -> np.ndarray:
    def log_probs(obs: PyTorchObs) -> th.Tensor:
        # SB3's CategoricalDistribution wraps torch's Categorical, which holds the logits normalized: log-probabilities
        return cast(th.distributions.Categorical, model.policy.get_distribution(obs).distribution).logits

    return _torch_output(log_probs, model, observations)


def _actor_critic_families(algorithm: type[PPO | A2C]) -> dict[tuple[str, type[spaces.Space]], ExportFamily]:
    """An actor-critic's two families: log-probabilities of Discrete actions, the clipped mean of Box actions."""
    zoo_algo = algorithm.__name__.lower()
    return {
        (algorithm.__name__, spaces.Discrete): ExportFamily(
            algorithm,
            network_name="policy",
            output="log_probs",
            values="log-prob",
            network=lambda model: ActorCriticActions(model.policy),
            reference=_log_probs,
            zoo_algo=zoo_algo,
        ),
        (algorithm.__name__, spaces.Box): _env_actions(
            algorithm, "policy", lambda model: ActorCriticActions(model.policy), zoo_algo
        ),
    }


def _env_actions(
    algorithm: type[BaseAlgorithm], network_name: str, actions: Callable[[Any], th.nn.Module], zoo_algo: str
) -> ExportFamily:
    """A Box action space's family: the output is the action ``predict`` returns, and is checked against it."""
    return ExportFamily(
        algorithm,
        network_name=network_name,
        output="actions",
        values=None,
        network=lambda model: EnvActions(actions(model), model.policy),
        reference=_predicted_actions,
        zoo_algo=zoo_algo,
    )


# (algorithm, action space) -> family; an algorithm missing here, or with another action space, is refused
FAMILIES: dict[tuple[str, type[spaces.Space]], ExportFamily] = {
    # The DQN export builds its check's env from the DQN students' config, as it did before the other families
    ("DQN", spaces.Discrete): ExportFamily(
        DQN,
        network_name="q_net",
        output="q_values",
        values="Q",
        network=lambda model: model.q_net,
        reference=_q_values,
        zoo_algo="distilled_dqn",
    ),
    ("QRDQN", spaces.Discrete): ExportFamily(
        QRDQN,
        network_name="quantile_net",
        output="q_values",
        values="Q",
        network=lambda model: MeanQuantiles(model.quantile_net),
        reference=_mean_quantiles,
        zoo_algo="qrdqn",
    ),
    **_actor_critic_families(PPO),
    **_actor_critic_families(A2C),
    ("SAC", spaces.Box): _env_actions(SAC, "actor", lambda model: SquashedGaussianMean(model.actor), "sac"),
    # DDPG is TD3 with other settings (and saves TD3's policy): one deterministic actor, its tanh output unscaled
    ("TD3", spaces.Box): _env_actions(TD3, "actor", lambda model: model.actor, "td3"),
    ("DDPG", spaces.Box): _env_actions(DDPG, "actor", lambda model: model.actor, "td3"),
}
# What the refusal of anything else says
SUPPORTED = "DQN, QRDQN (Discrete actions), PPO, A2C (Discrete or Box actions), SAC, TD3, DDPG (Box actions)"
