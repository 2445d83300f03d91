"""The method's settings and their defaults, each in one place: frozen dataclasses.

:class:`LossConfig` (Eq. 1-7), :class:`NEMDConfig` (Eq. 3), the table of prototype terms and
the method presets. k-means has its own (:class:`cluster.config.KMeansConfig`, re-exported
here) because ``cluster/`` knows nothing of this package. The run's other settings (data,
optimiser, schedule) are :class:`pauc_ray.train.config.TrainConfig`, which nests these with
their defaults unchanged; a dataset's recipe (``pauc_ray/recipes``) then overrides what that
dataset needs. YAML files and CLI flags are views of these; a run saves the resolved values
with its checkpoint. Values the paper leaves open are this project's choices (see DESIGN.md
and the README) and are marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluster.config import KMeansConfig

__all__ = [
    "METHODS",
    "PROTOTYPE_TERMS",
    "KMeansConfig",
    "LossConfig",
    "NEMDConfig",
    "PrototypeTerm",
    "TermParam",
    "method_preset",
]


@dataclass(frozen=True)
class TermParam:
    """A hyperparameter of one prototype term: the paper's symbol and its LossConfig field."""

    symbol: str
    field: str
    kind: str  # "positive" (> 0) or "temperature" (> 0, searched on a log scale)
    description: str


@dataclass(frozen=True)
class PrototypeTerm:
    """One of PAUC's three prototype terms (Eq. 7): what the loss, the logs, the sweep and the
    comparison call it. Adding a term means adding a row to :data:`PROTOTYPE_TERMS`, its weight
    and parameters to :class:`LossConfig`, and its function to ``pauc_ray/losses/total.py``.

    Attributes:
        name: key in the loss's ``terms`` and in logs (``p_align``).
        label: how tables and variants name it (``p-align``).
        weight: its weight's field in :class:`LossConfig` and symbol in the sweep (``alpha``).
        equation: where the paper defines it.
        params: its other hyperparameters.
    """

    name: str
    label: str
    weight: str
    equation: str
    params: tuple[TermParam, ...] = ()


PROTOTYPE_TERMS: tuple[PrototypeTerm, ...] = (
    PrototypeTerm(
        "p_align",
        "p-align",
        "alpha",
        "Eq. 4",
        (TermParam("s", "align_exponent", "positive", "p-align exponent s (Eq. 4)"),),
    ),
    PrototypeTerm(
        "p_uniform",
        "p-uniform",
        "beta",
        "Eq. 5",
        (TermParam("t", "uniform_t", "positive", "p-uniform scale t (Eq. 5)"),),
    ),
    PrototypeTerm(
        "p_corr",
        "p-corr",
        "gamma",
        "Eq. 6",
        (TermParam("rho", "corr_temperature", "temperature", "p-corr softmax temperature"),),
    ),
)


