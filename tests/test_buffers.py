"""The teacher's values kept in the replay buffer (teacher_cache=True) against evaluating the teacher per batch."""

import base64
import json
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.vec_env import VecNormalize

from sb3_distill import DistilledDQN, distillation_loss
from sb3_distill.common.buffers import (
    TEACHER_VALUES_BUFFERS,
    TeacherReplayBufferSamples,
    TeacherValuesDictReplayBuffer,
    TeacherValuesNStepReplayBuffer,
    TeacherValuesReplayBuffer,
)
from tests.conftest import TINY_DQN_KWARGS

STUDENT_KWARGS = dict(policy_kwargs=dict(net_arch=[8]), **TINY_DQN_KWARGS)


class CountingNetwork(th.nn.Module):
    """Wraps the teacher's network and counts the observations it is asked to evaluate."""

    def __init__(self, network: th.nn.Module):
        super().__init__()
        self.network = network
        self.n_observations = 0

    def forward(self, observations):
        batch = next(iter(observations.values())) if isinstance(observations, dict) else observations
        self.n_observations += len(batch)
        return self.network(observations)


def assert_cached_values_match_the_teacher(student: DistilledDQN, batch_size: int = 64) -> None:
    student.replay_buffer.update_teacher_values(student.teacher)
    batch = student.replay_buffer.sample(batch_size)
    assert batch.teacher_q_values is not None
    fresh = student.teacher.q_values(batch.observations)
    th.testing.assert_close(batch.teacher_q_values, fresh, rtol=1e-5, atol=1e-5)
    # ... hence the same loss on the same batch, cached or not
    student_q_values = student.q_net(batch.observations)
    th.testing.assert_close(
        distillation_loss(student_q_values, batch.teacher_q_values, 0.5),
        distillation_loss(student_q_values, fresh, 0.5),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "env, kwargs, buffer_class",
    [
        ("CartPole-v1", {}, TeacherValuesReplayBuffer),
        (make_vec_env("CartPole-v1", n_envs=3, seed=0), {}, TeacherValuesReplayBuffer),
        ("CartPole-v1", {"n_steps": 3}, TeacherValuesNStepReplayBuffer),
        (make_vec_env("CartPole-v1", n_envs=2, seed=0), {"n_steps": 2}, TeacherValuesNStepReplayBuffer),
        ("CartPole-v1", {"optimize_memory_usage": True, "replay_buffer_kwargs": {"handle_timeout_termination": False}},
         TeacherValuesReplayBuffer),
    ],
)  # fmt: skip
def test_cached_values_line_up_with_the_sampled_observations(cartpole_teacher_path, env, kwargs, buffer_class):
    student = DistilledDQN("MlpPolicy", env, teacher=cartpole_teacher_path, seed=0, **{**STUDENT_KWARGS, **kwargs})
    assert type(student.replay_buffer) is buffer_class
    student.learn(300)
    assert_cached_values_match_the_teacher(student)


def test_dict_observations(tmp_path):
    DQN("MultiInputPolicy", SimpleMultiObsEnv(), seed=0, **STUDENT_KWARGS).save(tmp_path / "dict_teacher.zip")
    student = DistilledDQN(
        "MultiInputPolicy", SimpleMultiObsEnv(), teacher=tmp_path / "dict_teacher.zip", seed=0, **STUDENT_KWARGS
    )
    assert type(student.replay_buffer) is TeacherValuesDictReplayBuffer
    student.learn(200)
    assert_cached_values_match_the_teacher(student)


def test_values_wrap_around_a_full_buffer(cartpole_teacher_path):
    student = DistilledDQN(
        "MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, seed=0, **{**STUDENT_KWARGS, "buffer_size": 150}
    )
    student.learn(400)
    assert student.replay_buffer.full
    assert_cached_values_match_the_teacher(student)


def test_teacher_sees_each_stored_observation_once(cartpole_teacher_path):
    runs = {}
    for teacher_cache in (True, False):
        student = DistilledDQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), teacher=cartpole_teacher_path,
                               teacher_cache=teacher_cache, seed=0, **{**STUDENT_KWARGS, "gradient_steps": 4})  # fmt: skip
        counter = CountingNetwork(student.teacher.network)
        student.teacher.network = counter
        student.learn(400)
        runs[teacher_cache] = (counter.n_observations, student)
    n_cached, _ = runs[True]
    n_uncached, uncached_student = runs[False]
    # Stored transitions: at most the 400 steps (200 calls x 2 envs); per batch: every sampled observation
    assert n_cached <= 400
    assert n_uncached == uncached_student._n_updates * uncached_student.batch_size
    assert n_uncached > 4 * n_cached


