"""
The networks that give a teacher's values, chosen by the class of the teacher's policy, and the frozen observation
normalization of a teacher trained behind ``VecNormalize``.

Discrete actions, per-action values ``(batch, n_actions)``:

- DQN policies: the Q-network (kind ``"q_values"``).
- QR-DQN policies: the mean over the quantile network's quantiles (kind ``"quantiles"``).
- Actor-critic policies with a Discrete action space (PPO, A2C, TRPO, MaskablePPO without masks): the log-probabilities
  of the policy's action distribution, ``policy.get_distribution(obs).distribution.logits`` (kind ``"logits"``).
  At temperature 1 the student then distills the teacher's own policy ``softmax(logits)``.

Box actions, the action distribution flattened as ``cat([mean, log_std])``, ``(batch, 2 * action_dim)``
(:class:`ActionDistribution` splits it):

- Actor-critic policies (PPO, A2C, TRPO): the diagonal Gaussian's mean in the env's action units and its state-independent
  ``log_std`` (kind ``"gaussian"``).
- SAC and TQC policies: the actor's pre-tanh Gaussian, as ``Actor.get_action_dist_params`` gives it (log_std clamped
  as SB3 clamps it; kind ``"squashed_gaussian"``).
- TD3 and DDPG policies: the actor's action in the scaled [-1, 1] space, and zeros for the log_std (kind
  ``"deterministic"``).
"""

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import MlpExtractor
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

#: What a teacher's values are, by kind
TEACHER_KINDS = {
    "q_values": "Q-values",
    "quantiles": "mean over quantiles",
    "logits": "action logits",
    "gaussian": "Gaussian action distribution",
    "squashed_gaussian": "pre-tanh Gaussian action distribution",
    "deterministic": "actions",
}
#: The kinds of the teachers with Box actions
CONTINUOUS_KINDS = frozenset({"gaussian", "squashed_gaussian", "deterministic"})


class ActionDistribution(NamedTuple):
    """
    A continuous teacher's action distribution on a batch.

    :param mean: ``(batch, action_dim)``: a Gaussian's mean in the env's action units (``"gaussian"``), the pre-tanh
        mean (``"squashed_gaussian"``), or the action in the scaled [-1, 1] space (``"deterministic"``)
    :param log_std: ``(batch, action_dim)``, or None for a deterministic teacher
    """

    mean: th.Tensor
    log_std: th.Tensor | None


def value_width(action_space: spaces.Space) -> int:
    """
    The width of a teacher's values for an action space, known before the teacher: ``n`` for Discrete, twice the
    action dimension for Box (mean and log_std).

    :param action_space: The student's (and teacher's) action space
    """
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.Box):
        return 2 * int(np.prod(action_space.shape))
    raise TypeError(f"A teacher's values are defined for Discrete and Box action spaces, not {action_space}")


class _ActorLatent(nn.Module):
    """An actor-critic policy's acting path up to the action head: features, then the actor's layers."""

    def __init__(self, policy: BasePolicy):
        super().__init__()
        self.observation_space = policy.observation_space
        self.normalize_images = policy.normalize_images
        # The actor's features extractor (the shared one when the policy shares it)
        self.features_extractor: nn.Module = policy.pi_features_extractor  # type: ignore[assignment]
        mlp_extractor: Any = policy.mlp_extractor
        # SB3's MlpExtractor acts through its policy_net alone: keep only that (the critic's layers are not the teacher's
        # to count); a custom extractor is kept whole and used through its forward_actor
        self.actor_latent: nn.Module = (
            mlp_extractor.policy_net if type(mlp_extractor) is MlpExtractor else _ForwardActor(mlp_extractor)
        )

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        preprocessed = preprocess_obs(observations, self.observation_space, normalize_images=self.normalize_images)
        return self.actor_latent(self.features_extractor(preprocessed))


class PolicyGaussian(nn.Module):
    """
    The diagonal Gaussian of an actor-critic policy with Box actions, ``cat([mean, log_std])``: SB3's
    ``DiagGaussianDistribution`` with mean ``action_net(latent_pi)`` and the policy's state-independent ``log_std``.

    :param policy: The teacher's ``ActorCriticPolicy``
    """

    def __init__(self, policy: BasePolicy):
        super().__init__()
        self.latent = _ActorLatent(policy)
        self.action_net: nn.Module = policy.action_net  # type: ignore[assignment]
        self.log_std: nn.Parameter = policy.log_std  # type: ignore[assignment]

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        mean = self.action_net(self.latent(observations))
        return th.cat((mean, self.log_std.expand_as(mean)), dim=1)


class SquashedGaussian(nn.Module):
    """
    A SAC or TQC actor's pre-tanh Gaussian, ``cat([mean, log_std])`` as ``Actor.get_action_dist_params`` gives them.

    :param actor: The teacher's actor
    """

    def __init__(self, actor: nn.Module):
        super().__init__()
        self.actor = actor

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        mean, log_std, _ = self.actor.get_action_dist_params(observations)  # type: ignore[operator]
        return th.cat((mean, log_std), dim=1)


