"""Teachers with Box actions: SAC, TQC, TD3, DDPG and Gaussian PPO/A2C, read safely (and trusted) from their zips."""

from pathlib import Path

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import TQC
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3

from sb3_distill.common.teacher import Teacher, load_teacher, scale_actions, teacher_value_width

PENDULUM_OBS = spaces.Box(-np.array([1.0, 1.0, 8.0], dtype=np.float32), np.array([1.0, 1.0, 8.0], dtype=np.float32))
PENDULUM_ACTIONS = spaces.Box(-2.0, 2.0, (1,), np.float32)
OFF_POLICY = dict(learning_starts=20, buffer_size=500, batch_size=16)
# Algorithm -> (constructor settings, teacher kind)
TEACHERS = {
    SAC: (OFF_POLICY, "squashed_gaussian"),
    TQC: (dict(OFF_POLICY, policy_kwargs=dict(net_arch=[16], n_quantiles=5)), "squashed_gaussian"),
    TD3: (OFF_POLICY, "deterministic"),
    DDPG: (OFF_POLICY, "deterministic"),
    PPO: (dict(n_steps=32, batch_size=32, n_epochs=1), "gaussian"),
    A2C: (dict(n_steps=8), "gaussian"),
}


@pytest.fixture(scope="module")
def teacher_zips(tmp_path_factory: pytest.TempPathFactory) -> dict[type, tuple[object, Path]]:
    """Each algorithm trained 64 steps on Pendulum-v1 with a [16] net, and its zip."""
    folder = tmp_path_factory.mktemp("continuous_teachers")
    made = {}
    for algorithm, (settings, _) in TEACHERS.items():
        kwargs = {"policy_kwargs": dict(net_arch=[16]), **settings}
        model = algorithm("MlpPolicy", "Pendulum-v1", seed=0, **kwargs)
        model.learn(64)
        path = folder / f"{algorithm.__name__}.zip"
        model.save(path)
        made[algorithm] = (model, path)
    return made


def observations(n: int = 8) -> th.Tensor:
    generator = np.random.default_rng(0)
    return th.as_tensor(generator.uniform(PENDULUM_OBS.low, PENDULUM_OBS.high, (n, 3)), dtype=th.float32)


@pytest.mark.parametrize("trust", [False, True])
@pytest.mark.parametrize("algorithm", list(TEACHERS))
def test_the_teacher_acts_as_its_model_and_names_its_kind(teacher_zips, algorithm, trust):
    model, path = teacher_zips[algorithm]
    teacher = load_teacher(path, PENDULUM_OBS, PENDULUM_ACTIONS, trust=trust)
    assert teacher.kind == TEACHERS[algorithm][1] and teacher.is_continuous
    assert teacher.algorithm == algorithm.__name__
    obs = observations()
    # The deterministic action of the model itself, unscaled from [-1, 1] as SB3 does (and clipped, for PPO/A2C)
    predicted, _ = model.predict(obs.numpy(), deterministic=True)
    scaled = teacher.scaled_mean_actions(obs)
    assert scaled.shape == (8, 1) and (scaled.abs() <= 1).all()
    np.testing.assert_allclose(np.clip(model.policy.unscale_action(scaled.numpy()), -2, 2), predicted, atol=1e-5)
    distribution = teacher.action_distribution(obs)
    if algorithm in (SAC, TQC):
        mean, log_std, _ = model.actor.get_action_dist_params(obs)
        th.testing.assert_close(distribution.mean, mean.detach())
        th.testing.assert_close(distribution.log_std, log_std.detach())
    elif algorithm in (PPO, A2C):
        gaussian = model.policy.get_distribution(obs).distribution
        th.testing.assert_close(distribution.mean, gaussian.mean.detach())
        th.testing.assert_close(distribution.log_std, gaussian.stddev.log().detach())
    else:
        assert distribution.log_std is None
        th.testing.assert_close(distribution.mean, model.actor(obs).detach())


@pytest.mark.parametrize("algorithm", [SAC, TQC, TD3, DDPG])
def test_the_critic_is_the_algorithms_own_estimate(teacher_zips, algorithm):
    model, path = teacher_zips[algorithm]
    teacher = load_teacher(path, PENDULUM_OBS, PENDULUM_ACTIONS)
    obs, actions = observations(), th.linspace(-1, 1, 8).reshape(8, 1)
    values = model.critic(obs, actions)
    # TQC: the mean over every critic's quantiles; SAC, TD3, DDPG: the least of their critics
    expected = values.reshape(8, -1).mean(dim=1, keepdim=True) if algorithm is TQC else th.cat(values, dim=1).min(1, True)[0]
    th.testing.assert_close(teacher.critic_values(obs, actions), expected.detach())
    assert teacher.has_critic and teacher.num_critic_parameters() > 0
    # The acting network alone is counted as the teacher's size: 3 -> 16 -> action (and log_std for SAC/TQC)
    heads = 2 if algorithm in (SAC, TQC) else 1
    assert teacher.num_parameters() == (3 * 16 + 16) + heads * (16 + 1)


