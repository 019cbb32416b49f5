"""The benchmarks' rliable aggregates: the same scores give the same confidence interval."""

import numpy as np
import pytest

from benchmarks.common import iqm_ci, numpy_global_seed


def test_iqm_ci_does_not_depend_on_numpys_global_generator():
    scores = np.array([0.5, 0.6, 0.4, 0.7, 0.55, 0.62, 0.3, 0.9])
    first = iqm_ci(scores)
    # rliable's bootstrap draws from the global generator whatever random_state it gets: drawn from, or reseeded,
    # before another call, the interval must stay the same
    np.random.random(17)
    assert iqm_ci(scores) == first
    np.random.seed(123)
    assert iqm_ci(scores) == first
    iqm, low, high = first
    # IQM of 8 scores: the mean of the middle 4
    assert iqm == pytest.approx(np.mean(np.sort(scores)[2:6]))
    assert low < iqm < high
    # A (runs, tasks) matrix resamples runs within each task
    assert iqm_ci(np.stack([scores, scores], axis=1))[0] == pytest.approx(iqm)


def test_the_global_generator_is_left_as_it_was():
    np.random.seed(7)
    expected = np.random.random(3)
    np.random.seed(7)
    iqm_ci(np.array([0.1, 0.2, 0.3, 0.4]))
    with numpy_global_seed(0):
        np.random.random(5)
    np.testing.assert_array_equal(np.random.random(3), expected)
