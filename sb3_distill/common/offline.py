"""
QDagger's offline phase: the teacher acts in the training env to fill the replay buffer before the student's own steps.

Paper: https://arxiv.org/abs/2206.01626 (Reincarnating RL: QDagger starts from the teacher's replay data)
"""

import math
from typing import Any

import numpy as np
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import obs_as_tensor, polyak_update
from torch import nn

from sb3_distill.common.teacher import Teacher


def check_offline_settings(offline_transitions: int, offline_gradient_steps: int, offline_epsilon: float) -> None:
    """
    Fail unless the offline phase's settings are valid.

    :param offline_transitions: Teacher transitions to store, >= 0 (0: no offline phase)
    :param offline_gradient_steps: Gradient steps on them, >= 0
    :param offline_epsilon: Probability of a random action instead of the teacher's, in [0, 1]
    """
    for name, value in (("offline_transitions", offline_transitions), ("offline_gradient_steps", offline_gradient_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name}={value!r} must be an int >= 0")
    if offline_gradient_steps > 0 and offline_transitions == 0:
        raise ValueError(
            f"offline_gradient_steps={offline_gradient_steps!r} needs teacher transitions to train on: "
            "set offline_transitions > 0, or offline_gradient_steps=0"
        )
    if (
        isinstance(offline_epsilon, bool)
        or not isinstance(offline_epsilon, (int, float, np.floating, np.integer))
        or not 0.0 <= offline_epsilon <= 1.0
    ):
        raise ValueError(f"offline_epsilon={offline_epsilon!r} must be a float in [0, 1]")


def epsilon_greedy_actions(teacher: Teacher, observations: Any, epsilon: float, model: OffPolicyAlgorithm) -> np.ndarray:
    """
    The teacher's greedy actions on a batch of observations, each replaced by a random one with probability ``epsilon``
    (drawn as SB3's DQN draws its exploration: ``np.random`` decides, the action space samples).

    :param teacher: The teacher
    :param observations: One observation per env, as the VecEnv gives them (raw: the teacher normalizes its own)
    :param epsilon: Probability of a random action, per env
    :param model: The model whose device and action space are used
    :return: One action per env
    """
    actions = teacher.q_values(obs_as_tensor(observations, model.device)).argmax(dim=1).cpu().numpy()
    for env_index in np.flatnonzero(np.random.rand(len(actions)) < epsilon):
        actions[env_index] = model.action_space.sample()
    return actions


def teacher_actions(
    teacher: Teacher, observations: Any, epsilon: float, model: OffPolicyAlgorithm
) -> tuple[np.ndarray, np.ndarray]:
    """
    The actions the teacher takes in the offline phase, for the env and for the replay buffer, as SB3's off-policy
    ``_sample_action`` gives them: a discrete teacher's greedy actions (both the same), or a continuous teacher's mean
    action in the scaled [-1, 1] space (stored so) and in the env's units (stepped); each replaced by a random one with
    probability ``epsilon``.

    :param teacher: The teacher
    :param observations: One observation per env, as the VecEnv gives them (raw: the teacher normalizes its own)
    :param epsilon: Probability of a random action, per env
    :param model: The model whose device, action space and policy (its ``unscale_action``) are used
    :return: (actions for ``env.step``, actions for the replay buffer)
    """
    if not teacher.is_continuous:
        actions = epsilon_greedy_actions(teacher, observations, epsilon, model)
        return actions, actions
    scaled = teacher.scaled_mean_actions(obs_as_tensor(observations, model.device)).cpu().numpy()
    random_envs = np.flatnonzero(np.random.rand(len(scaled)) < epsilon)
    # Random actions drawn as SB3 draws its warm-up actions: the action space samples, then scaled
    for env_index in random_envs:
        scaled[env_index] = model.policy.scale_action(model.action_space.sample())
    return model.policy.unscale_action(scaled), scaled


def collect_teacher_transitions(model: OffPolicyAlgorithm, teacher: Teacher, n_transitions: int, epsilon: float) -> int:
    """
    Let the teacher act (:func:`teacher_actions`) in ``model.env`` and store its transitions in ``model.replay_buffer``,
    through SB3's own ``_store_transition`` (terminal observations, timeouts, ``VecNormalize``, n-step buffers as in training).

    Neither ``num_timesteps``, the episode statistics nor the callbacks see these steps. The last transition of each env
    is stored as truncated (a timeout), and the env is reset, so that the student's own steps and episode returns start
    from a fresh episode and no n-step return runs from the teacher's episodes into the student's.

    :param model: The model whose env and replay buffer are used
    :param teacher: The teacher that acts
    :param n_transitions: Transitions to store (rounded up to a multiple of the number of envs)
    :param epsilon: Probability of a random action instead of the teacher's
    :return: The number of transitions stored
    """
    env, replay_buffer = model.env, model.replay_buffer
    assert env is not None and replay_buffer is not None  # set by SB3's constructor and _setup_model
    if model._last_obs is None:
        model._last_obs = env.reset()  # type: ignore[assignment]
        if model._vec_normalize_env is not None:
            model._last_original_obs = model._vec_normalize_env.get_original_obs()
    n_steps = math.ceil(n_transitions / env.num_envs)
    for step in range(n_steps):
        # The teacher sees raw observations, as in the replay buffer
        raw_observations = model._last_original_obs if model._vec_normalize_env is not None else model._last_obs
        actions, buffer_actions = teacher_actions(teacher, raw_observations, epsilon, model)
        new_observations, rewards, dones, infos = env.step(actions)
        if step == n_steps - 1:
            # End every episode here as a timeout: the TD target still bootstraps from the true next observation
            infos = [
                info if done else {**info, "terminal_observation": _env_item(new_observations, i), "TimeLimit.truncated": True}
                for i, (info, done) in enumerate(zip(infos, dones, strict=True))
            ]
            dones = np.ones_like(dones)
        model._store_transition(replay_buffer, buffer_actions, new_observations, rewards, dones, infos)  # type: ignore[arg-type]
    # The student starts its own episodes
    model._last_obs = env.reset()  # type: ignore[assignment]
    model._last_episode_starts = np.ones((env.num_envs,), dtype=bool)
    if model._vec_normalize_env is not None:
        model._last_original_obs = model._vec_normalize_env.get_original_obs()
    return n_steps * env.num_envs


def train_with_target_updates(
    model: OffPolicyAlgorithm, gradient_steps: int, online_network: nn.Module, target_network: nn.Module
) -> None:
    """
    The offline phase's gradient steps for a student whose target network is updated by ``_on_step`` (DQN, QR-DQN):
    ``model.train()`` in chunks of ``model.target_update_interval`` steps (their count of ``_on_step`` calls: the
    constructor's value divided by the number of envs), each followed by the target update ``_on_step`` makes (no env
    step happens to trigger it).

    :param model: The student
    :param gradient_steps: Gradient steps in all
    :param online_network: The network it trains (``q_net``, ``quantile_net``)
    :param target_network: Its target network
    """
    remaining_steps = gradient_steps
    while remaining_steps > 0:
        steps = min(remaining_steps, model.target_update_interval)  # type: ignore[attr-defined]
        model.train(gradient_steps=steps, batch_size=model.batch_size)
        polyak_update(online_network.parameters(), target_network.parameters(), model.tau)
        # Batch norm statistics are copied, as DQN does
        polyak_update(model.batch_norm_stats, model.batch_norm_stats_target, 1.0)  # type: ignore[attr-defined]
        remaining_steps -= steps


def _env_item(observations: Any, env_index: int) -> Any:
    """The observation of one env in a VecEnv's batch (a dict of arrays for Dict spaces)."""
    if isinstance(observations, dict):
        return {key: value[env_index] for key, value in observations.items()}
    return observations[env_index]
