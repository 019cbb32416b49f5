import copy
import json
import math
import zipfile

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch as th
from gymnasium.wrappers import TransformReward
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.envs import FakeImageEnv, SimpleMultiObsEnv
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import LinearSchedule
from torch.nn import functional as F

from sb3_distill import DistilledDQN, distillation_loss
from sb3_distill.common.losses import get_distillation_loss, teacher_agreement
from tests.conftest import TINY_DQN_KWARGS

STUDENT_KWARGS = dict(policy_kwargs=dict(net_arch=[8]), **TINY_DQN_KWARGS)


def make_student(teacher, alpha=0.5, temperature=1.0, env="CartPole-v1", seed=0, **kwargs) -> DistilledDQN:
    return DistilledDQN(
        "MlpPolicy", env, teacher=teacher, alpha=alpha, temperature=temperature, seed=seed, **{**STUDENT_KWARGS, **kwargs}
    )


def parameters_of(model) -> list[th.Tensor]:
    return [parameter.detach().clone() for parameter in model.policy.parameters()]


def test_learn_logs_the_loss_terms(tmp_path, cartpole_teacher_path):
    student = make_student(cartpole_teacher_path, alpha=0.3)
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(400, log_interval=1)
    progress = pd.read_csv(tmp_path / "progress.csv")
    rows = progress.dropna(subset=["train/distill_loss"])
    assert len(rows) > 0
    assert (rows["train/alpha"] == 0.3).all()
    assert ((rows["train/teacher_agreement"] >= 0) & (rows["train/teacher_agreement"] <= 1)).all()
    assert (rows["train/distill_loss"] >= 0).all()
    # train/loss is the mean of (1 - alpha) * td + alpha * distill, which is linear in the means
    expected = 0.7 * rows["train/td_loss"] + 0.3 * rows["train/distill_loss"]
    np.testing.assert_allclose(rows["train/loss"], expected, rtol=1e-5)


def test_teacher_agreement_is_the_last_batchs_computed_when_the_logs_are_written(tmp_path, cartpole_teacher_path):
    student = make_student(cartpole_teacher_path)
    student.learn(200)
    student.set_logger(configure(str(tmp_path), ["csv"]))
    batches = []
    distillation_terms = student._distillation_terms
    generator = th.Generator().manual_seed(0)

    def recording_terms(observations, student_q_values, *args, **kwargs):
        loss, gradient, _ = distillation_terms(observations, student_q_values, *args, **kwargs)
        # Other teacher values for the agreement, so that it differs from batch to batch
        teacher_q_values = th.randn(student_q_values.shape, generator=generator)
        batches.append((student_q_values.detach().clone(), teacher_q_values))
        return loss, gradient, teacher_q_values

    student._distillation_terms = recording_terms
    student.train(gradient_steps=3, batch_size=32)
    # Not computed by train() itself
    assert len(batches) == 3 and "train/teacher_agreement" not in student.logger.name_to_value
    student.dump_logs()
    agreements = [teacher_agreement(*batch).item() for batch in batches]
    assert 0 < agreements[-1] < 1 and len(set(agreements)) > 1
    logged = pd.read_csv(tmp_path / "progress.csv")["train/teacher_agreement"]
    assert logged.tolist() == [pytest.approx(agreements[-1])]
    # Once per batch: the next logs hold none until another update
    student.dump_logs()
    assert pd.read_csv(tmp_path / "progress.csv")["train/teacher_agreement"].isna().tolist() == [False, True]


@pytest.mark.parametrize("with_teacher", [False, True])
def test_alpha_zero_is_exactly_dqn(cartpole_teacher_path, with_teacher):
    # SB3 seeds the global RNGs at construction: build and train one model after the other
    dqn = DQN("MlpPolicy", "CartPole-v1", seed=3, **STUDENT_KWARGS)
    dqn.learn(400)
    dqn_parameters = parameters_of(dqn)
    student = make_student(cartpole_teacher_path if with_teacher else None, alpha=0.0, seed=3)
    student.learn(400)
    student_parameters = parameters_of(student)
    assert student._n_updates == dqn._n_updates > 0
    for dqn_parameter, student_parameter in zip(dqn_parameters, student_parameters, strict=True):
        assert th.equal(dqn_parameter, student_parameter)


