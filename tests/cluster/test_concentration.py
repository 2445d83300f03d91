"""Concentration phi (PCL, Eq. 2) against hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cluster import concentration


def test_matches_hand_computation_with_singleton_empty_clipping_and_rescaling():
    # cluster 0: distances 1, 3        -> Z=2, phi = 4 / (2 log 12) = 2 / log 12
    # cluster 1: one member at 5       -> no spread: takes the max over Z >= 2, i.e. 2 / log 12
    # cluster 2: distances 2, 2, 2     -> Z=3, phi = 6 / (3 log 13) = 2 / log 13
    # cluster 3: distances 0.5 x 4     -> Z=4, phi = 2 / (4 log 14) = 0.5 / log 14
    # cluster 4: empty                 -> takes the max, 2 / log 12
    distances = np.array([1, 3, 5, 2, 2, 2, 0.5, 0.5, 0.5, 0.5])
    assignments = np.array([0, 0, 1, 2, 2, 2, 3, 3, 3, 3])
    a, b, c = 2 / math.log(12), 2 / math.log(13), 0.5 / math.log(14)
    # sorted raw phi: [c, b, a, a, a]; np.percentile's linear rule puts the 10th percentile at
    # position 0.1 * 4 = 0.4 (between c and b) and the 90th at 3.6 (between a and a).
    low, high = c + 0.4 * (b - c), a
    clipped = np.array([a, a, b, max(c, low), a])
    assert low > c and high == a  # only cluster 3 is clipped
    expected = clipped * 0.2 / clipped.mean()

    phi = concentration(distances, assignments, num_clusters=5, mean=0.2)

    assert phi.dtype == np.float32 and phi.shape == (5,)
    np.testing.assert_allclose(phi, expected, rtol=1e-6)
    assert phi.mean() == pytest.approx(0.2, rel=1e-6)


def test_clipping_at_the_top():
    # Ten clusters of two members each; one is far looser than the rest and is clipped to the
    # 90th percentile, which lies 0.1 of the way from the second largest to the largest.
    distances = np.ones(20)
    distances[18:] = 10.0
    assignments = np.repeat(np.arange(10), 2)
    phi = concentration(distances, assignments, 10, mean=1.0)
    base, loose = 2 / (2 * math.log(12)), 20 / (2 * math.log(12))
    raw = np.array([base] * 9 + [base + 0.1 * (loose - base)])
    np.testing.assert_allclose(phi, raw / raw.mean(), rtol=1e-6)


def test_no_cluster_with_two_members_gives_the_mean():
    phi = concentration(np.array([0.3, 0.7]), np.array([0, 2]), num_clusters=4, mean=0.1)
    np.testing.assert_array_equal(phi, np.full(4, 0.1, dtype=np.float32))


def test_zero_spread_gives_the_mean():
    phi = concentration(np.zeros(6), np.array([0, 0, 1, 1, 1, 2]), num_clusters=3, mean=0.5)
    np.testing.assert_array_equal(phi, np.full(3, 0.5, dtype=np.float32))


def test_scale_invariant_and_mean_is_respected(rng):
    distances = rng.uniform(0, 2, size=500)
    assignments = rng.integers(0, 40, size=500)
    phi = concentration(distances, assignments, 40, mean=0.2)
    np.testing.assert_allclose(concentration(7 * distances, assignments, 40, 0.2), phi, rtol=1e-5)
    assert phi.mean() == pytest.approx(0.2, rel=1e-5)
    assert (phi > 0).all()


@pytest.mark.parametrize(
    ("distances", "assignments", "k", "mean", "match"),
    [
        (np.ones((2, 2)), np.zeros(4, int), 2, 0.2, "1-D of equal length"),
        (np.ones(3), np.zeros(2, int), 2, 0.2, "1-D of equal length"),
        (np.ones(2), np.zeros(2), 2, 0.2, "assignments must be integers"),
        (np.ones(2), np.array([0, 2]), 2, 0.2, r"assignments must lie in \[0, 2\)"),
        (np.ones(2), np.array([0, -1]), 2, 0.2, "assignments must lie"),
        (np.array([1.0, -1.0]), np.zeros(2, int), 2, 0.2, "finite and non-negative"),
        (np.array([1.0, np.nan]), np.zeros(2, int), 2, 0.2, "finite and non-negative"),
        (np.ones(2), np.zeros(2, int), 0, 0.2, "num_clusters must be >= 1"),
        (np.ones(2), np.zeros(2, int), 2, 0.0, "mean must be positive"),
    ],
)
def test_bad_inputs_raise(distances, assignments, k, mean, match):
    with pytest.raises(ValueError, match=match):
        concentration(distances, assignments, k, mean)
