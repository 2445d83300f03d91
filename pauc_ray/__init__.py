"""PAUC on Ray: prototypical contrastive learning through alignment, uniformity and correlation.

Subpackages: ``losses`` (Eqs. 1, 2, 4-7), ``nemd`` (Eq. 3), ``model`` (MoCo pair),
``experiments`` (the paper's blob experiment). Importing this package imports no Ray.
"""

__version__ = "0.1.0"
