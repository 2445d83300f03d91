"""The batched log-domain Sinkhorn against POT and against slow, obvious per-pair loops."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch
from nemd_cases import SphereCase, make_clouds, upper

from pauc_ray.config import NEMDConfig
from pauc_ray.nemd import sinkhorn_chunk
from pauc_ray.nemd.reference import pot_w1_matrix, pot_w1_pair
from pauc_ray.nemd.sinkhorn import sinkhorn_w1_batched, sinkhorn_w1_pairs
from pauc_ray.nemd.synthetic import sphere_clusters

CONFIG = NEMDConfig()


def _padded_pairs(clouds: list[np.ndarray], pairs: list[tuple[int, int]]):
    """Stack the clouds of each pair into ``(P, n, D)`` tensors padded with junk."""
    n = max(len(c) for c in clouds)
    dim = clouds[0].shape[1]
    x = torch.full((len(pairs), n, dim), 7.0)  # junk padding: must not matter
    y = torch.full((len(pairs), n, dim), -3.0)
    xm = torch.zeros(len(pairs), n, dtype=torch.bool)
    ym = torch.zeros(len(pairs), n, dtype=torch.bool)
    for row, (p, q) in enumerate(pairs):
        x[row, : len(clouds[p])] = torch.from_numpy(clouds[p])
        xm[row, : len(clouds[p])] = True
        y[row, : len(clouds[q])] = torch.from_numpy(clouds[q])
        ym[row, : len(clouds[q])] = True
    return x, xm, y, ym


def _batched_matrix(case: SphereCase, **kwargs) -> np.ndarray:
    pairs = list(itertools.combinations(range(len(case.clouds)), 2))
    x, xm, y, ym = _padded_pairs(case.clouds, pairs)
    values = sinkhorn_w1_batched(
        x, xm, y, ym, CONFIG.epsilon, CONFIG.max_iter, CONFIG.tol, **kwargs
    ).numpy()
    k = len(case.clouds)
    matrix = np.zeros((k, k))
    for (p, q), v in zip(pairs, values):
        matrix[p, q] = matrix[q, p] = v
    return matrix


def test_matches_pot_sinkhorn_at_default_epsilon(sphere_case: SphereCase) -> None:
    # Same problem, same epsilon, both run to the default tol: within 1% relative per pair.
    fast = upper(_batched_matrix(sphere_case))
    pot = upper(sphere_case.pot_sinkhorn)
    assert np.max(np.abs(fast / pot - 1)) < 0.01


def test_close_to_exact_emd_at_default_epsilon(sphere_case: SphereCase) -> None:
    # The entropic cost lies above W1 and, at the default epsilon, within 3% of it per pair.
    fast = upper(_batched_matrix(sphere_case))
    emd = upper(sphere_case.emd)
    rel = fast / emd - 1
    assert rel.max() < 0.03
    assert rel.min() > -1e-3  # above exact W1, up to float32 round-off


def test_default_epsilon_on_the_closest_overlapping_2d_pairs() -> None:
    # The hard end of the measurement behind NEMDConfig.epsilon: 8 clusters of 150 points on
    # the circle with spread 0.4, so neighbours overlap. The relative entropic bias is largest
    # for the closest pairs (here W1 0.06, 0.21, 0.31, 0.51), so those are checked against EMD.
    x, y = sphere_clusters(8, 150, 2, spread=0.4, seed=1)
    clouds = [x[y == p] for p in range(8)]
    emd = pot_w1_matrix(clouds, method="emd")
    closest = np.argsort(upper(emd))[:4]
    pairs = np.stack(np.triu_indices(8, 1), axis=1)[closest]
    points = torch.from_numpy(np.stack(clouds)).float()
    mask = torch.ones(8, 150, dtype=torch.bool)
    fast = sinkhorn_w1_pairs(points, mask, torch.from_numpy(pairs), CONFIG.epsilon).numpy()
    rel = fast / emd[pairs[:, 0], pairs[:, 1]] - 1
    assert upper(emd)[closest].min() < 0.1  # the premise: a nearly coincident pair
    assert rel.max() < 0.03 and rel.min() > -1e-3


def test_float64_matches_float32(sphere_case: SphereCase) -> None:
    f64 = _batched_matrix(sphere_case, dtype=torch.float64)
    f32 = _batched_matrix(sphere_case)
    np.testing.assert_allclose(upper(f32), upper(f64), rtol=2e-3)


def test_padded_pair_equals_unpadded_pair() -> None:
    # Slow and obvious: each pair alone, unpadded, one call per pair.
    clouds = [c[:n] for c, n in zip(make_clouds(8, 0.6, seed=3), (5, 40, 23, 1, 17, 31))]
    pairs = [(0, 1), (2, 3), (4, 5), (1, 4), (3, 3)]
    x, xm, y, ym = _padded_pairs(clouds, pairs)
    batched = sinkhorn_w1_batched(x, xm, y, ym, epsilon=0.02, tol=1e-6, dtype=torch.float64)
    assert torch.isfinite(batched).all()
    for row, (p, q) in enumerate(pairs):
        alone = sinkhorn_w1_batched(
            torch.from_numpy(clouds[p])[None],
            torch.ones(1, len(clouds[p]), dtype=torch.bool),
            torch.from_numpy(clouds[q])[None],
            torch.ones(1, len(clouds[q]), dtype=torch.bool),
            epsilon=0.02,
            tol=1e-6,
            dtype=torch.float64,
        )
        reference = pot_w1_pair(clouds[p], clouds[q], method="sinkhorn", epsilon=0.02, tol=1e-9)
        assert float(batched[row]) == pytest.approx(float(alone[0]), rel=1e-6, abs=1e-9)
        assert float(batched[row]) == pytest.approx(reference, rel=1e-4, abs=1e-6)


def test_single_point_against_cloud_is_mean_distance() -> None:
    # One point on one side: the only plan sends it everywhere, so W1 = mean distance.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 1, 3))
    y = rng.normal(size=(1, 9, 3))
    value = sinkhorn_w1_batched(
        torch.from_numpy(x),
        torch.ones(1, 1, dtype=torch.bool),
        torch.from_numpy(y),
        torch.ones(1, 9, dtype=torch.bool),
        epsilon=0.01,
        dtype=torch.float64,
    )
    assert float(value[0]) == pytest.approx(np.linalg.norm(y[0] - x[0], axis=1).mean(), rel=1e-9)


def test_swapping_the_sides_gives_the_same_value(sphere_case: SphereCase) -> None:
    pairs = list(itertools.combinations(range(len(sphere_case.clouds)), 2))
    x, xm, y, ym = _padded_pairs(sphere_case.clouds, pairs)
    forward = sinkhorn_w1_batched(x, xm, y, ym, CONFIG.epsilon, tol=1e-5, dtype=torch.float64)
    backward = sinkhorn_w1_batched(y, ym, x, xm, CONFIG.epsilon, tol=1e-5, dtype=torch.float64)
    torch.testing.assert_close(forward, backward, rtol=1e-4, atol=0)


def test_chunking_and_pair_indexing_do_not_change_values(sphere_case: SphereCase) -> None:
    clouds = sphere_case.clouds
    n = max(len(c) for c in clouds)
    points = torch.zeros(len(clouds), n, clouds[0].shape[1])
    mask = torch.zeros(len(clouds), n, dtype=torch.bool)
    for p, cloud in enumerate(clouds):
        points[p, : len(cloud)] = torch.from_numpy(cloud)
        mask[p, : len(cloud)] = True
    pairs = torch.tensor(list(itertools.combinations(range(len(clouds)), 2)))
    whole = sinkhorn_w1_pairs(points, mask, pairs, CONFIG.epsilon, tol=1e-5)
    one_by_one = sinkhorn_w1_pairs(points, mask, pairs, CONFIG.epsilon, tol=1e-5, max_chunk_bytes=1)
    torch.testing.assert_close(whole, one_by_one, rtol=1e-4, atol=0)
    np.testing.assert_allclose(whole.numpy(), upper(_batched_matrix(sphere_case)), rtol=1e-3)


def test_small_epsilon_with_padding_gives_no_nan() -> None:
    clouds = [c[:n] for c, n in zip(make_clouds(2, 0.2, seed=5), (3, 50, 2, 4, 1, 60))]
    pairs = [(0, 1), (2, 3), (4, 5), (5, 4)]
    x, xm, y, ym = _padded_pairs(clouds, pairs)
    first = sinkhorn_w1_batched(x, xm, y, ym, epsilon=1e-3, max_iter=1, dtype=torch.float32)
    assert torch.isfinite(first).all()  # even far from convergence
    values = sinkhorn_w1_batched(x, xm, y, ym, epsilon=1e-3, tol=1e-6, dtype=torch.float64)
    exact = [pot_w1_pair(clouds[p], clouds[q]) for p, q in pairs]
    np.testing.assert_allclose(values.numpy(), exact, rtol=0.02)


def test_scalings_that_overflow_between_checks_recover(monkeypatch: pytest.MonkeyPatch) -> None:
    # At epsilon 1e-4 in float32 with rare checks, the stabilised scalings overflow between two
    # checks; the solver must fall back to a log-domain step, check more often, and converge.
    calls = []
    recover = sinkhorn_chunk._recover
    monkeypatch.setattr(sinkhorn_chunk, "_recover", lambda *args: calls.append(1) or recover(*args))
    x, y = sphere_clusters(2, 20, 2, spread=0.2, seed=2)
    left, right = x[y == 0], x[y == 1]
    ones = torch.ones(1, 20, dtype=torch.bool)
    value = sinkhorn_w1_batched(
        torch.from_numpy(left)[None], ones, torch.from_numpy(right)[None], ones,
        epsilon=1e-4, check_every=200,
    )  # fmt: skip
    assert calls, "the overflow path was not exercised"
    assert float(value[0]) == pytest.approx(pot_w1_pair(left, right), rel=1e-3)


def test_warns_when_not_converged(caplog: pytest.LogCaptureFixture) -> None:
    clouds = make_clouds(2, 0.5, seed=1)
    x, xm, y, ym = _padded_pairs(clouds, [(0, 1)])
    with caplog.at_level(logging.WARNING, logger="pauc_ray.nemd.sinkhorn"):
        sinkhorn_w1_batched(x, xm, y, ym, epsilon=0.005, max_iter=2, tol=1e-8)
    assert "stopped at max_iter=2" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": 0.0}, "tol"),
        ({"check_every": 0}, "check_every"),
        ({"max_chunk_bytes": 0}, "max_chunk_bytes"),
    ],
)
def test_bad_settings_raise(kwargs: dict, match: str) -> None:
    x, xm, y, ym = _padded_pairs(make_clouds(2, 0.5)[:2], [(0, 1)])
    args = {"epsilon": 0.01, **kwargs}
    with pytest.raises(ValueError, match=match):
        sinkhorn_w1_batched(x, xm, y, ym, **args)


def test_bad_shapes_and_empty_sides_raise() -> None:
    x, xm, y, ym = _padded_pairs(make_clouds(2, 0.5)[:2], [(0, 1)])
    with pytest.raises(ValueError, match="x and y"):
        sinkhorn_w1_batched(x[0], xm, y, ym, epsilon=0.01)
    with pytest.raises(ValueError, match="masks"):
        sinkhorn_w1_batched(x, xm[:, :3], y, ym, epsilon=0.01)
    with pytest.raises(ValueError, match="at least one real"):
        sinkhorn_w1_batched(x, torch.zeros_like(xm), y, ym, epsilon=0.01)
    with pytest.raises(ValueError, match="padding at the end"):
        sinkhorn_w1_pairs(x, ~xm, torch.tensor([[0, 0]]), epsilon=0.01)
