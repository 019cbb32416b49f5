"""
Per-update cost of every student: CPU time of one update of each distilled student against its plain algorithm, with
the same student network and settings (the student's config entry; the plain algorithm gets the same arguments less
the distillation ones). Issue #22's target: at most 1.15x. The pairs, timed interleaved round after round in one
process (the order rotates each round), CPU seconds of the process with one torch thread:

- DQN, QR-DQN (CartPole-v1, shipped DQN teacher), SAC, TD3 (Pendulum-v1, shipped SAC teacher): one update is one
  gradient step, timed as ``model.train(gradient_steps, batch_size)`` calls of the entry's ``gradient_steps``. The replay
  buffer is first filled without training (``learning_starts`` set to the fill size) with the mean number of
  transitions a run of the entry's budget stores; the students keep the teacher's values in it (``teacher_cache``, the
  default), and before each timed call the newest ``train_freq`` transitions (what one rollout adds) are marked new, on
  top of those still new, so that the updates pay the teacher's passes over them as in training (one batched pass when
  a batch first samples a new transition), as benchmarks/overhead.py does.
- PPO (CartPole-v1, shipped DQN teacher): one update is a whole ``train()`` call over a collected rollout (``n_epochs``
  passes of its minibatches). Before each timed call a fresh rollout is collected, untimed, by each model
  (``collect_rollouts``, as ``learn()`` does). The distilled student's timing is ``_prepare_teacher_values()`` (the
  teacher's one batched pass over the whole rollout, ``TeacherValuesRolloutBuffer.compute_teacher_values``, which
  ``train()`` otherwise runs at its start) plus ``train()``; the teacher pass is also reported on its own.

Rollout collection (environment steps, the student acting) is never timed: it costs the same with or without a teacher.

    python benchmarks/student_overhead.py            # prints the table, writes student_overhead.{csv,json,png}
    python benchmarks/student_overhead.py --smoke
"""

import argparse
import contextlib
import inspect
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/student_overhead.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from benchmarks.common import bar_chart, base_parser, command_line, machine_description, write_csv, write_json
from benchmarks.overhead import mean_stored
from sb3_distill.algorithms import PLAIN_CLASSES, STUDENT_ALGOS
from sb3_distill.common.buffers import TeacherValuesMixin
from sb3_distill.recipe import Recipe, make_recipe

ROOT = Path(__file__).resolve().parent.parent
#: Issue #22's bound on a student's time per update over its plain algorithm's
TARGET_RATIO = 1.15


@dataclass(frozen=True)
class Family:
    """One student and the env its entry is timed on."""

    algo: str
    env_id: str
    #: train() calls per variant and round in the full run (a few tens of ms of work per variant and round)
    calls_per_round: int


FAMILIES = (
    # 128 gradient steps per train() call (train_freq 256)
    Family("distilled_dqn", "CartPole-v1", 2),
    Family("distilled_qrdqn", "CartPole-v1", 2),
    # One train() call: 20 epochs over a rollout of 8 x 32 steps
    Family("distilled_ppo", "CartPole-v1", 4),
    # One gradient step per call (train_freq 1); an even number of calls for TD3's actor updates, every second step
    Family("distilled_sac", "Pendulum-v1", 40),
    Family("distilled_td3", "Pendulum-v1", 40),
)


def plain_kwargs(algo: str, model_kwargs: dict[str, Any]) -> dict[str, Any]:
    """A student's constructor arguments without its own (teacher, alpha, offline phase...): its plain algorithm's."""
    student, plain = STUDENT_ALGOS[algo], PLAIN_CLASSES[algo]
    own = set(inspect.signature(student).parameters) - set(inspect.signature(plain).parameters)
    return {key: value for key, value in model_kwargs.items() if key not in own}


def default_fill_steps(recipe: Recipe) -> int | None:
    """The mean number of transitions a run of the entry's budget stores in its replay buffer (None: no replay buffer)."""
    if "buffer_size" not in inspect.signature(STUDENT_ALGOS[recipe.algo]).parameters:
        return None
    default_size = inspect.signature(STUDENT_ALGOS[recipe.algo]).parameters["buffer_size"].default
    return mean_stored(recipe.n_timesteps, recipe.model_kwargs.get("buffer_size", default_size))


