import numpy as np
import pytest

from pauc_ray.evaluation.plots import plot_nemd_matrix, plot_tsne, plot_unit_circle


def test_tsne_map_is_written(rng, tmp_path):
    x = np.concatenate([rng.normal(size=(40, 8)) + 5 * i for i in range(3)])
    labels = np.repeat([0, 1, 2], 40)
    path = plot_tsne(x, labels, tmp_path / "tsne.png", max_points=90, seed=0)
    assert path.stat().st_size > 5_000


def test_nemd_heat_map_leaves_unevaluated_pairs_blank(tmp_path):
    matrix = np.array([[0.0, 0.3, np.nan], [0.3, 0.0, 1.2], [np.nan, 1.2, 0.0]])
    assert plot_nemd_matrix(matrix, tmp_path / "m.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="square"):
        plot_nemd_matrix(np.zeros((2, 3)), tmp_path / "bad.png")


def test_unit_circle_needs_two_dimensions(rng, tmp_path):
    angles = rng.uniform(0, 2 * np.pi, 300)
    e = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    labels = (angles // (np.pi / 2)).astype(int)
    path = plot_unit_circle(e, labels, tmp_path / "circle.png", name="pauc", nemd=1.2)
    assert path.stat().st_size > 5_000
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot_unit_circle(np.ones((5, 3)), np.zeros(5), tmp_path / "x.png", name="m", nemd=0.0)
