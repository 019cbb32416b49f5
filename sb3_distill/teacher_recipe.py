"""
A student's recipe from its teacher, for envs without an entry of their own: what ``zoo_configs/distilled_dqn.yml``'s
``default`` entry asks for with two keys of this project's (read and removed before rl_zoo3 preprocesses the entry).

- ``teacher_settings: true``: the DQN hyperparameters the teacher's zip records of its own training (gamma, learning
  rate, batch size, buffer size, target update interval, train frequency, gradient steps, exploration), where neither
  the entry nor ``-params`` sets them; and a budget, ``budget_share`` of the teacher's own steps. Only a DQN or QR-DQN
  teacher records a DQN's settings: for another teacher the entry's values (SB3's defaults) stay, and the run says so.
- ``student_share: 0.05``: the student's hidden layers sized from the teacher, the widest layers of the teacher's
  depth (for an MLP student) whose Q-network has at most that share of the teacher's acting parameters.

The zip is read as JSON (:func:`sb3_distill.common.teacher_zip.read_zip_data`): nothing in it is unpickled; the train
frequency, which SB3 stores pickled, is read from the pickle's opcodes without running it.
"""

import base64
import pickletools
from typing import Any

import gymnasium as gym
from stable_baselines3.common.preprocessing import is_image_space

from sb3_distill.common.teacher import load_teacher, resolve_model_path
from sb3_distill.common.teacher_zip import read_zip_data

#: The hyperparameters ``teacher_settings`` takes from a DQN-family teacher's zip
TEACHER_SETTINGS = (
    "gamma",
    "learning_rate",
    "batch_size",
    "buffer_size",
    "target_update_interval",
    "train_freq",
    "gradient_steps",
    "exploration_fraction",
    "exploration_initial_eps",
    "exploration_final_eps",
)
#: Teachers whose zips record a DQN's settings
DQN_FAMILY = ("DQN", "QRDQN", "DistilledDQN", "DistilledQRDQN")
#: The student's budget: this share of the teacher's own training steps, at least MIN_BUDGET
DEFAULT_BUDGET_SHARE = 0.2
MIN_BUDGET = 10_000
#: The keys read and removed here
RECIPE_KEYS = ("teacher_settings", "student_share", "budget_share")


def _type_of(record: Any) -> Any:
    return record.get(":type:") if isinstance(record, dict) else None


def _pickle_operations(record: Any) -> list[tuple[Any, Any, Any]] | None:
    """The opcodes of an object SB3 pickled into its zip's JSON (``:serialized:``), read, not run; None if unreadable."""
    if not isinstance(record, dict) or not isinstance(record.get(":serialized:"), str):
        return None
    try:
        return list(pickletools.genops(base64.b64decode(record[":serialized:"])))
    except (ValueError, TypeError):
        return None


def recorded_train_freq(record: Any) -> int | list[Any] | None:
    """
    The train frequency of SB3's zip, ``TrainFreq(frequency, unit)`` pickled in its JSON, read from the pickle's opcodes
    (nothing is run): ``256``, or ``[1, "episode"]``; None where it cannot be read.
    """
    if isinstance(record, int) and not isinstance(record, bool):
        return record
    operations = _pickle_operations(record)
    if operations is None:
        return None
    numbers = [arg for op, arg, _ in operations if op.name.startswith(("BININT", "LONG", "INT")) and isinstance(arg, int)]
    strings = {arg for _, arg, _ in operations if isinstance(arg, str)}
    if not numbers or not numbers[0] > 0:
        return None
    return numbers[0] if "episode" not in strings else [numbers[0], "episode"]


def recorded_constant(record: Any) -> float | None:
    """
    A constant learning rate of SB3's zip: a number, or a ``ConstantSchedule`` pickled in its JSON (SB3 2.x, the Zoo's
    runs), read from the pickle's opcodes (nothing is run); None for any other schedule.
    """
    if isinstance(record, int | float) and not isinstance(record, bool):
        return float(record)
    operations = _pickle_operations(record) if "ConstantSchedule" in str(_type_of(record)) else None
    if operations is None:
        return None
    floats = [arg for op, arg, _ in operations if op.name in ("BINFLOAT", "FLOAT") and isinstance(arg, float)]
    return floats[0] if len(floats) == 1 else None


def teacher_training_settings(teacher: str) -> tuple[dict[str, Any], int, str]:
    """
    What a teacher's zip records of its own training.

    :param teacher: The teacher's zip or Zoo log folder
    :return: (the DQN settings of :data:`TEACHER_SETTINGS` it records, empty for a teacher of another family; its
        training steps; its algorithm's name)
    """
    return _training_settings(read_zip_data(resolve_model_path(teacher)))


def _training_settings(data: dict[str, Any]) -> tuple[dict[str, Any], int, str]:
    """:func:`teacher_training_settings` of a zip's ``data`` JSON, already read."""
    module = str((data.get("policy_class") or {}).get("__module__", ""))
    algorithm = "QRDQN" if "qrdqn" in module else "DQN" if module.endswith("dqn.policies") else module or "unknown"
    settings: dict[str, Any] = {}
    if algorithm in DQN_FAMILY:
        for key in TEACHER_SETTINGS:
            value = PICKLED_READERS[key](data.get(key)) if key in PICKLED_READERS else data.get(key)
            if isinstance(value, int | float | list) and not isinstance(value, bool):
                settings[key] = value
    return settings, int(data.get("num_timesteps", 0) or 0), algorithm


