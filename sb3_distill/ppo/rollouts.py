"""
PPO's rollout collection for a distilled student: the teacher may choose the actions (``teacher_acts``), and behind a
``VecNormalize`` the raw observations are kept in the rollout buffer for the teacher.
"""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from sb3_distill.common.teacher import Teacher
from sb3_distill.ppo.terms import teacher_rollout_actions


class TeacherRolloutMixin:
    """
    ``OnPolicyAlgorithm.collect_rollouts`` of SB3 2.9.2 with the teacher's part, mixed in before the SB3 on-policy
    algorithm (``DistilledPPO(DistillationMixin, TeacherRolloutMixin, PPO)``).
    """

    teacher: Teacher | None
    teacher_acts: bool
    # Of the SB3 on-policy algorithm this is mixed into
    policy: Any
    action_space: spaces.Space
    device: th.device
    use_sde: bool
    sde_sample_freq: int
    gamma: float
    num_timesteps: int
    _last_obs: Any
    _last_episode_starts: Any
    _vec_normalize_env: Any
    _update_info_buffer: Any

    def _rollout_step(self, obs_tensor: PyTorchObs, teacher_obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """
        The actions of one rollout step, with the student's values and log-probabilities of them: the student's own
        (``self.policy(obs)``, as PPO), or with ``teacher_acts`` the teacher's.

        :param obs_tensor: The observations as the student sees them
        :param teacher_obs: The observations as the teacher sees them (raw, behind a ``VecNormalize``)
        :return: (actions, values, log-probabilities), as ``ActorCriticPolicy.forward`` returns them
        """
        if not self.teacher_acts:
            return self.policy(obs_tensor)
        assert self.teacher is not None
        actions = teacher_rollout_actions(self.teacher, self.teacher.values(teacher_obs), self.action_space)
        values, log_probs, _ = self.policy.evaluate_actions(obs_tensor, actions)
        return actions.reshape((-1, *self.action_space.shape)), values, log_probs  # type: ignore[misc]

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """
        PPO's rollout collection (``OnPolicyAlgorithm.collect_rollouts`` of SB3 2.9.2), with two changes: the actions
        come from :meth:`_rollout_step` (the teacher's with ``teacher_acts``), and behind a ``VecNormalize`` the raw
        observations are kept in the buffer for the teacher.
        """
        assert self._last_obs is not None, "No previous observation was provided"
        # Switch to eval mode (this affects batch norm / dropout)
        self.policy.set_training_mode(False)

        n_steps = 0
        rollout_buffer.reset()
        # Sample new weights for the state dependent exploration
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)

        callback.on_rollout_start()

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                # Sample a new noise matrix
                self.policy.reset_noise(env.num_envs)

            # The raw observation, which VecNormalize keeps from the last step (the teacher never saw the normalized one)
            raw_obs = self._vec_normalize_env.get_original_obs() if self._vec_normalize_env is not None else None
            with th.no_grad():
                # Convert to pytorch tensor or to TensorDict
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                teacher_obs = obs_as_tensor(raw_obs, self.device) if raw_obs is not None and self.teacher_acts else obs_tensor
                action_tensor, values, log_probs = self._rollout_step(obs_tensor, teacher_obs)
            actions = action_tensor.cpu().numpy()

            # Rescale and perform action
            clipped_actions = actions

            if isinstance(self.action_space, spaces.Box):
                if self.policy.squash_output:
                    # Unscale the actions to match env bounds
                    # if they were previously squashed (scaled in [-1, 1])
                    clipped_actions = self.policy.unscale_action(clipped_actions)
                else:
                    # Otherwise, clip the actions to avoid out of bound error
                    # as we are sampling from an unbounded Gaussian distribution
                    clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)

            self.num_timesteps += env.num_envs

            # Give access to local variables
            callback.update_locals(locals())
            if not callback.on_step():
                return False

            self._update_info_buffer(infos, dones)
            n_steps += 1

            if isinstance(self.action_space, spaces.Discrete):
                # Reshape in case of discrete action
                actions = actions.reshape(-1, 1)

            # Handle timeout by bootstrapping with value function
            # see GitHub issue #633
            for idx, done in enumerate(dones):
                if (
                    done
                    and infos[idx].get("terminal_observation") is not None
                    and infos[idx].get("TimeLimit.truncated", False)
                ):
                    terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with th.no_grad():
                        terminal_value = self.policy.predict_values(terminal_obs)[0]  # type: ignore[arg-type]
                    rewards[idx] += self.gamma * terminal_value

            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
                **({"teacher_observation": raw_obs} if raw_obs is not None else {}),
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones

        with th.no_grad():
            # Compute value for the last timestep
            values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))  # type: ignore[arg-type]

        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)

        callback.update_locals(locals())

        callback.on_rollout_end()

        return True