def test_values_are_the_flat_form_buffers_keep(teacher_zips):
    teacher = load_teacher(teacher_zips[SAC][1], PENDULUM_OBS, PENDULUM_ACTIONS)
    values = teacher.values(observations())
    assert values.shape == (8, 2) == (8, teacher.value_width)
    split = teacher.split_values(values)
    th.testing.assert_close(th.cat([split.mean, split.log_std], dim=1), values)
    assert teacher_value_width(spaces.Box(-1, 1, (3,))) == 6 and teacher_value_width(spaces.Discrete(4)) == 4
    deterministic = load_teacher(teacher_zips[TD3][1], PENDULUM_OBS, PENDULUM_ACTIONS)
    assert (deterministic.values(observations())[:, 1] == 0).all()


def test_scale_actions_maps_the_bounds_to_minus_one_and_one_and_clips():
    box = spaces.Box(np.array([-2.0, 0.0], dtype=np.float32), np.array([2.0, 10.0], dtype=np.float32))
    actions = th.tensor([[-2.0, 0.0], [0.0, 5.0], [4.0, 20.0]])
    th.testing.assert_close(scale_actions(actions, box), th.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]))


def test_a_continuous_teacher_has_no_per_action_values_and_a_gaussian_one_no_critic(teacher_zips):
    sac = load_teacher(teacher_zips[SAC][1], PENDULUM_OBS, PENDULUM_ACTIONS)
    with pytest.raises(TypeError, match=r"SAC\.zip.*Box actions.*no per-action values"):
        sac.q_values(observations())
    ppo = load_teacher(teacher_zips[PPO][1], PENDULUM_OBS, PENDULUM_ACTIONS)
    with pytest.raises(TypeError, match=r"PPO\.zip.*has no critic"):
        ppo.critic_values(observations(), th.zeros(8, 1))


def test_other_action_bounds_or_dimensions_are_refused_naming_the_file(teacher_zips):
    path = teacher_zips[SAC][1]
    with pytest.raises(ValueError, match=r"(?s)SAC\.zip.*Box\(-2\.0, 2\.0.*Box\(-1\.0, 1\.0.*other bounds"):
        load_teacher(path, PENDULUM_OBS, spaces.Box(-1.0, 1.0, (1,), np.float32))
    with pytest.raises(ValueError, match=r"SAC\.zip.*shape \(1,\) vs \(2,\)"):
        load_teacher(path, PENDULUM_OBS, spaces.Box(-2.0, 2.0, (2,), np.float32))
    with pytest.raises(ValueError, match=r"SAC\.zip.*continuous-action teacher cannot teach a discrete-action student"):
        load_teacher(path, PENDULUM_OBS, spaces.Discrete(3))


def test_nan_weights_fail_naming_the_file(teacher_zips, tmp_path):
    model, _ = teacher_zips[TD3]
    broken = TD3("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[16]), **OFF_POLICY)
    broken.policy.load_state_dict(model.policy.state_dict())
    with th.no_grad():
        next(broken.actor.parameters()).fill_(float("nan"))
    broken.save(tmp_path / "nan_td3.zip")
    teacher = load_teacher(tmp_path / "nan_td3.zip", PENDULUM_OBS, PENDULUM_ACTIONS)
    with pytest.raises(ValueError, match=r"nan_td3\.zip.*non-finite actions"):
        teacher.scaled_mean_actions(observations())


def test_a_gsde_teacher_is_refused_by_name(tmp_path):
    SAC("MlpPolicy", "Pendulum-v1", use_sde=True, policy_kwargs=dict(net_arch=[8]), **OFF_POLICY).save(tmp_path / "gsde.zip")
    with pytest.raises(TypeError, match=r"gsde\.zip.*gSDE"):
        load_teacher(tmp_path / "gsde.zip", PENDULUM_OBS, PENDULUM_ACTIONS)


def test_the_teacher_is_a_frozen_copy(teacher_zips):
    model, _ = teacher_zips[SAC]
    teacher = Teacher(model)
    assert not any(parameter.requires_grad for parameter in teacher.network.parameters())
    assert all(parameter.requires_grad for parameter in model.actor.parameters())
    assert teacher.critic is not None and teacher.critic is not model.critic