@pytest.mark.parametrize("n_envs", [1, 2])
def test_cache_on_and_off_train_alike(cartpole_teacher_path, n_envs):
    parameters = []
    for teacher_cache in (True, False):
        # The buffer with values samples the same transitions as SB3's, from the same draws, so training is the same
        env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=4)
        student = DistilledDQN("MlpPolicy", env, teacher=cartpole_teacher_path, teacher_cache=teacher_cache, seed=4,
                               **STUDENT_KWARGS)  # fmt: skip
        student.learn(300)
        parameters.append([parameter.detach().clone() for parameter in student.policy.parameters()])
    for cached, uncached in zip(*parameters, strict=True):
        th.testing.assert_close(cached, uncached, rtol=1e-4, atol=1e-5)


def test_new_transitions_are_evaluated_when_a_batch_first_samples_one(cartpole_teacher_path):
    kwargs = {**STUDENT_KWARGS, "train_freq": 1, "learning_starts": 100, "batch_size": 8}
    student = DistilledDQN("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, seed=0, **kwargs)
    counter = CountingNetwork(student.teacher.network)
    student.teacher.network = counter
    passes = []
    counter.register_forward_hook(lambda module, inputs, output: passes.append(len(output)))
    # Every batch an update draws carries the teacher's values of its own observations
    distillation_terms = student._distillation_terms
    checked = []

    def checking_terms(observations, student_q_values, teacher_q_values=None, **kwargs):
        assert teacher_q_values is not None
        th.testing.assert_close(teacher_q_values, counter.network(observations), rtol=1e-5, atol=1e-5)
        checked.append(len(observations))
        return distillation_terms(observations, student_q_values, teacher_q_values, **kwargs)

    student._distillation_terms = checking_terms
    student.learn(500)
    assert len(checked) == student._n_updates == 400
    # Each stored observation is evaluated at most once, in far fewer passes than updates (one per update before)
    assert counter.n_observations <= 500
    assert len(passes) < student._n_updates / 4
    # Those newer than the last pass are left for the next batch that samples one
    buffer = student.replay_buffer
    assert buffer.n_uncached == 500 - sum(passes) > 0
    assert buffer.teacher is student.teacher
    buffer.update_teacher_values(student.teacher)
    assert counter.n_observations == 500


def test_samples_carry_no_values_until_they_are_computed(cartpole_teacher_path, cartpole_teacher):
    student = DistilledDQN(
        "MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, seed=0, **{**STUDENT_KWARGS, "learning_starts": 500}
    )
    student.learn(100)
    assert student.replay_buffer.n_uncached == 100
    assert student.replay_buffer.sample(8).teacher_q_values is None
    assert student.replay_buffer.update_teacher_values(student.teacher) == 100
    assert student.replay_buffer.sample(8).teacher_q_values is not None
    # A new teacher makes every stored value stale, and the buffer forgets the old one
    student.replay_buffer.teacher = student.teacher
    student.set_teacher(cartpole_teacher)
    assert student.replay_buffer.teacher is None
    assert student.replay_buffer.n_uncached == 100
    assert student.replay_buffer.sample(8).teacher_q_values is None


def test_memory_is_n_actions_floats_per_transition(cartpole_teacher_path):
    student = DistilledDQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), teacher=cartpole_teacher_path, **STUDENT_KWARGS)
    # SB3 splits buffer_size=1000 over the 2 envs
    assert student.replay_buffer.teacher_q_values.shape == (500, 2, 2)
    assert student.replay_buffer.teacher_q_values.dtype == np.float32