def test_alpha_one_ignores_the_td_term(cartpole_teacher_path):
    def scaled_reward_env():
        return TransformReward(gym.make("CartPole-v1"), lambda reward: 100.0 * reward)

    runs = []
    for env in ("CartPole-v1", scaled_reward_env()):
        student = make_student(cartpole_teacher_path, alpha=1.0, env=env, seed=5)
        student.learn(400)
        runs.append(parameters_of(student))
    # Rewards only enter the TD term: with alpha = 1 they change nothing
    for first, second in zip(*runs, strict=True):
        assert th.equal(first, second)
    # ...whereas with alpha < 1 the same change of rewards does change the student
    runs = []
    for env in ("CartPole-v1", scaled_reward_env()):
        student = make_student(cartpole_teacher_path, alpha=0.5, env=env, seed=5)
        student.learn(400)
        runs.append(parameters_of(student))
    assert not all(th.equal(first, second) for first, second in zip(*runs, strict=True))


def test_distillation_moves_the_student_towards_the_teacher(cartpole_teacher_path):
    student = make_student(cartpole_teacher_path, alpha=1.0, temperature=1.0, learning_starts=500, learning_rate=3e-3)
    student.learn(500)  # fills the buffer, no update yet
    assert student._n_updates == 0
    batch = student.replay_buffer.sample(256)

    def loss_on_batch() -> float:
        with th.no_grad():
            return distillation_loss(
                student.q_net(batch.observations), student.teacher.q_values(batch.observations), 1.0
            ).item()

    before = loss_on_batch()
    student.train(gradient_steps=300, batch_size=64)
    after = loss_on_batch()
    assert after < 0.5 * before


def test_teacher_is_frozen_on_the_device_and_outside_the_policy(cartpole_teacher_path):
    student = make_student(cartpole_teacher_path)
    teacher_parameters = list(student.teacher.network.parameters())
    before = [parameter.clone() for parameter in teacher_parameters]
    student.learn(300)
    assert student.teacher.device == student.device
    assert not student.teacher.network.training
    assert all(not parameter.requires_grad for parameter in teacher_parameters)
    optimized = {id(parameter) for group in student.policy.optimizer.param_groups for parameter in group["params"]}
    policy_parameters = {id(parameter) for parameter in student.policy.parameters()}
    assert not optimized & {id(parameter) for parameter in teacher_parameters}
    assert not policy_parameters & {id(parameter) for parameter in teacher_parameters}
    assert all(th.equal(old, new) for old, new in zip(before, teacher_parameters, strict=True))


def test_teacher_can_be_a_loaded_model(cartpole_teacher):
    student = make_student(cartpole_teacher)
    student.learn(200)
    assert student.teacher.algorithm == "DQN"


def test_alpha_schedule_is_followed_and_logged(tmp_path, cartpole_teacher_path):
    student = make_student(cartpole_teacher_path, alpha=LinearSchedule(1.0, 0.0, 1.0))
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(400, log_interval=1)
    alphas = pd.read_csv(tmp_path / "progress.csv")["train/alpha"].dropna().to_numpy()
    assert len(alphas) > 2
    assert alphas[0] > alphas[-1]
    assert ((alphas >= 0) & (alphas <= 1)).all()


def test_n_steps_multiple_envs_callbacks_progress_bar_and_tensorboard(tmp_path, cartpole_teacher_path):
    class CountCalls(BaseCallback):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def _on_step(self) -> bool:
            self.calls += 1
            return True

    from stable_baselines3.common.env_util import make_vec_env

    callback = CountCalls()
    student = make_student(
        cartpole_teacher_path, env=make_vec_env("CartPole-v1", n_envs=2), n_steps=3, tensorboard_log=str(tmp_path)
    )
    student.learn(400, callback=callback, progress_bar=True)
    assert callback.calls == 200  # two envs: 200 calls for 400 steps
    assert student._n_updates > 0
    assert (tmp_path / "DistilledDQN_1").is_dir()
    assert any(path.name.startswith("events.out.tfevents") for path in (tmp_path / "DistilledDQN_1").iterdir())