class DeterministicActor(nn.Module):
    """
    A TD3 or DDPG actor's action in the scaled [-1, 1] space, ``cat([action, 0])`` (no spread: zeros in the log_std's
    place keep one width for every continuous teacher).

    :param actor: The teacher's actor
    """

    def __init__(self, actor: nn.Module):
        super().__init__()
        self.actor = actor

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        actions = self.actor(observations)
        return th.cat((actions, th.zeros_like(actions)), dim=1)


class QRDQNValues(nn.Module):
    """
    Q-values of a QR-DQN quantile network: the mean over its quantiles.

    :param quantile_net: The teacher's ``QuantileNetwork``
    """

    def __init__(self, quantile_net: nn.Module):
        super().__init__()
        self.quantile_net = quantile_net

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        # (batch, n_quantiles, n_actions) -> (batch, n_actions)
        return self.quantile_net(observations).mean(dim=1)


class _ForwardActor(nn.Module):
    """The actor's branch of a custom ``mlp_extractor``, as a module."""

    def __init__(self, mlp_extractor: nn.Module):
        super().__init__()
        self.mlp_extractor = mlp_extractor

    def forward(self, features: th.Tensor) -> th.Tensor:
        return self.mlp_extractor.forward_actor(features)  # type: ignore[operator]


class PolicyLogits(nn.Module):
    """
    Action logits of an actor-critic policy with a Discrete action space: the acting path of
    ``policy.get_distribution(obs)`` (features, the actor's branch of ``mlp_extractor``, ``action_net``), normalized as
    ``torch.distributions.Categorical`` normalizes them (log-probabilities), without building the distribution
    (which would reject non-finite logits with a message that names no teacher).

    :param policy: The teacher's ``ActorCriticPolicy`` or ``MaskableActorCriticPolicy``
    """

    def __init__(self, policy: BasePolicy):
        super().__init__()
        self.latent = _ActorLatent(policy)
        self.action_net: nn.Module = policy.action_net  # type: ignore[assignment]

    def forward(self, observations: PyTorchObs) -> th.Tensor:
        latent_pi = self.latent(observations)
        # Categorical(logits=x).logits == x - logsumexp(x): the same softmax at any temperature
        return th.log_softmax(self.action_net(latent_pi), dim=-1)


def values_network(policy: BasePolicy) -> tuple[str, nn.Module]:
    """
    The network of a teacher's policy that maps observations to its values, and their kind.

    :param policy: The teacher's policy
    :return: (kind, a module returning ``(batch_size, n_actions)`` for Discrete actions, ``(batch_size, 2 * action_dim)``
        for Box actions)
    """
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
    from sb3_contrib.qrdqn.policies import QRDQNPolicy
    from sb3_contrib.tqc.policies import TQCPolicy
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    # Actor-critic policies hold the flag, SAC and TQC their actor
    if getattr(policy, "use_sde", False) or getattr(getattr(policy, "actor", None), "use_sde", False):
        raise TypeError(
            f"A teacher with gSDE exploration ({type(policy).__name__} with use_sde=True) is not supported: its action "
            "distribution's spread depends on noise parameters resampled during training, not only on the observation"
        )
    if isinstance(policy, (SACPolicy, TQCPolicy)):
        return "squashed_gaussian", SquashedGaussian(policy.actor)
    if isinstance(policy, TD3Policy):
        return "deterministic", DeterministicActor(policy.actor)
    if isinstance(policy, ActorCriticPolicy) and isinstance(policy.action_space, spaces.Box):
        if policy.squash_output:
            raise TypeError(f"A teacher with {type(policy).__name__}(squash_output=True) is not supported")
        return "gaussian", PolicyGaussian(policy)

    if isinstance(policy, DQNPolicy):
        return "q_values", policy.q_net
    if isinstance(policy, QRDQNPolicy):
        return "quantiles", QRDQNValues(policy.quantile_net)
    if isinstance(policy, RecurrentActorCriticPolicy):
        raise TypeError(
            f"A teacher with the recurrent policy {type(policy).__name__} (RecurrentPPO) is not supported: its values "
            "depend on the LSTM state of each episode, which a replay sample does not have"
        )
    if isinstance(policy, (ActorCriticPolicy, MaskableActorCriticPolicy)):
        return "logits", PolicyLogits(policy)
    raise TypeError(
        f"A teacher with policy {type(policy).__module__}.{type(policy).__name__} is not supported: supported teachers "
        "are DQN, QRDQN and actor-critic agents (PPO, A2C, TRPO, MaskablePPO) with a Discrete action space, and SAC, "
        "TQC, TD3, DDPG and actor-critic agents (PPO, A2C, TRPO) with a Box action space"
    )


