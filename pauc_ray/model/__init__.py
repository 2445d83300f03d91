"""Models: the MoCo pair and the encoders it wraps."""

from pauc_ray.model.encoders import MLPEncoder
from pauc_ray.model.moco import MoCo

__all__ = ["MLPEncoder", "MoCo"]
