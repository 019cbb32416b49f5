"""
What an RL Zoo log folder holds besides the model: the saved hyperparameters (``<env>/config.yml``) and the
observation normalization statistics (``<env>/vecnormalize.pkl``), read without running code from the files
unless the user trusts them.
"""

import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml

from sb3_distill.common.teacher_values import ObservationNormalizer
from sb3_distill.common.vecnormalize_reader import read_vec_normalize

#: The tag PyYAML writes for the OrderedDict of hyperparameters the Zoo dumps into config.yml
ORDERED_DICT_TAG = "tag:yaml.org,2002:python/object/apply:collections.OrderedDict"
VEC_NORMALIZE_FILE = "vecnormalize.pkl"


class ZooConfigLoader(yaml.SafeLoader):
    """
    A ``yaml.SafeLoader`` that also reads the Python tags the Zoo writes into ``config.yml``
    (``!!python/object/apply:collections.OrderedDict``, and ``!!python/tuple`` for tuples given with ``-params``); any
    other Python tag is refused, so reading runs no code.
    """


def _construct_ordered_dict(loader: yaml.SafeLoader, node: yaml.Node) -> "OrderedDict[Any, Any]":
    # PyYAML dumps OrderedDict(pairs) as the sequence of its arguments: [[[key, value], ...]]
    if not isinstance(node, yaml.SequenceNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"expected the arguments of an OrderedDict as a sequence, found {type(node).__name__}", node.start_mark
        )
    arguments = loader.construct_sequence(node, deep=True)
    if len(arguments) > 1:
        raise yaml.constructor.ConstructorError(
            None, None, f"expected one argument (the list of pairs) to OrderedDict, found {len(arguments)}", node.start_mark
        )
    pairs = arguments[0] if arguments else []
    if not isinstance(pairs, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
        raise yaml.constructor.ConstructorError(
            None, None, "expected the OrderedDict's argument to be a list of [key, value] pairs", node.start_mark
        )
    return OrderedDict((key, value) for key, value in pairs)


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> tuple[Any, ...]:
    # A tuple given with the Zoo's -params (train_freq:(4,'step')) is dumped as !!python/tuple: plain values only
    return tuple(loader.construct_sequence(node, deep=True))


ZooConfigLoader.add_constructor(ORDERED_DICT_TAG, _construct_ordered_dict)
ZooConfigLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)


def find_zoo_model(folder: str | os.PathLike) -> Path | None:
    """
    The final model of an RL Zoo log folder (``logs/dqn/CartPole-v1_1/``): the ``<name>.zip`` that has a
    ``<name>/config.yml`` beside it, as ``rl_zoo3 train`` writes them.

    :param folder: The log folder
    :return: The model zip, or None if the folder is not a Zoo log folder
    """
    candidates = [
        zip_file for zip_file in sorted(Path(folder).glob("*.zip")) if (zip_file.with_suffix("") / "config.yml").is_file()
    ]
    return candidates[0] if len(candidates) == 1 else None


def read_zoo_saved_config(folder: str | os.PathLike) -> dict[str, Any]:
    """
    The hyperparameters an RL Zoo run saved in its log folder (``<name>/config.yml``), read with a safe YAML loader
    that accepts the OrderedDict the Zoo writes and no other Python tag.

    :param folder: The log folder
    :return: The saved hyperparameters
    """
    model = find_zoo_model(folder)
    if model is None:
        raise ValueError(f"{str(folder)!r} is not an RL Zoo log folder (expected <env>.zip beside <env>/config.yml)")
    config_file = model.with_suffix("") / "config.yml"
    with open(config_file) as file_handler:
        try:
            config = yaml.load(file_handler, Loader=ZooConfigLoader)  # a SafeLoader subclass
        except yaml.YAMLError as error:
            raise ValueError(
                f"{str(config_file)!r} is not a config.yml as the RL Zoo writes it (a mapping of hyperparameters, with no "
                f"Python tags but !!python/object/apply:collections.OrderedDict); it was not read: {error}"
            ) from error
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{str(config_file)!r} holds a {type(config).__name__}, expected a mapping of hyperparameters")
    return dict(config)


def zoo_stats_folder(model_file: str | os.PathLike) -> Path | None:
    """
    The folder where the Zoo keeps the run's ``config.yml`` and ``vecnormalize.pkl``, for a model zip that is part of
    a Zoo log folder (the final model, ``best_model.zip``, a checkpoint), as ``rl_zoo3 enjoy`` finds them.

    :param model_file: The model zip
    :return: The folder, or None if the zip is not in a Zoo log folder
    """
    zoo_model = find_zoo_model(Path(model_file).parent)
    return zoo_model.with_suffix("") if zoo_model is not None else None


def load_observation_normalizer(model_file: str | os.PathLike, trust: bool = False) -> ObservationNormalizer | None:
    """
    The frozen observation normalization saved beside a Zoo model (``<env>/vecnormalize.pkl``), if any.

    The file is a pickle: by default it is read by :func:`sb3_distill.common.vecnormalize_reader.read_vec_normalize`,
    which runs no code from it and needs no ``gym`` for SB3 1.x files, and takes only the statistics. With ``trust=True``
    SB3's own classes are unpickled, as ``VecNormalize.load`` does.

    :param model_file: The model zip
    :param trust: Whether the folder comes from a source you trust
    :return: The normalization, or None if the run saved no statistics (or normalized no observations)
    """
    stats_folder = zoo_stats_folder(model_file)
    stats_file = stats_folder / VEC_NORMALIZE_FILE if stats_folder is not None else None
    if stats_file is None or not stats_file.is_file():
        return None
    if not trust:
        return read_vec_normalize(stats_file)
    from stable_baselines3.common.vec_env import VecNormalize

    # What VecNormalize.load unpickles, without wrapping an env: only the statistics are kept
    with open(stats_file, "rb") as file_handler:
        vec_normalize = pickle.load(file_handler)  # trusted by the caller
    if not isinstance(vec_normalize, VecNormalize):
        raise ValueError(f"{str(stats_file)!r} holds a {type(vec_normalize).__name__}, expected a saved VecNormalize")
    return ObservationNormalizer.from_vec_normalize(vec_normalize)