def test_cache_off_keeps_sb3_buffer(cartpole_teacher_path):
    student = DistilledDQN("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, teacher_cache=False, **STUDENT_KWARGS)
    assert type(student.replay_buffer) is ReplayBuffer
    assert not student._uses_teacher_values()


def test_vec_normalize_gives_the_teacher_the_raw_stored_observations(cartpole_teacher_path):
    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=1, seed=0))
    student = DistilledDQN("MlpPolicy", env, teacher=cartpole_teacher_path, seed=0, **STUDENT_KWARGS)
    initial = [parameter.detach().clone() for parameter in student.policy.parameters()]
    # What each update was distilled towards: the cached values, not the teacher on the normalized batch
    distillation_terms = student._distillation_terms
    given = []

    def recording_terms(observations, student_q_values, teacher_q_values=None, **kwargs):
        given.append((teacher_q_values, student.teacher.q_values(observations)))
        return distillation_terms(observations, student_q_values, teacher_q_values, **kwargs)

    student._distillation_terms = recording_terms
    student.learn(200)
    assert student._uses_teacher_values()
    assert len(given) == student._n_updates > 0
    assert all(cached is not None for cached, _ in given)
    assert not all(th.allclose(cached, on_normalized) for cached, on_normalized in given)
    assert any(not th.equal(before, after) for before, after in zip(initial, student.policy.parameters(), strict=True))
    # The values the student was distilled towards are the teacher's on the raw observations, not on the normalized ones
    buffer = student.replay_buffer
    buffer.update_teacher_values(student.teacher)  # the transitions stored after the last update
    raw = th.as_tensor(buffer.observations[: buffer.pos, 0])
    stored = th.as_tensor(buffer.teacher_q_values[: buffer.pos, 0])
    # One pass over all of them, against the passes of the cache: float32 matmuls of other batch sizes may differ in the
    # last bits (8.9e-8 seen on this machine's BLAS), while the normalized observations' values differ by far more
    th.testing.assert_close(stored, student.teacher.q_values(raw), rtol=1e-5, atol=1e-6)
    normalized = th.as_tensor(student._vec_normalize_env.normalize_obs(raw.numpy()))
    assert not th.allclose(student.teacher.q_values(normalized), stored)


def test_vec_normalize_without_the_cache_gives_the_teacher_the_raw_sampled_observations(cartpole_teacher_path):
    env = VecNormalize(make_vec_env("CartPole-v1", n_envs=1, seed=0))
    student = DistilledDQN("MlpPolicy", env, teacher=cartpole_teacher_path, teacher_cache=False, **STUDENT_KWARGS)
    student.learn(100)
    assert not student._uses_teacher_values()
    batch = student._sample_replay(16)
    # The student's observations are normalized with its statistics; the teacher's values are of the raw ones
    raw = th.as_tensor(student._vec_normalize_env.unnormalize_obs(batch.observations.numpy()))
    th.testing.assert_close(batch.teacher_q_values, student.teacher.q_values(raw), rtol=1e-4, atol=1e-4)
    assert not th.allclose(batch.teacher_q_values, student.teacher.q_values(batch.observations), atol=1e-3)


def test_her_with_vec_normalize_distills_on_the_raw_relabelled_observations(tmp_path):
    from gymnasium import spaces
    from stable_baselines3 import DQN, HerReplayBuffer
    from stable_baselines3.common.envs import BitFlippingEnv
    from stable_baselines3.common.vec_env import DummyVecEnv

    class BoxBitFlipping(BitFlippingEnv):
        """SB3's goal env with float Box observations, which VecNormalize normalizes."""

        def __init__(self):
            super().__init__(n_bits=4, continuous=False, max_steps=4)
            box = spaces.Box(0.0, 1.0, (4,), np.float32)
            self.observation_space = spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box})

        def _get_obs(self):
            return {key: np.asarray(value, dtype=np.float32) for key, value in super()._get_obs().items()}

    def bit_flipping():
        return BoxBitFlipping()

    her = dict(replay_buffer_class=HerReplayBuffer, replay_buffer_kwargs=dict(n_sampled_goal=2))
    teacher = DQN("MultiInputPolicy", bit_flipping(), learning_starts=20, policy_kwargs=dict(net_arch=[16]), **her)
    teacher.learn(60)
    env = VecNormalize(DummyVecEnv([bit_flipping]), norm_reward=False)
    with warnings.catch_warnings():
        # The default teacher_cache has no effect with HER, and says nothing about it
        warnings.simplefilter("error")
        student = DistilledDQN("MultiInputPolicy", env, teacher=teacher, learning_starts=20, buffer_size=1000,
                               policy_kwargs=dict(net_arch=[8]), seed=0, **her)  # fmt: skip
        student.learn(80)
        # As SB3's own HER tests do: no warning when the buffer is saved and loaded back either
        student.save_replay_buffer(tmp_path / "her_buffer.pkl")
        student.load_replay_buffer(tmp_path / "her_buffer.pkl")
    assert student._n_updates > 0 and not student._uses_teacher_values()
    # The batch is sampled once, raw (relabelled by HER): the teacher's values are of it, the student's observations
    # are it normalized with the student's statistics
    sampled = []
    sample = student.replay_buffer.sample
    student.replay_buffer.sample = lambda *args, **kwargs: sampled.append((kwargs, sample(*args, **kwargs))) or sampled[-1][1]
    batch = student._sample_replay(8)
    ((kwargs, raw),) = sampled
    assert kwargs == {"env": None}
    th.testing.assert_close(batch.teacher_q_values, student.teacher.q_values(raw.observations))
    normalized = env.normalize_obs({key: value.numpy() for key, value in raw.observations.items()})
    for key, value in batch.observations.items():
        np.testing.assert_allclose(value.numpy(), normalized[key], rtol=1e-6)
    # Asked for explicitly, the cache that cannot be warns
    with pytest.warns(UserWarning, match="teacher_cache=True has no effect with HerReplayBuffer"):
        DistilledDQN("MultiInputPolicy", env, teacher=teacher, teacher_cache=True, learning_starts=20, **her)


