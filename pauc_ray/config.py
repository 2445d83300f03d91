"""Every default of the method in one place: frozen dataclasses.

YAML files and CLI flags are views of these; a run saves the resolved values with its
checkpoint. Values the paper leaves open are this project's choices (see DESIGN.md and the
README) and are marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.config import KMeansConfig

__all__ = ["KMeansConfig", "LossConfig", "NEMDConfig"]


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
            200).
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
    warmup_epochs: int = 2

    def __post_init__(self) -> None:
        for name in ("temperature", "uniform_t", "corr_temperature", "align_exponent"):
            if not getattr(self, name) > 0:
                raise ValueError(f"loss.{name} must be > 0, got {getattr(self, name)}")
        if self.uniform_form not in ("log", "mean"):
            raise ValueError(
                f"loss.uniform_form must be 'log' or 'mean', got {self.uniform_form!r}"
            )
        for name in ("alpha", "beta", "gamma", "num_negative_prototypes", "warmup_epochs"):
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


@dataclass(frozen=True)
class MethodPreset:
    """Weights that define a method as the same code with terms switched off (DESIGN.md)."""

    use_prototypes: bool
    alpha: float
    beta: float
    gamma: float


def method_preset(name: str, loss: LossConfig | None = None) -> MethodPreset:
    """``moco`` (InfoNCE only), ``pcl`` (+ ProtoNCE), ``pauc`` (+ the three prototype terms)."""
    loss = loss or LossConfig()
    presets = {
        "moco": MethodPreset(False, 0.0, 0.0, 0.0),
        "pcl": MethodPreset(True, 0.0, 0.0, 0.0),
        "pauc": MethodPreset(True, loss.alpha, loss.beta, loss.gamma),
    }
    if name not in presets:
        raise ValueError(f"method must be one of {sorted(presets)}, got {name!r}")
    return presets[name]


@dataclass(frozen=True)
class Defaults:
    """The whole tree of defaults, for code that wants one object."""

    loss: LossConfig = field(default_factory=LossConfig)
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)
    nemd: NEMDConfig = field(default_factory=NEMDConfig)
