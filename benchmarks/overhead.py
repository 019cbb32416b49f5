"""
Overhead of distillation: time per gradient update of DistilledDQN against DQN with the same student network and
settings, with the teacher's values kept in the replay buffer (teacher_cache=True, the default) and computed on
every batch (teacher_cache=False). The three are timed interleaved, round after round, in one process.

Times are CPU seconds of the process with one torch thread. Before each timed ``train()`` call with the cache, the
newest ``train_freq`` transitions of the buffer (what one rollout adds) are marked new, on top of those still new, so
that the updates pay for the teacher's passes over them as in training: one pass when a batch first samples a new
transition. How often a batch includes a new transition depends on how many are stored: the buffer is filled with the
mean number a run of the entry's budget holds over its life (``--fill-steps`` sets another).

    python benchmarks/overhead.py            # prints the table, writes overhead.csv and overhead.png
    python benchmarks/overhead.py --smoke
"""

import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/overhead.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch as th
from stable_baselines3 import DQN

from benchmarks.common import bar_chart, base_parser, command_line, dqn_kwargs, machine_description, write_csv, write_json
from sb3_distill.common.buffers import TeacherValuesMixin
from sb3_distill.recipe import make_recipe

VARIANTS = ("DQN", "DistilledDQN, cache on", "DistilledDQN, cache off")


def mean_stored(n_timesteps: int, buffer_size: int) -> int:
    """The mean number of transitions a replay buffer of ``buffer_size`` holds over a run of ``n_timesteps`` steps."""
    if n_timesteps <= buffer_size:
        return n_timesteps // 2
    # Growing to buffer_size, then full
    return round((buffer_size**2 / 2 + (n_timesteps - buffer_size) * buffer_size) / n_timesteps)


def default_fill_steps(env_id: str) -> int:
    """The mean number of transitions a run of the env's entry stores (its budget, its buffer size)."""
    recipe = make_recipe(env_id)
    return mean_stored(recipe.n_timesteps, recipe.model_kwargs.get("buffer_size", 1_000_000))


def build(
    variant: str, env_id: str, fill_steps: int, net_arch: list[int] | None = None, seed: int = 0
) -> tuple[DQN, int, int, int]:
    """A model of the variant with the env's student settings and a buffer filled without training."""
    # Fill only: updates are called and timed by hand
    recipe = make_recipe(env_id, hyperparams={"learning_starts": fill_steps}, net_arch=net_arch)
    kwargs = recipe.model_kwargs
    env = recipe.make_env(seed, n_envs=1)
    if variant == "DQN":
        # The DQN baseline leaves out DistilledDQN's own arguments
        model: DQN = DQN(env=env, seed=seed, **dqn_kwargs(kwargs))
    else:
        model = recipe.make_model(env, seed=seed, teacher_cache=variant.endswith("on"))
    model.learn(fill_steps)
    gradient_steps = kwargs.get("gradient_steps", 1)
    train_freq = kwargs.get("train_freq", 4)
    # gradient_steps=-1: as many updates as environment steps in the rollout
    return model, gradient_steps if gradient_steps > 0 else train_freq, train_freq, kwargs.get("batch_size", 32)


def time_updates(
    env_id: str, rounds: int, calls_per_round: int, fill_steps: int, net_arch: list[int] | None
) -> dict[str, np.ndarray]:
    """CPU seconds per gradient update of each variant, round by round (the variants take turns within a round)."""
    models = {variant: build(variant, env_id, fill_steps, net_arch) for variant in VARIANTS}
    seconds_per_update: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for round_index in range(rounds):
        # Rotate the order so no variant always runs first (caches, frequency changes)
        order = VARIANTS[round_index % 3 :] + VARIANTS[: round_index % 3]
        for variant in order:
            model, gradient_steps, train_freq, batch_size = models[variant]
            # CPU time of this process (one torch thread): steadier than wall time on a shared machine
            start = time.process_time()
            for _ in range(calls_per_round):
                buffer = model.replay_buffer
                if isinstance(buffer, TeacherValuesMixin):
                    # What a rollout of train_freq steps adds, evaluated when a batch first samples one of them
                    buffer.n_uncached = min(buffer.n_uncached + train_freq, buffer.buffer_size if buffer.full else buffer.pos)
                model.train(gradient_steps=gradient_steps, batch_size=batch_size)
            seconds_per_update[variant].append((time.process_time() - start) / (calls_per_round * gradient_steps))
    return {variant: np.array(values) for variant, values in seconds_per_update.items()}


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/overhead")
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Acrobot-v1", "LunarLander-v3"])
    parser.add_argument("--rounds", type=int, default=40, help="Rounds of timing (default: %(default)s)")
    parser.add_argument(
        "--calls-per-round", type=int, default=5, help="train() calls per variant and round (default: %(default)s)"
    )
    parser.add_argument("--net-arch", type=int, nargs="+", default=None, help="Student hidden layers (default: the config's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument(
        "--fill-steps", type=int, default=None,
        help="Transitions in the buffer (default: the mean number a run of the entry's budget stores)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.smoke:
        args.envs, args.rounds, args.calls_per_round = args.envs[:1], 3, 1
    th.set_num_threads(args.threads)
    rows = []
    print(f"{'env':<16}{'variant':<26}{'ms / update':>12}{'ratio to DQN':>14}{'ratio IQR':>16}")
    for env_id in args.envs:
        fill_steps = 300 if args.smoke else args.fill_steps or default_fill_steps(env_id)
        timings = time_updates(env_id, args.rounds, args.calls_per_round, fill_steps, args.net_arch)
        for variant in VARIANTS:
            # Ratio within each round, then the median over rounds: robust to the machine speeding up or slowing down
            ratios = timings[variant] / timings["DQN"]
            low, high = np.percentile(ratios, [25, 75])
            median_ms = 1e3 * float(np.median(timings[variant]))
            rows.append({"env_id": env_id, "variant": variant, "ms_per_update_median": median_ms,
                         "ratio_to_dqn": float(np.median(ratios)), "ratio_q25": float(low), "ratio_q75": float(high),
                         "rounds": args.rounds, "calls_per_round": args.calls_per_round,
                         "stored_transitions": fill_steps})  # fmt: skip
            print(f"{env_id:<16}{variant:<26}{median_ms:>12.3f}{np.median(ratios):>14.2f}"
                  f"{f'{low:.2f} - {high:.2f}':>16}")  # fmt: skip
    output_dir = Path(args.output_dir)
    write_csv(rows, output_dir / "overhead.csv")
    write_json({"command": command_line(), "machine": machine_description(), "torch_threads": args.threads,
                "net_arch": args.net_arch or "from zoo_configs/distilled_dqn.yml", "rows": rows},
               output_dir / "overhead.json")  # fmt: skip
    env_ids = list(dict.fromkeys(row["env_id"] for row in rows))
    bar_chart(
        env_ids,
        {variant: [row["ms_per_update_median"] for row in rows if row["variant"] == variant] for variant in VARIANTS},
        "CPU ms per gradient update (median)",
        output_dir / "overhead.png",
    )
    print(f"Wrote {output_dir}/overhead.csv, overhead.json, overhead.png")


if __name__ == "__main__":
    main()