def test_replay_buffer_saved_by_dqn_gains_values(tmp_path, cartpole_teacher_path):
    dqn = DQN("MlpPolicy", "CartPole-v1", seed=0, **STUDENT_KWARGS)
    dqn.learn(200)
    dqn.save_replay_buffer(tmp_path / "buffer.pkl")
    student = DistilledDQN("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, seed=0, **STUDENT_KWARGS)
    student.load_replay_buffer(tmp_path / "buffer.pkl")
    assert type(student.replay_buffer) is TeacherValuesReplayBuffer
    assert student.replay_buffer.n_uncached == 200
    assert_cached_values_match_the_teacher(student)


def run_without_sb3_distill(code: str, cwd) -> None:
    """Run ``code`` in a fresh Python that imports SB3 but not sb3_distill (and checks that nothing imported it)."""
    code += "\nimport sys\nassert 'sb3_distill' not in sys.modules, 'sb3_distill was imported'\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def multi_env_dict_student(tmp_path):
    DQN("MultiInputPolicy", SimpleMultiObsEnv(), seed=0, **STUDENT_KWARGS).save(tmp_path / "dict_teacher.zip")
    return DistilledDQN("MultiInputPolicy", make_vec_env(SimpleMultiObsEnv, n_envs=2, seed=0),
                        teacher=tmp_path / "dict_teacher.zip", seed=0, **STUDENT_KWARGS)  # fmt: skip


def multi_env_student(teacher_path, **kwargs):
    return DistilledDQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), teacher=teacher_path, seed=0,
                        **{**STUDENT_KWARGS, **kwargs})  # fmt: skip


@pytest.mark.parametrize(
    "make_student, buffer_class",
    [
        (lambda teacher, tmp_path: multi_env_student(teacher), TeacherValuesReplayBuffer),
        (lambda teacher, tmp_path: multi_env_student(teacher, n_steps=3), TeacherValuesNStepReplayBuffer),
        (lambda teacher, tmp_path: multi_env_dict_student(tmp_path), TeacherValuesDictReplayBuffer),
    ],
    ids=["replay", "n_step", "dict"],
)
def test_multi_env_samples_are_sb3s_with_their_own_values(tmp_path, cartpole_teacher_path, make_student, buffer_class):
    student = make_student(cartpole_teacher_path, tmp_path)
    buffer = student.replay_buffer
    assert type(buffer) is buffer_class and buffer.n_envs == 2
    student.learn(300)
    buffer.update_teacher_values(student.teacher)
    sb3_buffer = buffer.sb3_buffer()
    assert type(sb3_buffer) is buffer_class.sb3_class
    for seed in range(3):
        np.random.seed(seed)
        batch = buffer.sample(64)
        state_after_batch = np.random.get_state()
        # SB3's own buffer, from the same draws: the same transitions, and the global generator left as SB3 leaves it
        np.random.seed(seed)
        sb3_batch = sb3_buffer.sample(64)
        sb3_state = np.random.get_state()
        assert state_after_batch[2:] == sb3_state[2:] and np.array_equal(state_after_batch[1], sb3_state[1])
        assert isinstance(batch, TeacherReplayBufferSamples)
        for name in sb3_batch._fields:
            sampled, expected = getattr(batch, name), getattr(sb3_batch, name)
            if isinstance(expected, dict):
                assert all(th.equal(sampled[key], expected[key]) for key in expected)
            elif expected is None:
                assert sampled is None
            else:
                assert th.equal(sampled, expected), name
        # Both envs are in the batch, each sample with its own observation's values
        observations = batch.observations
        assert len(th.unique(next(iter(observations.values())) if isinstance(observations, dict) else observations,
                             dim=0)) > 1  # fmt: skip
        th.testing.assert_close(batch.teacher_q_values, student.teacher.q_values(observations), rtol=1e-6, atol=1e-6)


def test_samples_have_sb3s_fields_and_the_values():
    assert TeacherReplayBufferSamples._fields == (*ReplayBufferSamples._fields, "teacher_q_values")
    # The samples are built positionally from SB3's: its dict samples must have the same fields in the same order
    assert DictReplayBufferSamples._fields == ReplayBufferSamples._fields


