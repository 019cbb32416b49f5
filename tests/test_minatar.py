"""MinAtar: the paper's network as a features extractor, the registration of the envs, the configs, the safe loader."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.preprocessing import is_image_space

pytest.importorskip("minatar")

from sb3_distill.config import shipped_teacher
from sb3_distill.dqn import DistilledDQN
from sb3_distill.minatar import MinAtarCNN, MinAtarMissingError
from sb3_distill.recipe import make_recipe
from sb3_distill.common.teacher_zip import read_teacher_zip

ROOT = Path(__file__).resolve().parent.parent
BREAKOUT = "MinAtar/Breakout-v1"
SPACE_INVADERS = "MinAtar/SpaceInvaders-v1"
SEVEN_PERCENT_CONFIG = ROOT / "zoo_configs" / "distilled_dqn_minatar_7pct.yml"
# Enough to take gradient steps within a few hundred env steps
TINY = {"buffer_size": 500, "learning_starts": 50}


def q_net_parameters(model: DQN) -> int:
    return sum(parameter.numel() for parameter in model.q_net.parameters())


def test_the_extractor_is_the_papers_network_on_channel_last_booleans():
    # Not square, so a wrong channel order fails on the shapes
    space = spaces.Box(0, 1, (9, 7, 3), dtype=bool)
    assert not is_image_space(space)  # SB3 neither divides by 255 nor transposes it
    extractor = MinAtarCNN(space, features_dim=20, n_channels=5)
    assert extractor.features_dim == 20
    # conv: 3 * 3 * 3 * 5 weights + 5 biases; linear: (5 * 7 * 5) inputs * 20 + 20 biases
    assert sum(parameter.numel() for parameter in extractor.parameters()) == 3 * 9 * 5 + 5 + 5 * 7 * 5 * 20 + 20
    observations = th.as_tensor(np.stack([space.sample() for _ in range(4)]))
    assert observations.dtype == th.bool
    features = extractor(observations)
    assert features.shape == (4, 20)
    assert features.dtype == th.float32
    assert th.equal(features, extractor(observations.float()))
    # The paper's sizes on Breakout's 10x10x4 observations: 592 + 131,200
    paper = MinAtarCNN(spaces.Box(0, 1, (10, 10, 4), dtype=bool))
    assert sum(parameter.numel() for parameter in paper.parameters()) == 4 * 9 * 16 + 16 + 16 * 8 * 8 * 128 + 128


@pytest.mark.parametrize(
    "space, kwargs, match",
    [
        (spaces.Box(0, 1, (100,), dtype=bool), {}, "channel-last Box"),
        (spaces.Discrete(3), {}, "channel-last Box"),
        (spaces.Box(0, 1, (2, 10, 4), dtype=bool), {}, "smaller than its 3x3 kernel"),
        (spaces.Box(0, 1, (10, 10, 4), dtype=bool), {"n_channels": 0}, "n_channels=0"),
        (spaces.Box(0, 1, (10, 10, 4), dtype=bool), {"features_dim": 12.5}, "features_dim=12.5"),
    ],
)
def test_the_extractor_refuses_what_it_cannot_build(space: spaces.Space, kwargs: dict, match: str):
    with pytest.raises(ValueError, match=match):
        MinAtarCNN(space, **kwargs)


@pytest.mark.parametrize("policy", ["MlpPolicy", "CnnPolicy"])
def test_dqn_policies_take_the_extractor(policy: str):
    model = DQN(policy, gym.make(BREAKOUT), policy_kwargs=dict(features_extractor_class=MinAtarCNN, net_arch=[]))
    assert isinstance(model.q_net.features_extractor, MinAtarCNN)
    assert q_net_parameters(model) == 132_179


def test_importing_the_module_registers_the_envs_for_the_zoos_gym_packages():
    code = (
        "import gymnasium, importlib; importlib.import_module('sb3_distill.minatar'); "
        f"print({BREAKOUT!r} in gymnasium.envs.registry, {SPACE_INVADERS!r} in gymnasium.envs.registry)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["True", "True"]


def test_without_minatar_a_minatar_env_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "minatar", None)  # as if not installed
    monkeypatch.delitem(gym.envs.registry, BREAKOUT)
    with pytest.raises(MinAtarMissingError, match=r"minatar extra: pip install \"sb3_distill\[minatar\]\"") as error:
        make_recipe(BREAKOUT, "dqn")
    assert isinstance(error.value, ValueError)  # the CLI reports it as a one-line error


@pytest.fixture(scope="module")
def breakout_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher with the settings of zoo_configs/dqn.yml, the buffer and start made tiny, trained for 200 steps."""
    recipe = make_recipe(BREAKOUT, "dqn", hyperparams=TINY, n_timesteps=200)
    assert recipe.entry_key == BREAKOUT
    env = recipe.make_env(seed=0)
    teacher = recipe.make_model(env, seed=0)
    assert isinstance(teacher.q_net.features_extractor, MinAtarCNN)  # type: ignore[attr-defined]
    teacher.learn(recipe.n_timesteps)
    assert teacher.num_timesteps == 200 and teacher._n_updates > 0  # type: ignore[attr-defined]
    path = tmp_path_factory.mktemp("minatar") / "breakout_teacher.zip"
    teacher.save(path)
    return path


