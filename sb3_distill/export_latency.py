"""Latency of a network's runtimes (SB3 ``predict``, torch, TorchScript, onnxruntime): timing and the printed table."""

import time
from collections.abc import Callable
from typing import Any

import numpy as np

# Batch sizes of the latency table: one observation (acting in an env), and a batch (serving many at once)
BATCH_SIZES = (1, 256)


def median_latency(
    runs: dict[str, dict[int, Callable[[], Any]]], repeats: int, warmup: int = 5, chunks: int = 10
) -> dict[str, dict[int, float]]:
    """
    Median seconds per call of each runtime at each batch size, the runtimes timed interleaved in chunks so that
    all of them see the same machine conditions.

    :param runs: Runtime name -> batch size -> a call that runs the network once on a batch of that size
    :param repeats: Timed calls per runtime at batch size 1; a quarter of them (at least 1) at the larger batch sizes
    :param warmup: Untimed calls first (first calls allocate, and onnxruntime plans its execution)
    :param chunks: Rounds the timed calls are split into
    :return: Runtime name -> batch size -> median seconds per call
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats!r}, expected a positive number of timed calls")
    timings: dict[str, dict[int, list[float]]] = {name: {size: [] for size in calls} for name, calls in runs.items()}
    for calls in runs.values():
        for call in calls.values():
            for _ in range(warmup):
                call()
    for chunk in range(chunks):
        for name, calls in runs.items():
            for size, call in calls.items():
                total = repeats if size == 1 else max(repeats // 4, 1)
                # Spread the calls over the chunks, each chunk at least one call until the total is reached
                for _ in range(total * (chunk + 1) // chunks - total * chunk // chunks):
                    start = time.perf_counter()
                    call()
                    timings[name][size].append(time.perf_counter() - start)
    return {name: {size: float(np.median(times)) for size, times in sizes.items()} for name, sizes in timings.items()}


def latency_table(latency: dict[str, dict[int, float]], threads: int, repeats: int) -> str:
    """
    The latency table printed by an export: one row per runtime, median microseconds per call at each batch size.

    :param latency: What :func:`median_latency` returns
    :param threads: The threads torch and onnxruntime ran with
    :param repeats: The timed calls at batch size 1
    """
    sizes = sorted({size for sizes in latency.values() for size in sizes})
    header = f"{'runtime':<16}" + "".join(f"{f'batch {size} (us)':>16}" for size in sizes)
    if max(sizes) > 1:
        header += f"{f'obs/s at b={max(sizes)}':>16}"
    rows = []
    for name, seconds in latency.items():
        row = f"{name:<16}" + "".join(f"{1e6 * seconds[size]:>16.1f}" for size in sizes)
        if max(sizes) > 1:
            row += f"{max(sizes) / seconds[max(sizes)]:>16,.0f}"
        rows.append(row)
    title = (
        f"Latency on CPU, {threads} thread(s), median of {repeats} calls at batch 1 and "
        f"{max(repeats // 4, 1)} at larger batches (SB3 predict includes its numpy conversion and post-processing):"
    )
    return "\n".join([title, header, *rows])
