import itertools
import math

import numpy as np
import pytest

from pauc_ray.evaluation.instance_metrics import alignment, uniformity


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_alignment_matches_slow_reference(rng):
    a, b = rng.normal(size=(30, 5)), rng.normal(size=(30, 5))
    ua, ub = _unit(a), _unit(b)
    expected = sum(float(np.linalg.norm(ua[i] - ub[i])) ** 2 for i in range(30)) / 30
    assert alignment(a, b) == pytest.approx(expected, rel=1e-10)
    assert alignment(a, a) == pytest.approx(0.0, abs=1e-12)
    assert alignment(a, -a) == pytest.approx(4.0)
    expected3 = sum(float(np.linalg.norm(ua[i] - ub[i])) ** 3 for i in range(30)) / 30
    assert alignment(a, b, alpha=3) == pytest.approx(expected3, rel=1e-10)


def test_uniformity_matches_slow_reference(rng):
    z = _unit(rng.normal(size=(25, 4)))
    pairs = list(itertools.combinations(range(25), 2))
    mean = sum(math.exp(-2 * float(np.sum((z[i] - z[j]) ** 2))) for i, j in pairs) / len(pairs)
    assert uniformity(z) == pytest.approx(math.log(mean), rel=1e-10)


def test_uniformity_is_lower_for_spread_points_than_for_a_cluster(rng):
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    cluster = _unit(np.array([1.0, 0.0]) + 0.05 * rng.normal(size=(200, 2)))
    assert uniformity(circle) < uniformity(cluster) < 0.0
    assert uniformity(np.ones((10, 3))) == pytest.approx(0.0, abs=1e-12)  # one point


def test_uniformity_subsample_is_seeded(rng):
    z = rng.normal(size=(500, 8))
    assert uniformity(z, max_samples=100, seed=1) == uniformity(z, max_samples=100, seed=1)
    assert uniformity(z, max_samples=100, seed=1) != uniformity(z, max_samples=100, seed=2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        alignment(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="at least 2"):
        uniformity(np.ones((1, 2)))
    with pytest.raises(ValueError, match="alpha"):
        alignment(np.ones((3, 2)), np.ones((3, 2)), alpha=0)
