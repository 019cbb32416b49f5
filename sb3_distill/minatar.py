"""
MinAtar (Young & Tian 2019): its DQN network as an SB3 features extractor, and the registration of its envs.

MinAtar's games (``MinAtar/Breakout-v1``, ``MinAtar/SpaceInvaders-v1``, ...) observe a 10x10 grid with one boolean
channel per kind of object, channel-last: ``Box(0, 1, (10, 10, C), bool)``. SB3 does not treat that space as an image
(``is_image_space`` needs ``uint8``), so it neither divides the observations by 255 nor transposes them; the extractor
casts them to float and puts the channels first itself.

The envs are registered by ``minatar.gym.register_envs()``, which importing ``minatar.gym`` does not call. Importing
this module registers them when the ``minatar`` package is installed, so the RL Zoo's ``--gym-packages
sb3_distill.minatar`` makes them known; ``sb3_distill.recipe.check_env_id`` registers them for any ``MinAtar/`` id.

Paper: https://arxiv.org/abs/1903.03176
"""

import gymnasium as gym
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

__all__ = ["ENV_PREFIX", "MinAtarCNN", "MinAtarMissingError", "register_minatar_envs"]

ENV_PREFIX = "MinAtar/"
INSTALL_HINT = 'install the minatar extra: pip install "sb3_distill[minatar]" (or pip install -e ".[minatar]")'


class MinAtarMissingError(ImportError, ValueError):
    """A MinAtar env was asked for but the ``minatar`` package is not installed; the message says what to install."""


class MinAtarCNN(BaseFeaturesExtractor):
    """
    The network of MinAtar's DQN baseline: one 3x3 convolution (stride 1, no padding), ReLU, flatten, a linear layer,
    ReLU. With the defaults (16 channels, 128 features) it is the paper's; smaller values make smaller students.

    Paper: https://arxiv.org/abs/1903.03176

    :param observation_space: A channel-last ``Box`` of shape (height, width, channels), MinAtar's (10, 10, C)
    :param features_dim: Units of the linear layer (the paper: 128)
    :param n_channels: Channels of the convolution (the paper: 16)
    """

    def __init__(self, observation_space: spaces.Space, features_dim: int = 128, n_channels: int = 16) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 3:
            raise ValueError(
                f"MinAtarCNN needs a channel-last Box observation space of shape (height, width, channels), "
                f"got {observation_space}"
            )
        for name, value in (("features_dim", features_dim), ("n_channels", n_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MinAtarCNN: {name}={value!r}, expected a positive integer")
        height, width, in_channels = observation_space.shape
        if height < 3 or width < 3:
            raise ValueError(f"MinAtarCNN: observations of shape {observation_space.shape} are smaller than its 3x3 kernel")
        super().__init__(observation_space, features_dim)
        self.n_channels = n_channels
        self.cnn = nn.Sequential(nn.Conv2d(in_channels, n_channels, kernel_size=3, stride=1), nn.ReLU(), nn.Flatten())
        # No padding: a 3x3 kernel takes one cell off each border
        n_flatten = n_channels * (height - 2) * (width - 2)
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        # SB3 hands over the observations as stored (booleans, or floats after its preprocessing), channel-last
        channels_first = observations.float().permute(0, 3, 1, 2)
        return self.linear(self.cnn(channels_first))


def register_minatar_envs() -> None:
    """
    Register MinAtar's gymnasium envs (``MinAtar/<Game>-v0`` with all actions, ``-v1`` with each game's minimal set).

    :raises MinAtarMissingError: If the ``minatar`` package is not installed
    """
    if f"{ENV_PREFIX}Breakout-v1" in gym.envs.registry:
        return
    try:
        import minatar.gym
    except ImportError as error:
        raise MinAtarMissingError(
            f"MinAtar envs need the minatar package, which is not installed ({error}): {INSTALL_HINT}"
        ) from error
    minatar.gym.register_envs()


# `--gym-packages sb3_distill.minatar` registers the envs by importing this module; without minatar it only gives the class
try:
    register_minatar_envs()
except MinAtarMissingError:
    pass
