"""
Inference cost of a distilled student against its teacher: predict latency at batch 1, throughput at batch 256,
parameter counts and file sizes. Student and teacher are timed interleaved in one process.

    python benchmarks/inference.py                       # distills a CartPole-v1 student first (about a minute)
    python benchmarks/inference.py --student runs/distill/CartPole-v1_1/student.zip
    python benchmarks/inference.py --smoke
"""

import io
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/inference.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch as th
from stable_baselines3 import DQN

from benchmarks.common import (
    DISTILLED,
    bar_chart,
    base_parser,
    build_agent,
    command_line,
    machine_description,
    write_csv,
    write_json,
)
from sb3_distill.recipe import make_recipe
from sb3_distill.report import count_parameters


def state_dict_bytes(module: th.nn.Module) -> int:
    """Size of a network's weights as ``torch.save`` writes them: what deployment needs."""
    buffer = io.BytesIO()
    th.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def seconds_per_call(model: DQN, observations: np.ndarray, calls: int) -> list[float]:
    timings = []
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(observations, deterministic=True)
        timings.append(time.perf_counter() - start)
    return timings


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], "benchmarks/results/inference")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--student", default=None, help="Student zip (default: distill one with the project's settings)")
    parser.add_argument("--calls", type=int, default=3_000, help="Timed predict calls per batch size (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    args = parser.parse_args()
    th.set_num_threads(args.threads)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    teacher_path = Path(str(make_recipe(args.env).teacher))
    if args.student is None:
        student, budget = build_agent(DISTILLED, args.env, seed=0, overrides={"learning_starts": 50} if args.smoke else None)
        student.learn(300 if args.smoke else budget)
        args.student = output_dir / "student.zip"
        student.save(args.student)
    models = {"teacher": DQN.load(teacher_path, device="cpu"), "student": DQN.load(args.student, device="cpu")}
    calls = 50 if args.smoke else args.calls
    observation_space = models["teacher"].observation_space
    observation_space.seed(0)
    batches = {size: np.stack([observation_space.sample() for _ in range(size)]) for size in (1, 256)}

    timings: dict[tuple[str, int], list[float]] = {(name, size): [] for name in models for size in batches}
    for _ in range(10):  # interleaved chunks: both models see the same machine conditions
        for size, observations in batches.items():
            for name, model in models.items():
                timings[(name, size)] += seconds_per_call(model, observations, calls // 10)

    rows = []
    for name, model in models.items():
        path = teacher_path if name == "teacher" else Path(args.student)
        latency = float(np.median(timings[(name, 1)]))
        throughput = 256 / float(np.median(timings[(name, 256)]))
        rows.append({"model": name, "parameters": count_parameters(model.q_net), "zip_bytes": path.stat().st_size,
                     "weights_bytes": state_dict_bytes(model.q_net), "latency_batch1_us": 1e6 * latency,
                     "throughput_batch256_obs_per_s": throughput})  # fmt: skip
    teacher_row, student_row = rows
    print(f"{args.env}: predict() on CPU with {args.threads} torch thread(s), median of {calls} calls per batch size")
    print(f"{'':<10}{'parameters':>12}{'zip bytes':>12}{'weights bytes':>15}{'latency b=1 (us)':>18}{'obs/s at b=256':>16}")
    for row in rows:
        print(f"{row['model']:<10}{row['parameters']:>12,}{row['zip_bytes']:>12,}{row['weights_bytes']:>15,}"
              f"{row['latency_batch1_us']:>18.1f}{row['throughput_batch256_obs_per_s']:>16,.0f}")  # fmt: skip
    print(f"{'ratio':<10}{student_row['parameters'] / teacher_row['parameters']:>12.2%}"
          f"{student_row['zip_bytes'] / teacher_row['zip_bytes']:>12.2%}"
          f"{student_row['weights_bytes'] / teacher_row['weights_bytes']:>15.2%}"
          f"{student_row['latency_batch1_us'] / teacher_row['latency_batch1_us']:>18.2f}"
          f"{student_row['throughput_batch256_obs_per_s'] / teacher_row['throughput_batch256_obs_per_s']:>16.2f}")  # fmt: skip
    write_csv(rows, output_dir / "inference.csv")
    bar_chart(
        ["parameters", "weights bytes", "latency b=1 (us)", "obs/s at b=256"],
        {row["model"]: [row["parameters"], row["weights_bytes"], row["latency_batch1_us"],
                        row["throughput_batch256_obs_per_s"]]
         for row in rows},
        "value (log scale)",
        output_dir / "inference.png",
        log_scale=True,
    )  # fmt: skip
    write_json({"command": command_line(), "machine": machine_description(), "env_id": args.env, "student": str(args.student),
                "teacher": str(teacher_path), "rows": rows}, output_dir / "inference.json")  # fmt: skip
    print(f"Wrote {output_dir}/inference.csv, inference.json, inference.png")


if __name__ == "__main__":
    main()