@dataclass(frozen=True)
class LossConfig:
    """Loss hyperparameters of Eq. 7.

    Attributes:
        temperature: ``tau`` of InfoNCE (Eq. 1); also the mean the concentrations ``phi`` of
            ProtoNCE (Eq. 2) are rescaled to (PCL's estimate).
        num_negative_prototypes: ``r`` negative prototypes sampled per sample in ProtoNCE
            (all other prototypes when fewer exist). Paper: r = 1024 (ImageNet-100), 16000
            (ImageNet-1K); PCL's code uses the queue size, 16384.
        alpha: weight of p-align (Eq. 4).
        beta: weight of p-uniform (Eq. 5).
        gamma: weight of p-corr (Eq. 6).
        align_exponent: ``s`` of Eq. 4 (distance to the power ``s``).
        uniform_t: ``t`` of Eq. 5 (Gaussian potential scale).
        uniform_form: ``log`` (Wang & Isola's ``log mean exp``) or ``mean`` (Eq. 5 as written).
        corr_temperature: ``rho``, softmax temperature turning a prototype into a distribution
            over embedding dimensions for p-corr (project's choice, DESIGN.md section 1).
        warmup_epochs: epochs of InfoNCE alone before the prototype terms start (paper: 20 of
            200; here 5, a sixth of the default 30 epochs).
    """

    temperature: float = 0.2
    num_negative_prototypes: int = 16384
    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 0.1
    align_exponent: float = 2.0
    uniform_t: float = 2.0
    uniform_form: str = "log"
    corr_temperature: float = 0.1
    warmup_epochs: int = 5

    def __post_init__(self) -> None:
        for name in ("temperature", "uniform_t", "corr_temperature", "align_exponent"):
            if not getattr(self, name) > 0:
                raise ValueError(f"loss.{name} must be > 0, got {getattr(self, name)}")
        if self.uniform_form not in ("log", "mean"):
            raise ValueError(
                f"loss.uniform_form must be 'log' or 'mean', got {self.uniform_form!r}"
            )
        weights = tuple(term.weight for term in PROTOTYPE_TERMS)
        for name in (*weights, "num_negative_prototypes", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class NEMDConfig:
    """Settings of the NEMD report (Eq. 3, DESIGN.md section 2).

    Attributes:
        epsilon: entropic regularisation of Sinkhorn, in units of the ground cost
            ``||x - y||`` (which lies in [0, 2] on the unit sphere). 0.005 is the largest value
            tried (0.02, 0.01, 0.005, 0.003) whose entropic cost ``<gamma_eps, C>`` stays within
            3% of exact EMD (``ot.emd2``) for every pair, measured on 8 vMF-like clusters x 150
            points on the sphere, 2 seeds each: in 2-D (spread 0.1-0.6, pair W1 down to 0.06)
            the worst pair is 2.2% above EMD (0.01: 4.5%, 0.02: 11%), the mean over pairs
            0.2%; in 128-D (spread 0.3-1.5) the worst pair is 0.6% above (0.01: 1.3%). The
            relative bias is largest for nearly overlapping prototypes (small W1). 0.003
            halves the bias but needs several times more iterations.
        max_points: points kept per prototype (seeded subsample); ``None`` keeps all.
        max_pairs: unordered prototype pairs evaluated (seeded subsample); ``None`` keeps all.
        max_iter: Sinkhorn iterations at most. At epsilon 0.005 nearly coincident 2-D
            prototypes needed up to ~5,500 iterations to reach ``tol`` (well separated ones
            10-300), hence 10,000.
        tol: stop when the L1 marginal error ``sum_i |sum_j gamma_ij - a_i|`` (a mass) falls
            below this. 1e-4 kept the transport cost within 4e-4 relative of the fully
            converged value (measured, worst case) and is reached in float32.
        seed: seed of every subsample.
    """

    epsilon: float = 0.005
    max_points: int | None = 200
    max_pairs: int | None = 5000
    max_iter: int = 10000
    tol: float = 1e-4
    seed: int = 0


METHODS = ("moco", "pcl", "pauc")


@dataclass(frozen=True)
class MethodPreset:
    """A method as the same code with terms switched off (DESIGN.md).

    Attributes:
        use_prototypes: ProtoNCE (and the prototype terms) run at all.
        weights: the weight of each prototype term by its name (``p_align`` -> alpha, ...).
    """

    use_prototypes: bool
    weights: dict[str, float]


def method_preset(name: str, loss: LossConfig | None = None) -> MethodPreset:
    """``moco`` (InfoNCE only), ``pcl`` (+ ProtoNCE), ``pauc`` (+ the prototype terms, with
    ``loss``'s weights)."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    loss = loss or LossConfig()
    weights = {
        term.name: getattr(loss, term.weight) if name == "pauc" else 0.0 for term in PROTOTYPE_TERMS
    }
    return MethodPreset(use_prototypes=name != "moco", weights=weights)
