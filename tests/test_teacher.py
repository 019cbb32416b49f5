import zipfile

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.wrappers import TimeAwareObservation
from sb3_contrib import QRDQN, TRPO, MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_distill.dqn import DistilledDQN
from sb3_distill.common.teacher import Teacher, load_model_zip, load_teacher, read_zoo_saved_config
from sb3_distill.common.teacher_zip import TeacherPolicy

CARTPOLE_OBS = gym.make("CartPole-v1").observation_space
CARTPOLE_ACTIONS = spaces.Discrete(2)


def test_load_from_path_gives_frozen_values_equal_to_the_teacher(cartpole_teacher_path, cartpole_teacher):
    teacher = load_teacher(cartpole_teacher_path, CARTPOLE_OBS, CARTPOLE_ACTIONS)
    observations = th.as_tensor(np.stack([CARTPOLE_OBS.sample() for _ in range(5)]))
    values = teacher.q_values(observations)
    assert values.shape == (5, 2)
    assert not values.requires_grad
    with th.no_grad():
        expected = cartpole_teacher.q_net(observations)
    assert th.allclose(values, expected)
    assert not teacher.network.training
    assert all(not parameter.requires_grad for parameter in teacher.network.parameters())
    # [32, 32] MLP on 4 inputs and 2 outputs
    assert teacher.num_parameters() == (4 * 32 + 32) + (32 * 32 + 32) + (32 * 2 + 2)


def test_zip_suffix_may_be_omitted(cartpole_teacher_path):
    teacher = load_teacher(str(cartpole_teacher_path.with_suffix("")), CARTPOLE_OBS, CARTPOLE_ACTIONS)
    assert teacher.algorithm == "DQN"


def test_loaded_model_is_copied_not_mutated(cartpole_teacher):
    teacher = load_teacher(cartpole_teacher, CARTPOLE_OBS, CARTPOLE_ACTIONS)
    assert teacher.network is not cartpole_teacher.q_net
    assert all(parameter.requires_grad for parameter in cartpole_teacher.q_net.parameters())


def test_loading_does_not_touch_the_global_random_state(cartpole_teacher_path):
    np.random.seed(123)
    th.manual_seed(123)
    expected = (np.random.rand(), th.rand(1).item())
    np.random.seed(123)
    th.manual_seed(123)
    load_teacher(cartpole_teacher_path, CARTPOLE_OBS, CARTPOLE_ACTIONS)
    assert (np.random.rand(), th.rand(1).item()) == expected


def test_qrdqn_teacher_gives_the_mean_over_quantiles(tmp_path):
    model = QRDQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8], n_quantiles=5), seed=0)
    model.save(tmp_path / "qrdqn.zip")
    teacher = load_teacher(tmp_path / "qrdqn.zip", CARTPOLE_OBS, CARTPOLE_ACTIONS)
    observations = th.as_tensor(np.stack([CARTPOLE_OBS.sample() for _ in range(3)]))
    with th.no_grad():
        expected = model.quantile_net(observations).mean(dim=1)
    assert teacher.algorithm == "QRDQN"
    assert th.allclose(teacher.q_values(observations), expected, atol=1e-6)