def test_cnn_policy(tmp_path):
    def image_env():
        return FakeImageEnv(action_dim=3, screen_height=36, screen_width=36, n_channels=1)

    cnn_kwargs = dict(policy_kwargs=dict(features_extractor_kwargs=dict(features_dim=16)), **TINY_DQN_KWARGS)
    DQN("CnnPolicy", image_env(), seed=0, **cnn_kwargs).save(tmp_path / "image_teacher.zip")
    student = DistilledDQN("CnnPolicy", image_env(), teacher=tmp_path / "image_teacher.zip", seed=0, **cnn_kwargs)
    student.learn(120)
    assert student._n_updates > 0
    assert student.teacher.observation_space == student.observation_space


def test_multi_input_policy(tmp_path):
    DQN("MultiInputPolicy", SimpleMultiObsEnv(), seed=0, **STUDENT_KWARGS).save(tmp_path / "dict_teacher.zip")
    student = DistilledDQN(
        "MultiInputPolicy", SimpleMultiObsEnv(), teacher=tmp_path / "dict_teacher.zip", seed=0, **STUDENT_KWARGS
    )
    student.learn(120)
    assert student._n_updates > 0


def test_saved_student_holds_no_teacher_and_loads_with_plain_dqn(tmp_path, cartpole_teacher_path):
    student = make_student(cartpole_teacher_path, temperature=0.5)
    student.learn(300)
    student.save(tmp_path / "student")
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        data = json.loads(archive.read("data"))
        policy_state = th.load(archive.open("policy.pth"), weights_only=True)
        names = archive.namelist()
    assert "teacher" not in data
    assert all(key.startswith(("q_net.", "q_net_target.")) for key in policy_state)
    # The teacher's hidden layers are 32 wide, the student's 8: no 32-wide tensor is in the zip
    assert all(32 not in tensor.shape for tensor in policy_state.values())
    assert sorted(names) == sorted(
        [
            "data",
            "pytorch_variables.pth",
            "policy.pth",
            "policy.optimizer.pth",
            "_stable_baselines3_version",
            "system_info.txt",
        ]
    )

    observations = np.stack([student.observation_space.sample() for _ in range(10)])
    deployed = DQN.load(tmp_path / "student.zip")
    assert np.array_equal(
        deployed.predict(observations, deterministic=True)[0], student.predict(observations, deterministic=True)[0]
    )


def test_load_with_teacher_resumes_distillation(tmp_path, cartpole_teacher_path):
    student = make_student(cartpole_teacher_path, alpha=0.7, temperature=0.5)
    student.learn(300)
    student.save(tmp_path / "student.zip")
    resumed = DistilledDQN.load(tmp_path / "student.zip", env=gym.make("CartPole-v1"), teacher=cartpole_teacher_path)
    assert (resumed.alpha, resumed.temperature) == (0.7, 0.5)
    assert resumed.teacher is not None and resumed.teacher.algorithm == "DQN"
    updates = resumed._n_updates
    resumed.learn(200, reset_num_timesteps=False)
    assert resumed._n_updates > updates
    assert resumed.num_timesteps == 500


def test_load_without_teacher_predicts_but_refuses_to_train(tmp_path, cartpole_teacher_path):
    student = make_student(cartpole_teacher_path)
    student.learn(200)
    student.save(tmp_path / "student.zip")
    loaded = DistilledDQN.load(tmp_path / "student.zip", env=gym.make("CartPole-v1"))
    assert loaded.teacher is None
    action, _ = loaded.predict(loaded.observation_space.sample(), deterministic=True)
    assert loaded.action_space.contains(int(action))
    with pytest.raises(ValueError, match=r"alpha=0\.5 but no teacher.*teacher='teacher\.zip'"):
        loaded.learn(100)
    loaded.set_teacher(cartpole_teacher_path)
    loaded.learn(100)


def test_load_checks_the_new_teacher(tmp_path, cartpole_teacher_path):
    student = make_student(cartpole_teacher_path)
    student.save(tmp_path / "student.zip")
    with pytest.raises(FileNotFoundError, match=r"missing_teacher\.zip"):
        DistilledDQN.load(tmp_path / "student.zip", teacher=tmp_path / "missing_teacher.zip")


