"""The learning-curve plot: writes a PNG and leaves the caller's matplotlib backend alone."""

from pathlib import Path

import matplotlib
import numpy as np

from sb3_distill.report import plot_learning_curve

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_evaluations(path: Path, n_evals: int = 4, n_episodes: int = 3) -> Path:
    """An ``evaluations.npz`` with the keys and shapes SB3's ``EvalCallback`` writes."""
    rng = np.random.default_rng(0)
    np.savez(
        path,
        timesteps=np.arange(1, n_evals + 1) * 1_000,
        results=rng.uniform(10.0, 500.0, size=(n_evals, n_episodes)),
        ep_lengths=rng.integers(10, 500, size=(n_evals, n_episodes)),
    )
    return path


def test_plot_learning_curve_writes_a_png_and_keeps_the_backend(tmp_path):
    evaluations_file = write_evaluations(tmp_path / "evaluations.npz")
    output_file = tmp_path / "learning_curve.png"
    previous_backend = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        written = plot_learning_curve(evaluations_file, teacher_return=500.0, output_file=output_file, title="CartPole-v1")
        backend_after = matplotlib.get_backend()
    finally:
        matplotlib.use(previous_backend)
    assert backend_after == "svg"
    assert written == output_file
    content = output_file.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    # A 600x400 plot with lines, a band and a legend is several kB; an empty or truncated file is not
    assert len(content) > 5_000