#: The settings SB3 stores pickled, with their readers
PICKLED_READERS = {"train_freq": recorded_train_freq, "learning_rate": recorded_constant}


def mlp_q_parameters(n_inputs: int, hidden: list[int], n_outputs: int) -> int:
    """Parameters of an MLP Q-network: weights and biases of each layer."""
    sizes = [n_inputs, *hidden, n_outputs]
    return sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))


def sized_net_arch(share: float, teacher_parameters: int, n_inputs: int, n_actions: int, depth: int) -> list[int]:
    """
    The widest ``depth`` equal hidden layers whose Q-network has at most ``share`` of the teacher's parameters (at
    least 1 unit per layer).
    """
    budget = share * teacher_parameters
    width = 1
    while mlp_q_parameters(n_inputs, [width + 1] * depth, n_actions) <= budget:
        width += 1
    return [width] * depth


def apply_teacher_recipe(
    hyperparams: dict[str, Any], written: set[str], env_id: str, teacher: str, trust: bool = False
) -> list[str]:
    """
    Fill a student entry from its teacher (``teacher_settings``, ``student_share``, ``budget_share``), in place.

    :param hyperparams: The entry with ``-params``, as rl_zoo3 read it, with the teacher resolved
    :param written: The keys ``-params`` gives: never replaced
    :param env_id: The env
    :param teacher: The resolved teacher path
    :param trust: Whether the teacher may be loaded with SB3's own loader
    :return: What was done, one line each, for the run to print
    """
    options = {key: hyperparams.pop(key) for key in RECIPE_KEYS if key in hyperparams}
    if not options:
        return []
    notes: list[str] = []
    for key, value in options.items():
        valid = isinstance(value, bool) if key == "teacher_settings" else isinstance(value, int | float) and 0 < value <= 1
        if not valid:
            expected = "true or false" if key == "teacher_settings" else "a share in (0, 1]"
            raise ValueError(f"{key}={value!r}: expected {expected}")
    data = read_zip_data(resolve_model_path(teacher))
    if options.get("teacher_settings"):
        settings, teacher_steps, algorithm = _training_settings(data)
        taken = {key: value for key, value in settings.items() if key not in written}
        hyperparams.update(taken)
        if taken:
            notes.append(f"from the {algorithm} teacher's zip: {', '.join(f'{k}={v}' for k, v in taken.items())}")
        else:
            notes.append(f"the {algorithm} teacher's zip records no DQN settings: the entry's (SB3's defaults) stay")
        if "n_timesteps" not in written and teacher_steps > 0:
            budget_share = float(options.get("budget_share", DEFAULT_BUDGET_SHARE))
            hyperparams["n_timesteps"] = max(MIN_BUDGET, int(round(budget_share * teacher_steps, -3)))
            notes.append(f"n_timesteps={hyperparams['n_timesteps']:,}: {budget_share:g} of the teacher's {teacher_steps:,}")
    share = options.get("student_share")
    if share is not None and "policy_kwargs" not in written:
        env = gym.make(env_id)
        try:
            observation_space, action_space = env.observation_space, env.action_space
        finally:
            env.close()
        images = is_image_space(observation_space) if isinstance(observation_space, gym.spaces.Box) else True
        if not isinstance(action_space, gym.spaces.Discrete) or images:
            notes.append("student_share sizes MLP students of Discrete actions only: the entry's network stays")
            return notes
        loaded = load_teacher(teacher, observation_space, action_space, trust=trust)
        depth = max(len(_teacher_hidden_layers(data)), 1)
        net_arch = sized_net_arch(
            float(share), loaded.num_parameters(), gym.spaces.flatdim(observation_space), int(action_space.n), depth
        )
        hyperparams["policy_kwargs"] = f"dict(net_arch={net_arch})"
        student = mlp_q_parameters(gym.spaces.flatdim(observation_space), net_arch, int(action_space.n))
        notes.append(
            f"student {net_arch}: {student:,} parameters, {student / loaded.num_parameters():.2%} of the teacher's "
            f"{loaded.num_parameters():,} (student_share {share:g})"
        )
    return notes


def _teacher_hidden_layers(data: dict[str, Any]) -> list[int]:
    """The teacher's hidden layers as its zip's ``data`` records them (``policy_kwargs['net_arch']``); else SB3's [64, 64]."""
    net_arch = (data.get("policy_kwargs") or {}).get("net_arch") if isinstance(data.get("policy_kwargs"), dict) else None
    if isinstance(net_arch, dict):  # actor-critic teachers: {"pi": [...], "vf": [...]}
        net_arch = net_arch.get("pi") or net_arch.get("qf")
    if isinstance(net_arch, list) and all(isinstance(size, int) for size in net_arch):
        return net_arch
    return [64, 64]