def shown_path(path: str | None) -> str | None:
    """A teacher's path relative to the repository (as the package names it), not this machine's."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


class Timed:
    """A model of one variant, ready for timed updates."""

    def __init__(self, family: Family, distilled: bool, fill_steps: int | None, seed: int = 0):
        self.distilled = distilled
        self.on_policy = family.algo == "distilled_ppo"
        # Off-policy: fill only, updates are called and timed by hand
        recipe = make_recipe(
            family.env_id, family.algo, hyperparams=None if self.on_policy else {"learning_starts": fill_steps}
        )
        self.recipe = recipe
        env = recipe.make_env(seed)
        # The Zoo prints the action noise it makes (TD3)
        with contextlib.redirect_stdout(io.StringIO()):
            if distilled:
                self.model: BaseAlgorithm = recipe.make_model(env, seed=seed)
            else:
                # The Zoo turns noise_type/noise_std into an action noise object, as Recipe.make_model does
                kwargs = recipe.manager._preprocess_action_noise(dict(recipe.model_kwargs), {}, env)
                self.model = PLAIN_CLASSES[family.algo](env=env, seed=seed, **plain_kwargs(family.algo, kwargs))
        self.teacher_pass_seconds: list[float] = []
        if self.on_policy:
            assert isinstance(self.model, OnPolicyAlgorithm)
            # The logger, the env reset and the callback learn() sets up; rollouts are collected by hand
            _, self.callback = self.model._setup_learn(10**9, None)
            self.stored = self.model.n_steps * self.model.n_envs
            self.updates_per_call = 1
        else:
            assert fill_steps is not None, "an off-policy model's replay buffer is filled first"
            model: Any = self.model
            model.learn(fill_steps)
            self.stored = fill_steps
            self.train_freq = model.train_freq.frequency
            # gradient_steps=-1: as many updates as environment steps in the rollout
            self.updates_per_call = model.gradient_steps if model.gradient_steps > 0 else self.train_freq * model.n_envs
            self.batch_size = model.batch_size

    def seconds_per_update(self, calls: int) -> float:
        """CPU seconds per update over ``calls`` timed calls (preparing each, untimed, as training would)."""
        model: Any = self.model
        total = 0.0
        for _ in range(calls):
            if self.on_policy:
                assert isinstance(self.callback, BaseCallback)
                model.collect_rollouts(model.env, self.callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
                start = time.process_time()
                if self.distilled:
                    # The teacher's pass over the rollout, which train() would otherwise start with
                    model._prepare_teacher_values()
                    self.teacher_pass_seconds.append(time.process_time() - start)
                model.train()
                total += time.process_time() - start
            else:
                buffer = model.replay_buffer
                if isinstance(buffer, TeacherValuesMixin):
                    # What a rollout of train_freq steps adds, evaluated when a batch first samples one of them
                    stored = buffer.buffer_size if buffer.full else buffer.pos
                    buffer.n_uncached = min(buffer.n_uncached + self.train_freq, stored)
                # CPU time of this process (one torch thread): steadier than wall time on a shared machine
                start = time.process_time()
                model.train(gradient_steps=self.updates_per_call, batch_size=self.batch_size)
                total += time.process_time() - start
        return total / (calls * self.updates_per_call)

    def teacher(self) -> str:
        """The student's teacher: its file and kind."""
        teacher: Any = getattr(self.model, "teacher", None)
        return f"{shown_path(self.recipe.teacher)} ({teacher.algorithm}, {teacher.kind})"

    def update_unit(self) -> str:
        model: Any = self.model
        if self.on_policy:
            minibatches = -(-self.stored // model.batch_size)
            return f"train() call: {model.n_epochs} epochs x {minibatches} minibatch(es) of {model.batch_size}"
        return f"gradient step, batch {self.batch_size}"


def time_family(family: Family, rounds: int, calls_per_round: int, fill_steps: int | None = None) -> list[dict[str, Any]]:
    """The family's two rows: the plain algorithm and the distilled student, timed interleaved."""
    plain_name = PLAIN_CLASSES[family.algo].__name__
    student_name = STUDENT_ALGOS[family.algo].__name__
    if fill_steps is None:
        fill_steps = default_fill_steps(make_recipe(family.env_id, family.algo))
    variants = {plain_name: Timed(family, False, fill_steps), student_name: Timed(family, True, fill_steps)}
    names = list(variants)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        # Alternate which variant runs first (caches, frequency changes)
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            seconds[name].append(variants[name].seconds_per_update(calls_per_round))
    timings = {name: np.array(values) for name, values in seconds.items()}
    student = variants[student_name]
    rows = []
    for name in names:
        # Ratio within each round, then the median over rounds: robust to the machine speeding up or slowing down
        ratios = timings[name] / timings[plain_name]
        low, high = np.percentile(ratios, [25, 75])
        teacher_pass = variants[name].teacher_pass_seconds
        rows.append({
            "student": student_name, "env_id": family.env_id, "variant": name, "teacher": student.teacher(),
            "update": variants[name].update_unit(),
            "ms_per_update_median": 1e3 * float(np.median(timings[name])),
            "ratio_to_plain": float(np.median(ratios)), "ratio_q25": float(low), "ratio_q75": float(high),
            "teacher_pass_ms_median": 1e3 * float(np.median(teacher_pass)) if teacher_pass else None,
            "within_target": bool(np.median(ratios) <= TARGET_RATIO),
            "rounds": rounds, "calls_per_round": calls_per_round, "updates_per_call": variants[name].updates_per_call,
            "stored_transitions": variants[name].stored,
        })  # fmt: skip
    return rows


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/student_overhead")
    # -o: short for --output-dir (the same destination; its default stays --output-dir's)
    parser.add_argument("-o", dest="output_dir", default=argparse.SUPPRESS, help="Same as --output-dir")
    parser.add_argument(
        "--students", nargs="+", default=[family.algo for family in FAMILIES],
        choices=[family.algo for family in FAMILIES], help="Students to time (default: all)",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=100, help="Rounds of timing (default: %(default)s)")
    parser.add_argument(
        "--calls-scale", type=float, default=1.0,
        help="Multiplies each student's train() calls per variant and round (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = parser.parse_args()
    if args.smoke:
        args.rounds = 3
    th.set_num_threads(args.threads)
    rows = []
    header = f"{'student':<16}{'variant':<16}{'ms / update':>12}{'ratio':>8}{'ratio IQR':>14}{'<= 1.15x':>10}  update"
    print(header)
    for family in FAMILIES:
        if family.algo not in args.students:
            continue
        calls = 1 if args.smoke else max(1, round(family.calls_per_round * args.calls_scale))
        family_rows = time_family(family, args.rounds, calls, 300 if args.smoke else None)
        rows.extend(family_rows)
        for row in family_rows:
            within = "" if row["variant"] != row["student"] else ("yes" if row["within_target"] else "no")
            quartiles = f"{row['ratio_q25']:.2f} - {row['ratio_q75']:.2f}"
            print(f"{row['student']:<16}{row['variant']:<16}{row['ms_per_update_median']:>12.3f}"
                  f"{row['ratio_to_plain']:>8.2f}{quartiles:>14}"
                  f"{within:>10}  {row['update']}", flush=True)  # fmt: skip
            if row["teacher_pass_ms_median"] is not None:
                print(f"{'':<16}(of which the teacher's pass over the rollout: {row['teacher_pass_ms_median']:.3f} ms)")
    output_dir = Path(args.output_dir)
    write_csv(rows, output_dir / "student_overhead.csv")
    write_json({"command": command_line(), "machine": machine_description(), "torch_threads": args.threads,
                "target_ratio": TARGET_RATIO, "timed": __doc__.split("\n\n")[1], "rows": rows},
               output_dir / "student_overhead.json")  # fmt: skip
    students = list(dict.fromkeys(row["student"] for row in rows))
    bar_chart(
        [f"{student}\n{rows[2 * index]['env_id']}" for index, student in enumerate(students)],
        {
            "plain algorithm": [row["ms_per_update_median"] for row in rows if row["variant"] != row["student"]],
            "distilled student": [row["ms_per_update_median"] for row in rows if row["variant"] == row["student"]],
        },
        "CPU ms per update (median, log scale)",
        output_dir / "student_overhead.png",
        log_scale=True,
    )
    print(f"Wrote {output_dir}/student_overhead.csv, student_overhead.json, student_overhead.png")


if __name__ == "__main__":
    main()
