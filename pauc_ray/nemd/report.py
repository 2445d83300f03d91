"""The NEMD report of one clustering: Eq. 3 over prototype pairs (DESIGN.md section 2).

``NEMD(p, q) = W1(P_p, P_q)``, the Earth Mover's Distance with ground cost ``||x - y||`` (not
squared) between the empirical distributions of the L2-normalised embeddings assigned to
prototypes ``p`` and ``q``: the paper's "normalised hyper-sphere". The report averages it over
prototype pairs (``nemd``, the literal reading of Eq. 3) and over each prototype's nearest
neighbour (``nemd_nn``, what "voids" between collapsed prototypes raise).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from pauc_ray.config import NEMDConfig
from pauc_ray.devices import resolve_device
from pauc_ray.nemd.reference import pot_w1_values
from pauc_ray.nemd.sampling import group_by_prototype, sample_pairs, sample_points
from pauc_ray.nemd.sinkhorn import sinkhorn_w1_pairs
from pauc_ray.nemd.validation import check_inputs, check_nemd_config

__all__ = ["NEMDReport", "nemd_report"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NEMDReport:
    """NEMD of one clustering (Eq. 3). Distances are chordal, on the unit sphere: in [0, 2].

    Attributes:
        nemd: mean W1 over the evaluated unordered prototype pairs.
        nemd_nn: mean over prototypes (those in at least one evaluated pair) of the W1 to the
            nearest other prototype. ``nemd_nn <= nemd`` when all pairs are evaluated.
        num_prototypes: ``K``, the number of distinct assignment values.
        prototype_ids: the distinct assignment values, ascending; rows and columns of
            ``matrix`` follow this order.
        sizes: members per prototype before subsampling.
        pairs_evaluated: unordered pairs whose W1 was computed.
        pairs_total: ``K (K - 1) / 2``.
        epsilon: Sinkhorn's regularisation (None when ``method == "emd"``).
        max_points: members kept per prototype at most (None: all).
        max_pairs: pairs evaluated at most (None: all).
        seed: seed of both subsamples.
        method: ``"sinkhorn"`` (batched, :mod:`pauc_ray.nemd.sinkhorn`) or ``"emd"`` (exact,
            POT's ``ot.emd2``).
        device: where the distances were computed.
        seconds: wall-clock time of the whole report.
        matrix: ``(K, K)`` W1 matrix, symmetric, 0 on the diagonal, NaN where a pair was not
            evaluated; None unless asked for.
    """

    nemd: float
    nemd_nn: float
    num_prototypes: int
    prototype_ids: tuple[int, ...]
    sizes: tuple[int, ...]
    pairs_evaluated: int
    pairs_total: int
    epsilon: float | None
    max_points: int | None
    max_pairs: int | None
    seed: int
    method: str
    device: str
    seconds: float
    matrix: np.ndarray | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready dict: plain Python numbers and lists, NaN in ``matrix`` as None."""
        out = asdict(self)
        out["prototype_ids"] = list(self.prototype_ids)
        out["sizes"] = list(self.sizes)
        if self.matrix is not None:
            out["matrix"] = [
                [None if math.isnan(v) else float(v) for v in row] for row in self.matrix.tolist()
            ]
        return out


def nemd_report(
    embeddings: np.ndarray | torch.Tensor,
    assignments: np.ndarray | torch.Tensor,
    config: NEMDConfig = NEMDConfig(),  # noqa: B008 - frozen, so a shared default is safe
    *,
    exact: bool = False,
    return_matrix: bool = False,
    device: str | torch.device | None = None,
) -> NEMDReport:
    """NEMD (Eq. 3) between the prototypes of one clustering.

    Each row is L2-normalised first (the paper's normalised hyper-sphere), so every distance is
    a chord of the unit sphere, in [0, 2]. Rows are grouped by their assignment; at most
    ``config.max_points`` members per prototype and ``config.max_pairs`` unordered pairs are
    kept, both drawn with ``config.seed`` and reported. W1 per pair comes from the batched
    log-domain Sinkhorn (``<gamma_eps, C>`` at ``config.epsilon``, slightly above the exact
    value) or, with ``exact=True``, from POT's exact ``ot.emd2`` one pair at a time (CPU).

    Without subsampling the result does not depend on the order of the rows; with it, the
    kept members are drawn from each prototype's rows in their input order. ``nemd_nn <= nemd``
    holds when all pairs are evaluated; with sampled pairs each prototype's nearest neighbour
    is taken among its sampled partners only, and prototypes in no sampled pair are skipped.

    Args:
        embeddings: ``(N, D)`` features, any scale (zero rows are an error).
        assignments: ``(N,)`` integer prototype id of each row; ids need not be 0..K-1.
        config: epsilon, subsample sizes, Sinkhorn iterations and tolerance, seed.
        exact: exact EMD with POT instead of Sinkhorn.
        return_matrix: include the ``(K, K)`` matrix of pair values in the report.
        device: where Sinkhorn runs (``"cpu"``, ``"cuda"``, ...); default CUDA when available.
            Ignored with ``exact=True`` (POT runs on CPU).

    Returns:
        The :class:`NEMDReport`.

    Example:
        >>> from pauc_ray.nemd.synthetic import sphere_clusters
        >>> x, y = sphere_clusters(4, 50, 8, seed=0)
        >>> report = nemd_report(x, y, device="cpu")
        >>> report.num_prototypes, report.pairs_evaluated
        (4, 6)
    """
    start = time.perf_counter()
    check_nemd_config(config)
    emb, assign = check_inputs(embeddings, assignments)
    resolved = torch.device("cpu") if exact else resolve_device(device)
    ids, members = group_by_prototype(assign)
    k = len(ids)
    kept = sample_points(members, config.max_points, config.seed)
    pairs = sample_pairs(k, config.max_pairs, config.seed)
    clouds = [emb[rows].astype(np.float64) for rows in kept]
    clouds = [c / np.linalg.norm(c, axis=1, keepdims=True) for c in clouds]
    if exact:
        values = pot_w1_values(clouds, pairs, method="emd")
    else:
        values = _sinkhorn_values(clouds, pairs, config, resolved)
    nearest = np.full(k, np.inf)
    np.minimum.at(nearest, pairs[:, 0], values)
    np.minimum.at(nearest, pairs[:, 1], values)
    matrix = None
    if return_matrix:
        matrix = np.full((k, k), np.nan)
        np.fill_diagonal(matrix, 0.0)
        matrix[pairs[:, 0], pairs[:, 1]] = values
        matrix[pairs[:, 1], pairs[:, 0]] = values
        matrix.setflags(write=False)
    report = NEMDReport(
        nemd=float(values.mean()),
        nemd_nn=float(nearest[np.isfinite(nearest)].mean()),
        num_prototypes=k,
        prototype_ids=tuple(int(i) for i in ids),
        sizes=tuple(len(rows) for rows in members),
        pairs_evaluated=len(pairs),
        pairs_total=k * (k - 1) // 2,
        epsilon=None if exact else float(config.epsilon),
        max_points=config.max_points,
        max_pairs=config.max_pairs,
        seed=config.seed,
        method="emd" if exact else "sinkhorn",
        device=str(resolved),
        seconds=time.perf_counter() - start,
        matrix=matrix,
    )
    logger.info(
        "NEMD %.4f (nn %.4f) over %d/%d pairs of %d prototypes, %s on %s, %.2fs",
        report.nemd,
        report.nemd_nn,
        report.pairs_evaluated,
        report.pairs_total,
        k,
        report.method,
        report.device,
        report.seconds,
    )
    return report


def _sinkhorn_values(
    clouds: list[np.ndarray], pairs: np.ndarray, config: NEMDConfig, device: torch.device
) -> np.ndarray:
    """Pad the clouds into one ``(K, n, D)`` tensor on ``device`` and run the batched solver."""
    sizes = [len(c) for c in clouds]
    n, dim = max(sizes), clouds[0].shape[1]
    padded = np.zeros((len(clouds), n, dim), dtype=np.float32)
    mask = np.zeros((len(clouds), n), dtype=bool)
    for p, cloud in enumerate(clouds):
        padded[p, : len(cloud)] = cloud
        mask[p, : len(cloud)] = True
    values = sinkhorn_w1_pairs(
        torch.from_numpy(padded).to(device),
        torch.from_numpy(mask).to(device),
        torch.from_numpy(pairs).to(device),
        config.epsilon,
        config.max_iter,
        config.tol,
    )
    return values.double().cpu().numpy()
