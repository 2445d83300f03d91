"""The figure of a NEMD job (``GET /nemd/{id}/plot.png``): one row per clustering.

Left: the embeddings projected on their first two principal components, coloured by
prototype. Right: the prototype-pair W1 matrix (Eq. 3) with pairs not evaluated left blank.
Drawn with matplotlib's object API on an Agg canvas (no pyplot), which is safe in the job's
worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["nemd_figure"]

MAX_SCATTER = 5000  # points drawn at most (a seeded subsample beyond it)


def _pca2(x: np.ndarray) -> np.ndarray:
    """(N, 2) projection on the two leading principal components (zeros-padded for D < 2)."""
    centred = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = centred @ vt[:2].T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))) if out.shape[1] < 2 else out


def nemd_figure(embeddings: np.ndarray, rows: Sequence[tuple[int, np.ndarray, Any]]) -> bytes:
    """PNG bytes; ``rows`` holds ``(K, assignments (N,), NEMDReport with its matrix)``."""
    keep = np.arange(len(embeddings))
    if len(keep) > MAX_SCATTER:
        keep = np.sort(np.random.default_rng(0).choice(len(keep), MAX_SCATTER, replace=False))
    points = _pca2(embeddings[keep].astype(np.float64))
    figure = Figure(figsize=(9, 4 * len(rows)), dpi=80)
    FigureCanvasAgg(figure)
    for row, (k, assignments, report) in enumerate(rows):
        scatter = figure.add_subplot(len(rows), 2, 2 * row + 1)
        scatter.scatter(points[:, 0], points[:, 1], c=assignments[keep], s=4, cmap="tab20")
        scatter.set_title(f"K={k}: embeddings (PCA), colour = prototype")
        heat = figure.add_subplot(len(rows), 2, 2 * row + 2)
        matrix = report.matrix if report.matrix is not None else np.zeros((1, 1))
        image = heat.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0)
        figure.colorbar(image, ax=heat, label="W1 (chordal)")
        heat.set_title(f"NEMD {report.nemd:.3f}, NEMD-nn {report.nemd_nn:.3f}")
        heat.set_xlabel("prototype")
        heat.set_ylabel("prototype")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
