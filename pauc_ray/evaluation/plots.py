"""Pictures of an evaluation (matplotlib, Agg backend: files only, no display).

- :func:`plot_tsne`: a 2-D t-SNE map (scikit-learn) of a seeded subsample, coloured by class;
- :func:`plot_nemd_matrix`: the NEMD (Eq. 3) matrix of one clustering as a heat map;
- :func:`plot_unit_circle`: 2-D embeddings on the unit circle, one panel of the paper's Fig. 2;
- :func:`plot_circle_grid`: a grid of such panels (Fig. 2's layout: methods as rows, class
  counts as columns), which the blob experiment draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def _subsample(n: int, max_points: int | None, seed: int) -> np.ndarray:
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def plot_tsne(
    embeddings: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    *,
    title: str = "",
    max_points: int | None = 2000,
    seed: int = 0,
    perplexity: float = 30.0,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Saves a t-SNE map of (at most ``max_points`` seeded rows of) ``embeddings`` (N, D).

    t-SNE runs on cosine distances (the embeddings live on the unit sphere), initialised with
    PCA, ``random_state=seed``; ``labels`` (N,) colour the points (-1: grey), named in the legend
    by ``class_names[label]`` when given. Returns ``path``.
    """
    from sklearn.manifold import TSNE

    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    if embeddings.ndim != 2 or len(embeddings) != len(labels) or len(embeddings) < 5:
        raise ValueError(
            f"plot_tsne needs (N, D) embeddings with N >= 5 and N labels, got "
            f"{embeddings.shape} and {labels.shape}"
        )
    keep = _subsample(len(embeddings), max_points, seed)
    x, y = embeddings[keep], labels[keep]
    tsne = TSNE(
        n_components=2,
        perplexity=min(perplexity, (len(x) - 1) / 3),
        metric="cosine",
        init="pca",
        random_state=seed,
    )
    xy = tsne.fit_transform(x)
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    classes = np.unique(y[y >= 0])
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "hsv")
    if (y < 0).any():
        ax.scatter(*xy[y < 0].T, s=3, c="0.6", linewidths=0, label="unlabelled")
    for i, c in enumerate(classes):
        colour = cmap(i if len(classes) <= 10 else i / len(classes))
        name = class_names[c] if class_names is not None and c < len(class_names) else str(c)
        ax.scatter(*xy[y == c].T, s=3, color=colour, linewidths=0, label=name)
    if len(classes) <= 20:
        ax.legend(markerscale=4, fontsize=7, loc="best", frameon=False, ncol=2)
    ax.set_title(title or f"t-SNE of {len(x)} embeddings (seed {seed})", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_nemd_matrix(matrix: np.ndarray, path: str | Path, *, title: str = "") -> Path:
    """Saves the (K, K) NEMD matrix as a heat map; NaN (pairs not evaluated) stays blank.

    Prototypes are ordered by their nearest-neighbour NEMD, most crowded first, so collapsed
    groups (small values off the diagonal) gather in the top-left corner.
    """
    m = np.array(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square (K, K), got {m.shape}")
    off = m.copy()
    np.fill_diagonal(off, np.nan)
    nearest = np.nan_to_num(off, nan=np.inf).min(axis=1)  # inf: no evaluated pair
    order = np.argsort(nearest, kind="stable")
    shown = np.ma.masked_invalid(m[np.ix_(order, order)])
    fig, ax = plt.subplots(figsize=(6.0, 5.2))
    image = ax.imshow(shown, cmap="viridis", vmin=0.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="W1 between prototypes (chordal, [0, 2])")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("prototype rank (by nearest-prototype NEMD)")
    ax.set_ylabel("prototype rank")
    ax.set_title(title or f"NEMD matrix, K = {m.shape[0]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


@dataclass(frozen=True)
class CirclePanel:
    """One unit-circle panel: (N, 2) points on the circle, their classes and the title."""

    embedding: np.ndarray
    labels: np.ndarray
    num_classes: int
    title: str


def _draw_circle(ax, panel: CirclePanel | None) -> None:
    theta = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(theta), np.sin(theta), color="0.85", lw=0.8, zorder=0)
    if panel is not None:
        e = panel.embedding
        ax.scatter(
            e[:, 0],
            e[:, 1],
            c=panel.labels,
            cmap="hsv",
            s=1.5,
            alpha=0.5,
            linewidths=0,
            vmin=0,
            vmax=panel.num_classes,
        )
        ax.set_title(panel.title, fontsize=9)
    ax.set_xlim(-1.15, 1.15)
    ax.set_ylim(-1.15, 1.15)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_circle_grid(
    panels: dict[tuple[int, int], CirclePanel], rows: int, cols: int, path: str | Path
) -> Path:
    """Saves a ``rows`` x ``cols`` grid of unit-circle panels; ``panels[(row, col)]`` (a
    missing one leaves the circle empty)."""
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.7 * rows), squeeze=False)
    for i in range(rows):
        for j in range(cols):
            _draw_circle(axes[i, j], panels.get((i, j)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_unit_circle(
    embeddings: np.ndarray,
    labels: np.ndarray,
    path: str | Path,
    *,
    name: str,
    nemd: float,
    max_points: int | None = 20000,
    seed: int = 0,
) -> Path:
    """Saves 2-D embeddings (N, 2) on the unit circle coloured by class, titled with ``name``
    and ``nemd`` (the layout of one panel of the paper's Fig. 2)."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[1] != 2:
        raise ValueError(f"the unit-circle plot needs (N, 2) embeddings, got {embeddings.shape}")
    keep = _subsample(len(embeddings), max_points, seed)
    e = embeddings[keep] / np.linalg.norm(embeddings[keep], axis=1, keepdims=True)
    y = np.asarray(labels)[keep]
    classes = int(y.max()) + 1 if len(y) and y.max() >= 0 else 1
    title = f"{name.upper()}, {classes} cls\nNEMD {nemd:.3f}"
    return plot_circle_grid({(0, 0): CirclePanel(e, y, classes, title)}, 1, 1, path)


def plot_training_curves(history: Sequence[dict], path: str | Path, title: str = "") -> Path | None:
    """A run's curves from its per-epoch metrics (``history.json`` rows): every loss term, kNN
    top-1 with the raw-input and random-init baselines as lines, NEMD and NEMD-nn, each
    term's gradient norm, the learning rate and samples/s. None (nothing written) for an
    empty history. Written to a temporary file first, so a reader never sees half a PNG."""
    rows = [h for h in history if h.get("epoch") is not None]
    if not rows:
        return None
    epochs = [h["epoch"] for h in rows]

    def series(key: str) -> tuple[list, list]:
        pairs = [(h["epoch"], h[key]) for h in rows if h.get(key) is not None]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    colours: dict[str, str] = {"total": "black"}

    def colour(term: str) -> str:
        return colours.setdefault(term, f"C{len(colours) - 1}")

    for term in ("info_nce", "proto_nce", "p_align", "p_uniform", "p_corr"):
        colour(term)  # the same colour for a term in every panel
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    ax = axes[0, 0]
    for key in sorted({k for h in rows for k in h if k.startswith("loss_")}):
        x, y = series(key)
        if any(v != 0 for v in y):
            term = key.removeprefix("loss_")
            ax.plot(x, y, marker="o", ms=2, lw=2.2 if term == "total" else 1.2,
                    color=colour(term), label=term)  # fmt: skip
    ax.set_title("loss terms (unweighted, mean over clusterings)", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    x, y = series("knn_top1")
    if x:
        ax.plot(x, y, marker="o", ms=3, color="C0", label="trained")
    last = next((h for h in reversed(rows) if h.get("raw_knn_top1") is not None), {})
    for i, (key, name) in enumerate(
        (("raw_knn_top1", "raw input"), ("random_init_knn_top1", "random init"))
    ):
        if last.get(key) is not None:
            ax.axhline(last[key], ls="--", color=f"C{7 + i}", label=f"{name} {last[key]:.2f}")
    ax.set_title("kNN top-1 on the held-out split (%)", fontsize=9)
    if x or last:
        ax.legend(fontsize=7)

    ax = axes[0, 2]
    for key, name in (("nemd", "NEMD"), ("nemd_nn", "NEMD-nn")):
        x, y = series(key)
        if x:
            ax.plot(x, y, marker="o", ms=3, label=name)
    ax.set_title("NEMD of the train embedding (Eq. 3)", fontsize=9)
    if any(h.get("nemd") is not None for h in rows):
        ax.legend(fontsize=7)

    ax = axes[1, 0]
    for key in sorted({k for h in rows for k in h if k.startswith("grad_norm_")}):
        x, y = series(key)
        term = key.removeprefix("grad_norm_")
        ax.plot(x, y, marker="o", ms=2, color=colour(term), label=term)
    ax.set_title("|d term / d q| (weighted), middle step", fontsize=9)
    if any(k.startswith("grad_norm_") for h in rows for k in h):
        ax.legend(fontsize=7)

    ax = axes[1, 1]
    x, y = series("lr")
    ax.plot(x, y, marker="o", ms=2, color="C3")
    ax.set_title("learning rate (at the epoch's start)", fontsize=9)

    ax = axes[1, 2]
    x, y = series("samples_per_second")
    ax.plot(x, y, marker="o", ms=2, color="C4")
    ax.set_title("samples / s", fontsize=9)

    for ax in axes.flat:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, max(epochs) + 0.5)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
    return path
