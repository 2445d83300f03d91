"""Fig. 2's layout: unit-circle embeddings, methods as rows and class counts as columns."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def draw_blob_figure(results: dict, config, path: Path, seed: int = 0) -> None:
    """``results[(classes, method, seed)]`` holds ``embedding``, ``labels`` and ``row``; plots
    seed ``seed`` coloured by true class with NEMD in each title."""
    methods, classes = config.methods, config.classes
    fig, axes = plt.subplots(
        len(methods),
        len(classes),
        figsize=(2.6 * len(classes), 2.7 * len(methods)),
        squeeze=False,
    )
    theta = np.linspace(0, 2 * np.pi, 200)
    for i, method in enumerate(methods):
        for j, c in enumerate(classes):
            ax = axes[i, j]
            result = results.get((c, method, seed))
            ax.plot(np.cos(theta), np.sin(theta), color="0.85", lw=0.8, zorder=0)
            if result is not None:
                e = result.embedding
                ax.scatter(
                    e[:, 0],
                    e[:, 1],
                    c=result.labels,
                    cmap="hsv",
                    s=1.5,
                    alpha=0.5,
                    linewidths=0,
                    vmin=0,
                    vmax=c,
                )
                ax.set_title(
                    f"{method.upper()}, {c} cls\nNEMD {result.row['nemd']:.3f}", fontsize=9
                )
            ax.set_xlim(-1.15, 1.15)
            ax.set_ylim(-1.15, 1.15)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