@pytest.mark.parametrize("alpha", [-0.1, 1.5, math.nan, math.inf])
def test_alpha_out_of_range(cartpole_teacher_path, alpha):
    with pytest.raises(ValueError, match=rf"alpha={alpha!r}"):
        make_student(cartpole_teacher_path, alpha=alpha)


@pytest.mark.parametrize("alpha", ["0.5", None, True])
def test_alpha_of_wrong_type(cartpole_teacher_path, alpha):
    with pytest.raises(TypeError, match=rf"alpha={alpha!r}"):
        make_student(cartpole_teacher_path, alpha=alpha)


def test_alpha_schedule_out_of_range(cartpole_teacher_path):
    with pytest.raises(ValueError, match=r"alpha=2\.0.*progress_remaining=1\.0"):
        make_student(cartpole_teacher_path, alpha=lambda progress_remaining: 2.0 * progress_remaining)


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.nan, math.inf])
def test_temperature_not_positive(cartpole_teacher_path, temperature):
    with pytest.raises(ValueError, match=rf"temperature={temperature!r}"):
        make_student(cartpole_teacher_path, temperature=temperature)


def test_temperature_of_wrong_type(cartpole_teacher_path):
    with pytest.raises(TypeError, match=r"temperature='1'"):
        make_student(cartpole_teacher_path, temperature="1")


def test_alpha_without_teacher(cartpole_teacher_path):
    with pytest.raises(ValueError, match=r"alpha=0\.5 needs a teacher"):
        make_student(None, alpha=0.5)


