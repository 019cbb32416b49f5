"""
Checks of a recipe's inputs that rl_zoo3 and SB3 do not make, or make with a message that does not name the value: the
config file (a Zoo-format .yml/.yaml or .py that parses), written values (``lin_<number>`` schedules, ``n_envs``) and
the constructor arguments after the Zoo's preprocessing. They only check: rl_zoo3 reads and preprocesses the entries.
"""

from pathlib import Path
from typing import Any

import yaml

CONFIG_SUFFIXES = (".yml", ".yaml", ".py")
# Constructor arguments of SB3's algorithms that must be positive integers, and those that may also be 0
POSITIVE_INT_ARGS = ("buffer_size", "batch_size", "n_steps", "n_epochs", "target_update_interval", "n_quantiles")
NON_NEGATIVE_INT_ARGS = ("learning_starts",)
# Probabilities and fractions: within [0, 1]
UNIT_INTERVAL_ARGS = ("gamma", "gae_lambda", "tau", "exploration_fraction", "exploration_initial_eps", "exploration_final_eps")


def check_config_file(config: Path) -> None:
    """
    Fail with the file's name unless ``config`` is a Zoo-format config rl_zoo3 can read: a ``.yml``/``.yaml`` file that
    parses to a mapping of entries, or a ``.py`` file that compiles. Only checks: rl_zoo3 reads the entries.
    """
    if not config.exists():
        raise FileNotFoundError(f"Config file {str(config)!r} does not exist (expected a Zoo-format .yml or .py file)")
    if not config.is_file():
        raise IsADirectoryError(f"Config file {str(config)!r} is a folder (expected a Zoo-format .yml or .py file)")
    if config.suffix not in CONFIG_SUFFIXES:
        raise ValueError(f"Config file {str(config)!r}: expected a Zoo-format .yml, .yaml or .py file")
    text = config.read_text()
    if config.suffix == ".py":
        try:
            compile(text, str(config), "exec")
        except SyntaxError as error:
            raise ValueError(f"Config file {str(config)!r} is not valid Python (line {error.lineno}: {error.msg})") from None
        return
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError as error:
        first_line = str(error).strip().splitlines()[0]
        raise ValueError(f"Config file {str(config)!r} is not valid YAML ({first_line})") from None
    if not isinstance(entries, dict) or not all(isinstance(entry, dict) for entry in entries.values()):
        raise ValueError(
            f"Config file {str(config)!r} holds no Zoo entries: expected a mapping of env ids to settings "
            "(CartPole-v1: {n_timesteps: ..., policy: MlpPolicy, ...})"
        )


def check_written_values(hyperparams: dict[str, Any], where: str) -> None:
    """Fail on written values the Zoo would fail on without naming them: ``lin_<number>`` schedules, ``n_envs``."""
    for key, value in hyperparams.items():
        if isinstance(value, str) and value.startswith("lin_"):
            try:
                float(value[len("lin_") :])
            except ValueError:
                raise ValueError(
                    f"{key}={value!r} in {where}: a linear schedule is 'lin_<initial value>', e.g. 'lin_1e-3'"
                ) from None
    n_envs = hyperparams.get("n_envs")
    if n_envs is not None and (isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1):
        raise ValueError(f"n_envs={n_envs!r} in {where}: expected a positive integer")


def check_model_kwargs(model_kwargs: dict[str, Any], n_envs: int, where: str) -> None:
    """
    Fail on constructor arguments SB3 takes without a check and would train with wrongly (a negative buffer size) or
    reject with a message that does not name them (``policy_kwargs`` that is not a dict).
    """
    policy_kwargs = model_kwargs.get("policy_kwargs")
    if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
        raise ValueError(f"policy_kwargs={policy_kwargs!r} in {where}: expected a dict, e.g. dict(net_arch=[64])")
    for key in (*POSITIVE_INT_ARGS, *NON_NEGATIVE_INT_ARGS):
        value = model_kwargs.get(key)
        smallest = 1 if key in POSITIVE_INT_ARGS else 0
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < smallest):
            raise ValueError(f"{key}={value!r} in {where}: expected an integer >= {smallest}")
    for key in UNIT_INTERVAL_ARGS:
        value = model_kwargs.get(key)
        if value is not None and not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
            raise ValueError(f"{key}={value!r} in {where}: expected a number in [0, 1]")
    learning_rate = model_kwargs.get("learning_rate")
    if isinstance(learning_rate, int | float) and not learning_rate > 0:
        raise ValueError(f"learning_rate={learning_rate!r} in {where}: expected a positive number or a schedule")