def critic_network(policy: BasePolicy) -> nn.Module | None:
    """
    The critic of a SAC, TQC, TD3 or DDPG teacher (``critic(obs, actions)``), or None for other teachers.

    :param policy: The teacher's policy
    """
    from sb3_contrib.tqc.policies import TQCPolicy
    from stable_baselines3.sac.policies import SACPolicy
    from stable_baselines3.td3.policies import TD3Policy

    if isinstance(policy, (SACPolicy, TQCPolicy, TD3Policy)):
        return policy.critic
    return None


def critic_estimate(critic: nn.Module, observations: PyTorchObs, actions: th.Tensor) -> th.Tensor:
    """
    A teacher critic's value of (observation, action) pairs, as its algorithm acts on it: the minimum over SAC's and
    TD3's critics, the mean over all of TQC's quantiles.

    :param critic: The teacher's critic
    :param observations: The observations
    :param actions: The actions in the scaled [-1, 1] space, as SB3 stores them in its replay buffer
    :return: Shape ``(batch_size, 1)``
    """
    values = critic(observations, actions)
    if isinstance(values, th.Tensor):  # TQC: (batch, n_critics, n_quantiles)
        return values.reshape(len(values), -1).mean(dim=1, keepdim=True)
    return th.cat(values, dim=1).min(dim=1, keepdim=True).values


class ObservationNormalizer:
    """
    ``VecNormalize``'s observation normalization with frozen statistics:
    ``clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)``, on tensors.

    :param means: Mean of each normalized observation (key ``None`` for a non-Dict observation space)
    :param variances: Variance of each normalized observation, with the same keys
    :param clip_obs: Bound of the normalized observations
    :param epsilon: Added to the variance
    """

    def __init__(
        self,
        means: dict[str | None, th.Tensor],
        variances: dict[str | None, th.Tensor],
        clip_obs: float,
        epsilon: float,
    ):
        self.clip_obs = float(clip_obs)
        self.epsilon = float(epsilon)
        self.means = dict(means)
        # Computed once: the statistics never change
        self.scales = {key: th.sqrt(variance + self.epsilon) for key, variance in variances.items()}

    @classmethod
    def from_vec_normalize(cls, vec_normalize: Any) -> "ObservationNormalizer | None":
        """
        The observation normalization of a (loaded) ``VecNormalize``, or None if it does not normalize observations.

        :param vec_normalize: The ``VecNormalize`` (its ``obs_rms``, ``clip_obs``, ``epsilon``, ``norm_obs_keys``)
        """
        if not vec_normalize.norm_obs:
            return None
        obs_rms = vec_normalize.obs_rms
        if isinstance(obs_rms, dict):
            keys = list(vec_normalize.norm_obs_keys if vec_normalize.norm_obs_keys is not None else obs_rms)
            statistics = {key: obs_rms[key] for key in keys}
        else:
            statistics = {None: obs_rms}

        def as_tensor(array: np.ndarray) -> th.Tensor:
            return th.as_tensor(np.asarray(array), dtype=th.float32)

        return cls(
            means={key: as_tensor(rms.mean) for key, rms in statistics.items()},
            variances={key: as_tensor(rms.var) for key, rms in statistics.items()},
            clip_obs=vec_normalize.clip_obs,
            epsilon=vec_normalize.epsilon,
        )

    def to(self, device: th.device | str) -> "ObservationNormalizer":
        """
        Move the statistics to ``device``.

        :param device: Target device
        :return: self
        """
        self.means = {key: mean.to(device) for key, mean in self.means.items()}
        self.scales = {key: scale.to(device) for key, scale in self.scales.items()}
        return self

    def _normalize(self, observations: th.Tensor, key: str | None) -> th.Tensor:
        normalized = (observations.float() - self.means[key]) / self.scales[key]
        return th.clamp(normalized, -self.clip_obs, self.clip_obs)

    def __call__(self, observations: PyTorchObs) -> PyTorchObs:
        """
        Normalize a batch of observations (only the normalized keys of a Dict observation).

        :param observations: Tensors on the statistics' device
        :return: The normalized observations
        """
        if isinstance(observations, dict):
            return {key: self._normalize(value, key) if key in self.means else value for key, value in observations.items()}
        return self._normalize(observations, None)

    def check_space(self, observation_space: spaces.Space) -> None:
        """
        Fail unless the statistics fit ``observation_space`` (the teacher's).

        :param observation_space: The space of the observations to normalize
        """
        for key, mean in self.means.items():
            if key is None:
                space = observation_space
            elif isinstance(observation_space, spaces.Dict) and key in observation_space.spaces:
                space = observation_space.spaces[key]
            else:
                raise ValueError(f"the normalization statistics are for the key {key!r}, not in {observation_space}")
            if space.shape is None or tuple(mean.shape) != tuple(space.shape):
                raise ValueError(f"the normalization statistics have shape {tuple(mean.shape)}, the observations {space}")