def test_missing_teacher_file_fails_at_construction(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.zip"):
        make_student(tmp_path / "nowhere.zip")


def test_teacher_for_another_env_fails_at_construction(cartpole_teacher_path):
    with pytest.raises(ValueError, match=r"Discrete\(2\).*Discrete\(3\)"):
        make_student(cartpole_teacher_path, env="MountainCar-v0")


@pytest.mark.parametrize("distill_loss", ["kl", "mse", "nll"])
def test_each_distillation_loss_trains_with_finite_losses(tmp_path, cartpole_teacher_path, distill_loss):
    student = make_student(cartpole_teacher_path, temperature=0.5, distill_loss=distill_loss)
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(300, log_interval=1)
    rows = pd.read_csv(tmp_path / "progress.csv").dropna(subset=["train/distill_loss"])
    assert len(rows) > 0
    assert np.isfinite(rows[["train/loss", "train/td_loss", "train/distill_loss"]].to_numpy()).all()
    assert (rows["train/distill_loss"] >= 0).all()


def test_the_distillation_loss_is_the_one_asked_for(cartpole_teacher_path):
    runs = {}
    for distill_loss in ("kl", "mse", "nll"):
        student = make_student(cartpole_teacher_path, alpha=1.0, distill_loss=distill_loss)
        student.learn(200)
        batch = student.replay_buffer.sample(32)
        q_values = student.q_net(batch.observations)
        teacher_q_values = student.teacher.q_values(batch.observations)
        loss, gradient, _ = student._distillation_terms(batch.observations, q_values)
        leaf = q_values.detach().requires_grad_(True)
        expected = get_distillation_loss(distill_loss)(leaf, teacher_q_values, 1.0)
        expected.backward()
        assert loss.item() == pytest.approx(expected.item())
        th.testing.assert_close(gradient, leaf.grad)
        runs[distill_loss] = parameters_of(student)
    # Same seed, different terms: different students
    assert not all(th.equal(first, second) for first, second in zip(runs["kl"], runs["mse"], strict=True))
    assert not all(th.equal(first, second) for first, second in zip(runs["kl"], runs["nll"], strict=True))


@pytest.mark.parametrize("distill_loss", ["kl", "mse", "nll"])
@pytest.mark.parametrize(("alpha", "temperature"), [(0.3, 1.0), (0.7, 0.2), (1.0, 2.0)])
def test_an_update_equals_back_propagating_the_whole_loss(cartpole_teacher_path, distill_loss, alpha, temperature):
    # train() hands the distillation term's gradient to autograd in closed form: the update must be the one that
    # L = (1 - alpha) * L_TD + alpha * L_distill gives through L.backward()
    # No clipping in the way: the gradients are compared at their own scale (Adam's first steps would hide one)
    student = make_student(
        cartpole_teacher_path, alpha=alpha, temperature=temperature, distill_loss=distill_loss, max_grad_norm=1e9
    )
    student.learn(200)
    reference = copy.deepcopy(student.policy)
    before = parameters_of(student)
    np.random.seed(3)
    student.train(gradient_steps=1, batch_size=32)
    np.random.seed(3)
    batch = student.replay_buffer.sample(32)
    with th.no_grad():
        next_q_values = reference.q_net_target(batch.next_observations).max(dim=1).values.reshape(-1, 1)
        target = batch.rewards + (1 - batch.dones) * student.gamma * next_q_values
    all_q_values = reference.q_net(batch.observations)
    td_loss = F.smooth_l1_loss(th.gather(all_q_values, 1, batch.actions.long()), target)
    distill = get_distillation_loss(distill_loss)(all_q_values, batch.teacher_q_values, temperature)
    loss = (1 - alpha) * td_loss + alpha * distill
    reference.optimizer.zero_grad()
    loss.backward()
    reference.optimizer.step()
    for name, parameter in student.policy.named_parameters():
        expected = dict(reference.named_parameters())[name]
        if parameter.grad is not None or expected.grad is not None:
            th.testing.assert_close(parameter.grad, expected.grad, rtol=1e-5, atol=1e-7, msg=f"gradient of {name}")
        th.testing.assert_close(parameter, expected, rtol=1e-5, atol=1e-6, msg=f"{name} after the update")
    assert not all(th.equal(updated, old) for updated, old in zip(parameters_of(student), before, strict=True))


def test_unknown_distillation_loss_fails_at_construction(cartpole_teacher_path):
    with pytest.raises(ValueError, match=r"distill_loss='l1'.*\['kl', 'mse', 'nll'\]"):
        make_student(cartpole_teacher_path, distill_loss="l1")


QDAGGER_SETTINGS = dict(
    alpha="performance",
    alpha_0=0.7,
    teacher_return=90.0,
    random_return=10.0,
    performance_eval_episodes=4,
    offline_transitions=120,
    offline_gradient_steps=5,
    offline_epsilon=0.2,
    distill_loss="nll",
)


def test_new_settings_are_saved_and_loaded_and_the_zip_stays_plain_dqn(tmp_path, cartpole_teacher_path):
    from tests.test_buffers import run_without_sb3_distill

    student = make_student(cartpole_teacher_path, **QDAGGER_SETTINGS)
    student.learn(200)
    student.save(tmp_path / "student.zip")
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        data = json.loads(archive.read("data"))
    assert "performance_alpha" not in data
    loaded = DistilledDQN.load(tmp_path / "student.zip", env=gym.make("CartPole-v1"), teacher=cartpole_teacher_path)
    for name, value in QDAGGER_SETTINGS.items():
        assert getattr(loaded, name) == value, name
    assert loaded.offline_done and loaded.teacher_transitions == 120
    loaded.learn(100, reset_num_timesteps=False)
    assert loaded.teacher_transitions == 120 and loaded.performance_alpha.alpha_0 == 0.7
    # Deployment needs no plugin
    run_without_sb3_distill(
        f"from stable_baselines3 import DQN\nmodel = DQN.load({str(tmp_path / 'student.zip')!r})\n"
        "assert model.alpha == 'performance' and model.offline_transitions == 120\nmodel.predict([0.0, 0.0, 0.0, 0.0])",
        cwd=tmp_path,
    )


def test_qdagger_settings_from_a_zoo_entry():
    from sb3_distill.recipe import make_recipe

    hyperparams = {"alpha": "performance", "alpha_0": 0.8, "offline_transitions": 200, "offline_gradient_steps": 10}
    recipe = make_recipe("CartPole-v1", hyperparams={**hyperparams, "learning_starts": 100, "train_freq": 4})
    student = recipe.make_model(recipe.make_env(seed=0), seed=0)
    assert isinstance(student, DistilledDQN)
    assert (student.alpha, student.alpha_0, student.offline_transitions) == ("performance", 0.8, 200)
    student.learn(300)
    assert student.teacher_transitions == 200 and student.num_timesteps == 300
    # The shipped teacher's return was measured (it balances the pole far longer than a random policy)
    assert student.performance_alpha.teacher_return > student.performance_alpha.random_return + 100
    assert student._n_updates > 10