def test_missing_file_is_file_not_found(tmp_path):
    missing = tmp_path / "no_such_teacher.zip"
    with pytest.raises(FileNotFoundError, match=r"no_such_teacher\.zip"):
        load_teacher(missing, CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_file_that_is_not_a_zip(tmp_path):
    not_a_zip = tmp_path / "teacher.zip"
    not_a_zip.write_text("hello")
    with pytest.raises(ValueError, match=r"teacher\.zip.*not an SB3 model zip"):
        load_teacher(not_a_zip, CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_zip_that_is_not_an_sb3_model(tmp_path):
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(ValueError, match=r"other\.zip.*not an SB3 model zip"):
        load_teacher(other_zip, CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_action_space_mismatch_names_both_spaces(cartpole_teacher_path):
    mountain_car = gym.make("MountainCar-v0")
    with pytest.raises(ValueError, match=r"Discrete\(2\).*Discrete\(3\)"):
        load_teacher(cartpole_teacher_path, mountain_car.observation_space, mountain_car.action_space)


def test_observation_space_mismatch_names_both_spaces(cartpole_teacher_path):
    time_aware = TimeAwareObservation(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match=r"(?s)observation space Box\(.*\(4,\).*observation space Box\(.*\(5,\)"):
        load_teacher(cartpole_teacher_path, time_aware.observation_space, time_aware.action_space)


def test_continuous_action_teacher_for_a_discrete_student_is_refused(tmp_path):
    PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64).save(tmp_path / "pendulum_ppo.zip")
    with pytest.raises(
        ValueError, match=r"pendulum_ppo\.zip.*Box\(.*Discrete\(2\).*continuous-action teacher cannot teach a discrete-action"
    ):
        load_teacher(tmp_path / "pendulum_ppo.zip", CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_recurrent_teacher_names_its_policy():
    recurrent = RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=32, batch_size=32, policy_kwargs=dict(lstm_hidden_size=8))
    with pytest.raises(TypeError, match=r"<RecurrentPPO model>.*RecurrentActorCriticPolicy.*LSTM state"):
        load_teacher(recurrent, CARTPOLE_OBS, CARTPOLE_ACTIONS)


def test_wrong_teacher_type_is_a_type_error():
    with pytest.raises(TypeError, match="teacher=42"):
        load_teacher(42, CARTPOLE_OBS, CARTPOLE_ACTIONS)  # type: ignore[arg-type]


def test_teacher_is_reused_and_moved(cartpole_teacher):
    teacher = Teacher(cartpole_teacher, source="test")
    assert load_teacher(teacher, CARTPOLE_OBS, CARTPOLE_ACTIONS, device="cpu") is teacher
    assert teacher.device == th.device("cpu")
    assert "DQN" in repr(teacher) and "q_values" in repr(teacher)


# --- Teacher kinds -----------------------------------------------------------------------------------------------------

TINY = dict(net_arch=[8])


def make_tiny(algorithm: type[BaseAlgorithm]) -> BaseAlgorithm:
    """A tiny untrained model of each kind on CartPole-v1 (its values are what matters, not how good they are)."""
    if algorithm is QRDQN:
        return QRDQN("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[8], n_quantiles=5), seed=0)
    if algorithm is DQN:
        return DQN("MlpPolicy", "CartPole-v1", policy_kwargs=TINY, seed=0)
    kwargs: dict = dict(n_steps=32) if algorithm is A2C else dict(n_steps=32, batch_size=32)
    return algorithm("MlpPolicy", "CartPole-v1", policy_kwargs=TINY, seed=0, **kwargs)


def expected_values(model: BaseAlgorithm, observations: th.Tensor) -> th.Tensor:
    """The values the SB3 model itself computes for each kind of teacher."""
    with th.no_grad():
        if isinstance(model, DQN):
            return model.q_net(observations)
        if isinstance(model, QRDQN):
            return model.quantile_net(observations).mean(dim=1)
        return model.policy.get_distribution(observations).distribution.logits


def cartpole_batch(size: int = 6) -> th.Tensor:
    return th.as_tensor(np.stack([CARTPOLE_OBS.sample() for _ in range(size)]))


KINDS = [(DQN, "q_values"), (QRDQN, "quantiles"), (PPO, "logits"), (A2C, "logits"), (TRPO, "logits"), (MaskablePPO, "logits")]


@pytest.mark.parametrize(("algorithm", "kind"), KINDS)
def test_each_teacher_kind_gives_the_values_of_its_sb3_model(algorithm, kind):
    model = make_tiny(algorithm)
    teacher = load_teacher(model, CARTPOLE_OBS, CARTPOLE_ACTIONS)
    observations = cartpole_batch()
    values = teacher.q_values(observations)
    assert values.shape == (6, 2)
    assert th.allclose(values, expected_values(model, observations), atol=1e-6)
    assert teacher.kind == kind and kind in repr(teacher) and algorithm.__name__ in repr(teacher)
    assert not teacher.network.training and not any(parameter.requires_grad for parameter in teacher.network.parameters())


@pytest.mark.parametrize(("algorithm", "kind"), KINDS)
@pytest.mark.parametrize("trust", [False, True])
def test_each_teacher_kind_loads_from_its_zip(tmp_path, algorithm, kind, trust):
    model = make_tiny(algorithm)
    model.save(tmp_path / "teacher.zip")
    teacher = load_teacher(tmp_path / "teacher.zip", CARTPOLE_OBS, CARTPOLE_ACTIONS, trust=trust)
    observations = cartpole_batch()
    assert th.allclose(teacher.q_values(observations), expected_values(model, observations), atol=1e-6)
    assert teacher.kind == kind and teacher.algorithm == algorithm.__name__
    assert "teacher.zip" in teacher.source


def test_safe_loading_unpickles_nothing_and_trust_uses_sb3s_loader(cartpole_teacher_path, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("unpickled")

    with monkeypatch.context() as patch:
        # SB3's loader unpickles data through cloudpickle.loads and pickle
        patch.setattr("cloudpickle.loads", refuse)
        patch.setattr(pickle, "loads", refuse)
        patch.setattr(pickle, "load", refuse)
        safe = load_model_zip(cartpole_teacher_path)
    assert isinstance(safe, TeacherPolicy) and safe.algorithm == "DQN"
    trusted = load_model_zip(cartpole_teacher_path, trust=True)
    assert isinstance(trusted, DQN)


def test_student_distils_a_ppo_teacher(tmp_path):
    ppo = make_tiny(PPO)
    student = DistilledDQN(
        "MlpPolicy", "CartPole-v1", teacher=ppo, alpha=0.5, policy_kwargs=TINY, seed=0, learning_starts=50, train_freq=4
    )
    assert student.teacher is not None and student.teacher.kind == "logits"
    student.set_logger(configure(str(tmp_path), ["csv"]))
    student.learn(300, log_interval=1)
    rows = pd.read_csv(tmp_path / "progress.csv").dropna(subset=["train/teacher_agreement"])
    assert len(rows) > 0
    for key in ("train/loss", "train/td_loss", "train/distill_loss", "train/teacher_agreement"):
        assert np.isfinite(rows[key]).all(), key
    assert ((rows["train/teacher_agreement"] >= 0) & (rows["train/teacher_agreement"] <= 1)).all()


def test_continuous_action_model_gives_its_gaussian_and_is_refused_by_a_discrete_student():
    pendulum = PPO("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64)
    assert Teacher(pendulum).kind == "gaussian"
    with pytest.raises(ValueError, match=r"<PPO model>.*Box\(.*continuous-action teacher cannot teach a discrete-action"):
        load_teacher(pendulum, CARTPOLE_OBS, CARTPOLE_ACTIONS)


# --- Non-finite values and losses --------------------------------------------------------------------------------------


def output_bias(model: BaseAlgorithm) -> th.Tensor:
    """The bias of the model's last layer: the values (or logits) of action 0 move with it."""
    if isinstance(model, DQN):
        return model.q_net.q_net[-1].bias
    return model.policy.action_net.bias


def student_parameters(student: DistilledDQN) -> list[th.Tensor]:
    return [parameter.detach().clone() for parameter in student.policy.parameters()]


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
@pytest.mark.parametrize("teacher_cache", [True, False])
@pytest.mark.parametrize("algorithm", [DQN, PPO])
def test_non_finite_teacher_raises_before_the_student_changes(algorithm, teacher_cache, bad_value):
    model = make_tiny(algorithm)
    with th.no_grad():
        output_bias(model)[0] = bad_value
    student = DistilledDQN(
        "MlpPolicy", "CartPole-v1", teacher=model, teacher_cache=teacher_cache, policy_kwargs=TINY, seed=0, learning_starts=50
    )
    before = student_parameters(student)
    with pytest.raises(ValueError, match=rf"Teacher <{algorithm.__name__} model> gave non-finite"):
        student.learn(200)
    after = student_parameters(student)
    assert all(th.equal(old, new) for old, new in zip(before, after, strict=True))
    assert all(th.isfinite(parameter).all() for parameter in after)


def test_non_finite_teacher_file_is_named(tmp_path):
    model = make_tiny(DQN)
    with th.no_grad():
        output_bias(model)[1] = float("nan")
    model.save(tmp_path / "broken_teacher.zip")
    teacher = load_teacher(tmp_path / "broken_teacher.zip", CARTPOLE_OBS, CARTPOLE_ACTIONS)
    with pytest.raises(ValueError, match=r"broken_teacher\.zip.*non-finite Q-values"):
        teacher.q_values(cartpole_batch())


class InfiniteReward(gym.RewardWrapper):
    def reward(self, reward):
        return float("inf")


def test_non_finite_loss_raises_before_the_student_changes(cartpole_teacher):
    env = InfiniteReward(gym.make("CartPole-v1"))
    student = DistilledDQN("MlpPolicy", env, teacher=cartpole_teacher, policy_kwargs=TINY, seed=0, learning_starts=50)
    before = student_parameters(student)
    with pytest.raises(ValueError, match=r"Non-finite loss at update 1 .*: loss=(inf|nan), td_loss=inf, distill_loss=\d"):
        student.learn(200)
    assert all(th.equal(old, new) for old, new in zip(before, student_parameters(student), strict=True))


# --- Spaces ------------------------------------------------------------------------------------------------------------


class WiderBounds(gym.ObservationWrapper):
    """CartPole-v1 with other (wider) observation bounds: same kind, shape and dtype."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = spaces.Box(low=-100.0, high=100.0, shape=(4,), dtype=np.float32)

    def observation(self, observation):
        return observation


def test_other_bounds_warn_naming_both_spaces_and_train(cartpole_teacher_path):
    env = WiderBounds(gym.make("CartPole-v1"))
    with pytest.warns(UserWarning, match=r"(?s)cartpole_teacher\.zip.*Box\(\[-4\.8.*Box\(-100\.0, 100\.0.*other bounds"):
        student = DistilledDQN("MlpPolicy", env, teacher=cartpole_teacher_path, policy_kwargs=TINY, seed=0, learning_starts=50)
    student.learn(150)
    assert all(th.isfinite(parameter).all() for parameter in student.policy.parameters())


def test_equal_spaces_do_not_warn(cartpole_teacher_path, recwarn):
    load_teacher(cartpole_teacher_path, gym.make("CartPole-v1").observation_space, CARTPOLE_ACTIONS)
    assert not [warning for warning in recwarn if "other bounds" in str(warning.message)]


@pytest.mark.parametrize(
    ("observation_space", "action_space", "reason"),
    [
        (spaces.Box(-np.inf, np.inf, (4,), np.float64), CARTPOLE_ACTIONS, r"dtype float32 vs float64"),
        (spaces.Box(-np.inf, np.inf, (2, 2), np.float32), CARTPOLE_ACTIONS, r"shape \(4,\) vs \(2, 2\)"),
        (spaces.Discrete(4), CARTPOLE_ACTIONS, r"kind Box vs Discrete"),
        (CARTPOLE_OBS, spaces.Discrete(3), r"n 2 \(start 0\) vs 3"),
        (CARTPOLE_OBS, spaces.Discrete(2, start=1), r"start 0\) vs 2 \(start 1\)"),
        (spaces.Dict({"obs": CARTPOLE_OBS}), CARTPOLE_ACTIONS, r"kind Box vs Dict"),
    ],
)
def test_space_mismatch_names_the_file_both_spaces_and_the_difference(
    cartpole_teacher_path, observation_space, action_space, reason
):
    with pytest.raises(ValueError, match=r"(?s)cartpole_teacher\.zip.* has .*space .* but the student's env has .*" + reason):
        load_teacher(cartpole_teacher_path, observation_space, action_space)


def test_dict_sub_spaces_are_compared():
    dict_space = spaces.Dict({"position": spaces.Box(-1, 1, (2,), np.float32), "flag": spaces.Discrete(2)})
    model = DQN("MultiInputPolicy", DummyVecEnv([lambda: DictEnv(dict_space)]), policy_kwargs=TINY)
    other_bounds = spaces.Dict({"position": spaces.Box(-5, 5, (2,), np.float32), "flag": spaces.Discrete(2)})
    with pytest.warns(UserWarning, match="other bounds"):
        load_teacher(model, other_bounds, CARTPOLE_ACTIONS)
    other_flag = spaces.Dict({"position": spaces.Box(-1, 1, (2,), np.float32), "flag": spaces.Discrete(3)})
    with pytest.raises(ValueError, match=r"\['flag'\] n 2"):
        load_teacher(model, other_flag, CARTPOLE_ACTIONS)
    other_keys = spaces.Dict({"position": spaces.Box(-1, 1, (2,), np.float32)})
    with pytest.raises(ValueError, match=r"sub-spaces"):
        load_teacher(model, other_keys, CARTPOLE_ACTIONS)


class DictEnv(gym.Env):
    """A two-action env with a Dict observation space."""

    def __init__(self, observation_space: spaces.Dict):
        self.observation_space = observation_space
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


# --- RL Zoo log folders ------------------------------------------------------------------------------------------------


def make_zoo_folder(tmp_path, model: BaseAlgorithm, config_text: str | None = None):
    """A log folder as rl_zoo3 train writes it: <env>.zip beside <env>/config.yml."""
    folder = tmp_path / "CartPole-v1_1"
    (folder / "CartPole-v1").mkdir(parents=True)
    model.save(folder / "CartPole-v1.zip")
    if config_text is None:
        from collections import OrderedDict

        import yaml

        config_text = yaml.dump(OrderedDict([("n_timesteps", 1000.0), ("normalize", True), ("policy", "MlpPolicy")]))
    (folder / "CartPole-v1" / "config.yml").write_text(config_text)
    return folder


def test_zoo_config_is_read_with_its_ordered_dict(tmp_path, cartpole_teacher):
    folder = make_zoo_folder(tmp_path, cartpole_teacher)
    assert "!!python/object/apply:collections.OrderedDict" in (folder / "CartPole-v1" / "config.yml").read_text()
    assert read_zoo_saved_config(folder) == {"n_timesteps": 1000.0, "normalize": True, "policy": "MlpPolicy"}


@pytest.mark.parametrize(
    "payload",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        'n_timesteps: !!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/apply:collections.OrderedDict [[[policy, !!python/object/apply:os.system ["touch {marker}"]]]]',
    ],
)
def test_zoo_config_with_an_unsafe_tag_is_refused(tmp_path, cartpole_teacher, payload):
    marker = tmp_path / "marker"
    folder = make_zoo_folder(tmp_path, cartpole_teacher, payload.format(marker=marker))
    with pytest.raises(ValueError, match=r"CartPole-v1_1/CartPole-v1/config\.yml.*os\.system"):
        read_zoo_saved_config(folder)
    assert not marker.exists()


def saved_vec_normalize(path) -> VecNormalize:
    """VecNormalize statistics of a few hundred CartPole-v1 steps, saved as the Zoo saves them."""
    vec_normalize = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]), clip_obs=2.0)
    vec_normalize.seed(0)
    vec_normalize.reset()
    for _ in range(200):
        vec_normalize.step(np.array([vec_normalize.action_space.sample()]))
    vec_normalize.save(str(path))
    return vec_normalize


def test_zoo_teacher_with_normalization_loads_without_trust_the_same_statistics(tmp_path, cartpole_teacher):
    folder = make_zoo_folder(tmp_path, cartpole_teacher)
    saved_vec_normalize(folder / "CartPole-v1" / "vecnormalize.pkl")
    safe = load_teacher(folder, CARTPOLE_OBS, CARTPOLE_ACTIONS)
    trusted = load_teacher(folder, CARTPOLE_OBS, CARTPOLE_ACTIONS, trust=True)
    observations = th.as_tensor(np.stack([CARTPOLE_OBS.sample() for _ in range(8)]))
    assert safe.observation_normalizer is not None and "normalized observations" in repr(safe)
    th.testing.assert_close(safe.q_values(observations), trusted.q_values(observations))
    student = DistilledDQN("MlpPolicy", "CartPole-v1", teacher=folder, policy_kwargs=TINY)
    assert student.teacher is not None and student.teacher.observation_normalizer is not None


def test_zoo_teacher_sees_observations_normalized_with_its_saved_statistics(tmp_path, cartpole_teacher):
    folder = make_zoo_folder(tmp_path, cartpole_teacher)
    vec_normalize = saved_vec_normalize(folder / "CartPole-v1" / "vecnormalize.pkl")
    teacher = load_teacher(folder, CARTPOLE_OBS, CARTPOLE_ACTIONS, trust=True)
    assert "normalized observations" in repr(teacher)
    observations = np.stack([CARTPOLE_OBS.sample() for _ in range(8)])
    with th.no_grad():
        expected = teacher.network(th.as_tensor(vec_normalize.normalize_obs(observations)))
        unnormalized = teacher.network(th.as_tensor(observations))
    values = teacher.q_values(th.as_tensor(observations))
    assert th.allclose(values, expected, atol=1e-5)
    assert not th.allclose(values, unnormalized, atol=1e-3)
    # And a student trained from the folder with trust_teacher=True uses the same teacher
    student = DistilledDQN(
        "MlpPolicy", "CartPole-v1", teacher=folder, trust_teacher=True, policy_kwargs=TINY, learning_starts=50
    )
    assert student.trust_teacher and student.teacher is not None and student.teacher.observation_normalizer is not None
    student.learn(100)


@pytest.mark.parametrize("algorithm", [DQN, PPO])
def test_a_legacy_gym_zip_loads_with_trust_too(tmp_path, algorithm):
    from tests.legacy_fixtures import make_legacy_zip

    model = make_tiny(algorithm)
    model.save(tmp_path / "teacher.zip")
    legacy = make_legacy_zip(tmp_path / "teacher.zip", tmp_path / "legacy.zip")
    trusted = load_model_zip(legacy, trust=True)
    assert isinstance(trusted, algorithm)
    teacher = load_teacher(legacy, CARTPOLE_OBS, CARTPOLE_ACTIONS, trust=True)
    observations = cartpole_batch()
    assert th.allclose(teacher.q_values(observations), expected_values(model, observations), atol=1e-6)


def test_set_teacher_takes_the_trust_opt_in_and_it_is_saved(tmp_path, cartpole_teacher):
    import json
    import zipfile

    folder = make_zoo_folder(tmp_path, cartpole_teacher)
    saved_vec_normalize(folder / "CartPole-v1" / "vecnormalize.pkl")
    student = DistilledDQN("MlpPolicy", "CartPole-v1", alpha=0.0, policy_kwargs=TINY)
    student.set_teacher(folder)
    assert student.trust_teacher is False and student.teacher.observation_normalizer is not None
    student.set_teacher(folder, trust_teacher=True)
    assert student.trust_teacher is True and student.teacher is not None and student.teacher.observation_normalizer is not None
    student.save(tmp_path / "student.zip")
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        assert json.loads(archive.read("data"))["trust_teacher"] is True
    assert isinstance(DQN.load(tmp_path / "student.zip"), DQN)


def test_zoo_config_with_a_tuple_reads_back(tmp_path):
    """The Zoo dumps a tuple given with -params (train_freq:(4,'step')) as !!python/tuple: a plain value, accepted."""
    import yaml

    from sb3_distill.common.zoo_folder import read_zoo_saved_config

    run = tmp_path / "run"
    (run / "CartPole-v1").mkdir(parents=True)
    (run / "CartPole-v1.zip").write_bytes(b"")
    (run / "CartPole-v1" / "config.yml").write_text(yaml.dump({"train_freq": (4, "step"), "n_envs": 1}))
    assert "!!python/tuple" in (run / "CartPole-v1" / "config.yml").read_text()
    assert read_zoo_saved_config(run) == {"train_freq": (4, "step"), "n_envs": 1}