@pytest.mark.parametrize("conf_file", [None, SEVEN_PERCENT_CONFIG])
def test_a_student_distills_from_a_minatar_teacher_through_the_recipe(breakout_teacher: Path, conf_file: Path | None):
    # The entries' offline phase, made tiny: the teacher acts first, its transitions counted apart from the student's
    offline = {"offline_transitions": 40, "offline_gradient_steps": 40}
    recipe = make_recipe(
        BREAKOUT, conf_file=conf_file, teacher=breakout_teacher, hyperparams={**TINY, **offline}, n_timesteps=200
    )
    student = recipe.make_model(recipe.make_env(seed=0), seed=0)
    assert isinstance(student, DistilledDQN)
    student.learn(recipe.n_timesteps)
    assert student.num_timesteps == 200 and student._n_updates > 0
    assert student.teacher_transitions == 40 and student.offline_done
    assert isinstance(student.q_net.features_extractor, MinAtarCNN)


def test_a_minatar_teacher_loads_safely_with_the_outputs_of_sb3s_loader(breakout_teacher: Path):
    teacher = read_teacher_zip(breakout_teacher)
    reference = DQN.load(breakout_teacher, device="cpu")
    assert isinstance(teacher.policy.q_net.features_extractor, MinAtarCNN)  # type: ignore[attr-defined]
    assert teacher.observation_space == reference.observation_space
    space = reference.observation_space
    space.seed(0)
    observations = th.as_tensor(np.stack([space.sample() for _ in range(16)]))
    with th.no_grad():
        assert th.equal(teacher.policy.q_net(observations), reference.q_net(observations))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "env_id, conf_file, share",
    [
        (BREAKOUT, None, 0.25),
        (SPACE_INVADERS, None, 0.25),
        (BREAKOUT, SEVEN_PERCENT_CONFIG, 0.07),
        (SPACE_INVADERS, SEVEN_PERCENT_CONFIG, 0.07),
    ],
)
def test_configured_students_have_rusus_share_of_their_teachers_parameters(
    breakout_teacher: Path, env_id: str, conf_file: Path | None, share: float
):
    def parameters(algo: str, **kwargs) -> int:
        recipe = make_recipe(env_id, algo, **kwargs)
        env = recipe.make_env(seed=0, n_envs=1)
        return q_net_parameters(DQN(recipe.policy, env, policy_kwargs=recipe.model_kwargs["policy_kwargs"]))

    teacher_parameters = parameters("dqn")
    assert teacher_parameters == {BREAKOUT: 132_179, SPACE_INVADERS: 132_596}[env_id]
    # The path of a teacher that exists: the recipe checks it, the share does not depend on it
    student_parameters = parameters("distilled_dqn", conf_file=conf_file, teacher=breakout_teacher)
    assert student_parameters / teacher_parameters == pytest.approx(share, abs=0.005)


@pytest.mark.parametrize("env_id", [BREAKOUT, SPACE_INVADERS])
def test_the_shipped_teacher_is_the_entrys_teacher_and_loads_safely(env_id: str):
    shipped = shipped_teacher(env_id)
    assert shipped.name == env_id.replace("/", "-") + "_dqn.zip"
    # The student entry names teachers/{env_id}_dqn.zip: the Zoo's file name of the env
    recipe = make_recipe(env_id, hyperparams=TINY, n_timesteps=200)
    assert recipe.teacher is not None and Path(recipe.teacher) == shipped.resolve()
    teacher = read_teacher_zip(shipped)
    env = recipe.make_env(seed=0, n_envs=1)
    assert teacher.observation_space == env.observation_space and teacher.action_space == env.action_space
    assert isinstance(teacher.policy.q_net.features_extractor, MinAtarCNN)  # type: ignore[attr-defined]


def test_distill_names_the_students_features_extractor():
    from sb3_distill.recipe import make_recipe
    from sb3_distill.runs import student_description

    assert student_description(make_recipe("MinAtar/Breakout-v1")) == "MinAtarCNN"
    assert student_description(make_recipe("CartPole-v1")) == "[64]"


@pytest.mark.parametrize("conf_file, offline_steps", [(None, (40_000, 20_000)), (SEVEN_PERCENT_CONFIG, (20_000, 40_000))])
def test_spaceinvaders_student_entry_is_breakouts_with_its_own_offline_gradient_steps(conf_file, offline_steps):
    # SpaceInvaders merges Breakout's entry (YAML "<<"), read as rl_zoo3 reads it
    breakout, space_invaders = (make_recipe(env_id, conf_file=conf_file).model_kwargs for env_id in (BREAKOUT, SPACE_INVADERS))
    assert (breakout["offline_gradient_steps"], space_invaders["offline_gradient_steps"]) == offline_steps
    assert breakout["offline_transitions"] == space_invaders["offline_transitions"] == 20_000
    # Each its own teacher (the entry's path has {env_id})
    assert Path(breakout["teacher"]).name == "MinAtar-Breakout-v1_dqn.zip"
    assert Path(space_invaders["teacher"]).name == "MinAtar-SpaceInvaders-v1_dqn.zip"
    others = set(breakout) - {"offline_gradient_steps", "teacher"}
    assert set(space_invaders) - {"offline_gradient_steps", "teacher"} == others
    assert {key: str(space_invaders[key]) for key in others} == {key: str(breakout[key]) for key in others}