@pytest.mark.parametrize(
    "kwargs, sb3_class", [({}, ReplayBuffer), ({"n_steps": 3}, NStepReplayBuffer)], ids=["replay", "n_step"]
)
def test_zip_names_sb3s_buffer_class_and_loads_in_plain_sb3(tmp_path, cartpole_teacher_path, kwargs, sb3_class):
    student = DistilledDQN("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, seed=0, **{**STUDENT_KWARGS, **kwargs})
    assert type(student.replay_buffer) is TEACHER_VALUES_BUFFERS[sb3_class]
    student.learn(100)
    student.save(tmp_path / "student.zip")
    assert student.replay_buffer_class is sb3_class
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        pickled_class = base64.b64decode(json.loads(archive.read("data"))["replay_buffer_class"][":serialized:"])
    assert b"sb3_distill" not in pickled_class and sb3_class.__name__.encode() in pickled_class
    run_without_sb3_distill(
        f"from stable_baselines3 import DQN\nmodel = DQN.load({str(tmp_path / 'student.zip')!r})\n"
        f"assert model.replay_buffer_class.__name__ == {sb3_class.__name__!r}, model.replay_buffer_class\n"
        f"assert type(model.replay_buffer).__name__ == {sb3_class.__name__!r}\n"
        f"assert model.n_steps == {kwargs.get('n_steps', 1)}",
        cwd=tmp_path,
    )
    resumed = DistilledDQN.load(tmp_path / "student.zip", env=make_vec_env("CartPole-v1"), teacher=cartpole_teacher_path)
    assert type(resumed.replay_buffer) is TEACHER_VALUES_BUFFERS[sb3_class]
    assert resumed.replay_buffer_class is sb3_class
    resumed.learn(100)
    assert_cached_values_match_the_teacher(resumed)


def test_saved_replay_buffer_loads_in_plain_sb3_and_regains_values(tmp_path, cartpole_teacher_path):
    student = multi_env_student(cartpole_teacher_path)
    student.learn(200)
    student.save_replay_buffer(tmp_path / "buffer.pkl")
    # The student's own buffer keeps its values
    assert isinstance(student.replay_buffer, TeacherValuesReplayBuffer)
    np.save(tmp_path / "observations.npy", student.replay_buffer.observations)
    run_without_sb3_distill(
        "import numpy as np\nfrom stable_baselines3 import DQN\nfrom stable_baselines3.common.buffers import ReplayBuffer\n"
        "from stable_baselines3.common.env_util import make_vec_env\n"
        "model = DQN('MlpPolicy', make_vec_env('CartPole-v1', n_envs=2), buffer_size=1000)\n"
        "model.load_replay_buffer('buffer.pkl')\n"
        "assert type(model.replay_buffer) is ReplayBuffer, type(model.replay_buffer)\n"
        f"assert model.replay_buffer.size() == {student.replay_buffer.size()}\n"
        "assert not hasattr(model.replay_buffer, 'teacher_q_values')\n"
        "assert np.array_equal(model.replay_buffer.observations, np.load('observations.npy'))\n"
        "model.replay_buffer.sample(8)",
        cwd=tmp_path,
    )
    reloaded = multi_env_student(cartpole_teacher_path)
    reloaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert type(reloaded.replay_buffer) is TeacherValuesReplayBuffer
    assert reloaded.replay_buffer.size() == student.replay_buffer.size() == 100
    # Recomputed before the next update: none is taken from the file
    assert reloaded.replay_buffer.n_uncached == 100
    assert reloaded.replay_buffer.sample(8).teacher_q_values is None
    assert_cached_values_match_the_teacher(reloaded)


def test_other_buffer_classes_warn_when_the_cache_is_asked_for_and_evaluate_per_batch(cartpole_teacher_path):
    class CustomReplayBuffer(ReplayBuffer):
        pass

    with pytest.warns(UserWarning, match="teacher_cache=True has no effect with CustomReplayBuffer"):
        student = DistilledDQN("MlpPolicy", "CartPole-v1", teacher=cartpole_teacher_path, teacher_cache=True,
                               replay_buffer_class=CustomReplayBuffer, **STUDENT_KWARGS)  # fmt: skip
    assert type(student.replay_buffer) is CustomReplayBuffer
    assert student.replay_buffer_class is CustomReplayBuffer
    assert not student._uses_teacher_values()


def test_dict_observations_get_sb3s_dict_buffer_class(tmp_path):
    student = multi_env_dict_student(tmp_path)
    assert type(student.replay_buffer) is TeacherValuesDictReplayBuffer
    assert student.replay_buffer_class is DictReplayBuffer
