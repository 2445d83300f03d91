"""Two-view augmentation on the training worker, per sample and batched.

The paper (Sec. 5.1) follows PCL: random resized crop, colour jitter, horizontal flip and
random grayscale. torchvision's transforms draw one set of random parameters per call, so on
a batched tensor every sample would get the same crop and the same jitter, which removes most
of what contrastive learning learns from. Here every sample draws its own parameters and the
whole batch is transformed at once:

- crop + resize + flip (+ a small rotation): one affine sampling grid per sample
  (``F.affine_grid`` + ``F.grid_sample``, bilinear); a flip is a negative x-scale of the
  same affine map, a rotation turns the crop box about its centre;
- brightness, contrast, saturation: per-sample blend factors, as in
  ``torchvision.transforms.v2.functional.adjust_*`` (tested against them);
- hue: a rotation of RGB about the grey axis by ``2 pi h`` (no RGB->HSV round trip; it keeps
  grey pixels and the RGB mean, and moves red towards yellow for h > 0 like an HSV shift);
- grayscale and jitter on/off: per-sample masks;
- pixel noise: Gaussian, per pixel, on the [0, 1] image before normalisation (small images,
  where colour jitter has little to work on).

The jitter steps run in a fixed order (brightness, contrast, saturation, hue), where
torchvision shuffles them per call. One-channel images get brightness and contrast only
(saturation, hue and grayscale are no-ops). Vectors (the blob experiment) get Gaussian noise.

Random numbers come from the optional ``torch.Generator`` (on the batch's device), so a seeded
generator gives the same views.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AugmentConfig",
    "EvalTransform",
    "TwoViewAugment",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "crop_resize_flip",
    "rotate_hue",
    "sample_crop_boxes",
    "to_grayscale",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings (defaults: MoCo v2 / PCL's, Sec. 5.1; blur is not used).

    Attributes:
        crop_scale: range of the crop's area as a fraction of the image's.
        crop_ratio: range of the crop's aspect ratio (width / height), sampled log-uniformly.
        output_size: side of the square output; ``None`` keeps the input's (H, W).
        brightness, contrast, saturation: jitter strength ``s``; factors are uniform in
            ``[max(0, 1 - s), 1 + s]``.
        hue: hue shift uniform in ``[-hue, hue]`` (fraction of a full turn, <= 0.5).
        jitter_p: probability that a sample is colour-jittered at all.
        grayscale_p: probability that a sample is turned grey (3-channel data).
        flip_p: probability of a horizontal flip.
        rotation: rotation angle uniform in ``[-rotation, rotation]`` degrees (0: none).
        pixel_noise: standard deviation of Gaussian noise added to every pixel of the
            [0, 1] image (0: none).
        vector_sigma: standard deviation of the Gaussian noise added to each vector
            coordinate (standardised blobs; the blob experiment's 0.05).
        mean, std: per-channel normalisation after augmentation; ``None``: ImageNet's for RGB,
            their luma-weighted average for one channel. A single value broadcasts.
    """

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    output_size: int | None = None
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    flip_p: float = 0.5
    rotation: float = 0.0
    pixel_noise: float = 0.0
    vector_sigma: float = 0.05
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        for name in ("brightness", "contrast", "saturation", "vector_sigma", "pixel_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5], got {self.hue}")
        for name in ("jitter_p", "grayscale_p", "flip_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"rotation must be in [0, 180] degrees, got {self.rotation}")
        if self.output_size is not None and self.output_size < 1:
            raise ValueError(f"output_size must be >= 1, got {self.output_size}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std, or neither")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0, got {self.std}")


def _normalization(config: AugmentConfig, channels: int, device: torch.device):
    if config.mean is None:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if channels == 1:
            mean = (sum(w * m for w, m in zip(_LUMA, mean)),)
            std = (sum(w * s for w, s in zip(_LUMA, std)),)
    else:
        mean, std = config.mean, config.std
    if len(mean) not in (1, channels) or len(std) not in (1, channels):
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} values for {channels} channels")
    as_tensor = lambda v: torch.tensor(v, device=device).view(1, -1, 1, 1)  # noqa: E731
    return as_tensor(mean), as_tensor(std)


def _uniform(n: int, low: float, high: float, generator, device) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def _to_float_images(batch: Tensor) -> Tensor:
    if batch.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(batch.shape)}")
    if batch.shape[1] not in (1, 3):
        raise ValueError(f"expected 1 or 3 channels, got {batch.shape[1]}")
    if batch.dtype == torch.uint8:
        return batch.float().div_(255.0)
    if not batch.is_floating_point():
        raise ValueError(f"expected uint8 or float images, got {batch.dtype}")
    return batch.float()


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    attempts: int = 10,
) -> Tensor:
    """Random resized crop boxes, one per sample: (n, 4) float ``(x0, y0, w, h)`` in pixels.

    As torchvision's ``RandomResizedCrop.get_params`` (area fraction uniform in ``scale``,
    aspect ratio log-uniform in ``ratio``, up to ``attempts`` draws until the box fits), but
    vectorised and with sub-pixel boxes. A sample whose draws all fail gets the whole image.
    """
    area = height * width
    s = _uniform(n * attempts, *scale, generator, device).view(n, attempts)
    log_r = _uniform(n * attempts, math.log(ratio[0]), math.log(ratio[1]), generator, device)
    r = log_r.view(n, attempts).exp()
    w, h = (area * s * r).sqrt(), (area * s / r).sqrt()
    fits = (w <= width) & (h <= height)
    first = fits.float().argmax(dim=1, keepdim=True)
    w = torch.where(fits.any(1), w.gather(1, first).squeeze(1), torch.full_like(w[:, 0], width))
    h = torch.where(fits.any(1), h.gather(1, first).squeeze(1), torch.full_like(h[:, 0], height))
    x0 = torch.rand(n, generator=generator, device=device) * (width - w)
    y0 = torch.rand(n, generator=generator, device=device) * (height - h)
    return torch.stack([x0, y0, w, h], dim=1)


def crop_resize_flip(
    images: Tensor,
    boxes: Tensor,
    flip: Tensor,
    size: tuple[int, int] | None = None,
    angle: Tensor | None = None,
) -> Tensor:
    """Crops ``boxes`` out of ``images``, resizes them to ``size`` and mirrors where ``flip``.

    Args:
        images: (B, C, H, W) float.
        boxes: (B, 4) ``(x0, y0, w, h)`` in pixels of the input (edges, not centres: the box
            ``(0, 0, W, H)`` is the whole image and reproduces it exactly).
        flip: (B,) bool, horizontal flip.
        size: output (h, w); the input's when ``None``.
        angle: (B,) rotation of each crop about its centre, radians (None: none). Parts of a
            rotated crop outside the image repeat the border pixels.

    Returns:
        (B, C, h, w) float, bilinear.
    """
    b, c, height, width = images.shape
    out_h, out_w = size or (height, width)
    x0, y0, w, h = boxes.to(images.dtype).unbind(1)
    sign = 1.0 - 2.0 * flip.to(images.dtype)
    theta = torch.zeros(b, 2, 3, dtype=images.dtype, device=images.device)
    scale_x, scale_y = sign * w / width, h / height
    if angle is None:
        theta[:, 0, 0] = scale_x
        theta[:, 1, 1] = scale_y
    else:  # input = diag(scale) @ rotation(angle) @ output + centre
        cos, sin = angle.to(images.dtype).cos(), angle.to(images.dtype).sin()
        theta[:, 0, 0], theta[:, 0, 1] = scale_x * cos, -scale_x * sin
        theta[:, 1, 0], theta[:, 1, 1] = scale_y * sin, scale_y * cos
    theta[:, 0, 2] = (2 * x0 + w) / width - 1
    theta[:, 1, 2] = (2 * y0 + h) / height - 1
    grid = F.affine_grid(theta, [b, c, out_h, out_w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_grayscale(images: Tensor) -> Tensor:
    """(B, 1, H, W) luma of (B, 3, H, W) images (ITU-R 601, torchvision's weights)."""
    if images.shape[1] == 1:
        return images
    r, g, b = images.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    """``factor * a + (1 - factor) * b`` per sample, clamped; ``factor == 1`` returns ``a``."""
    weight = factor.view(-1, 1, 1, 1).expand_as(a)
    return torch.lerp(b.expand_as(a), a, weight).clamp_(0, 1)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """``images`` (B, C, H, W) in [0, 1] times ``factor`` (B,), clamped."""
    return (images * factor.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """Blend of each image with its mean grey level by ``factor`` (B,)."""
    mean = to_grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, mean, factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """Blend of each (B, 3, H, W) image with its grey version by ``factor`` (B,)."""
    return _blend(images, to_grayscale(images), factor)


def rotate_hue(images: Tensor, shift: Tensor) -> Tensor:
    """Rotates each (B, 3, H, W) image's colours about the grey axis by ``2 pi shift`` (B,).

    An HSV-free approximation of a hue shift of ``shift`` turns; ``shift = 0`` is exact identity.
    """
    angle = 2 * math.pi * shift
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    eye = torch.eye(3, dtype=images.dtype, device=images.device)
    ones = torch.ones(3, 3, dtype=images.dtype, device=images.device)
    cross = torch.tensor(
        [[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]],
        dtype=images.dtype,
        device=images.device,
    )
    rotation = cos * eye + (1 - cos) / 3 * ones + sin / math.sqrt(3) * cross  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", rotation, images).clamp_(0, 1)


class TwoViewAugment:
    """Two independently augmented views of a batch (MoCo's query and key inputs).

    Args:
        config: augmentation settings.

    Call with ``batch``: (B, C, H, W) uint8 (or float in [0, 1]) images, or (B, dim) float
    vectors, and an optional ``generator`` on the batch's device. Returns two float32 tensors
    of shape (B, C, h, w) (normalised) or (B, dim).

    Example:
        >>> augment = TwoViewAugment()
        >>> x1, x2 = augment(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
        >>> x1.shape
        torch.Size([4, 3, 32, 32])
    """

    def __init__(self, config: AugmentConfig = AugmentConfig()) -> None:
        self.config = config

    def __call__(
        self, batch: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        return self.view(batch, generator), self.view(batch, generator)

    def view(self, batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One augmented view, fresh random parameters per sample."""
        if batch.dim() == 2:
            x = batch.float()
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            return x + self.config.vector_sigma * noise
        return self._image_view(_to_float_images(batch), generator)

    def _image_view(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        cfg, device = self.config, images.device
        n, channels, height, width = images.shape
        size = (cfg.output_size, cfg.output_size) if cfg.output_size else None

        boxes = sample_crop_boxes(
            n, height, width, cfg.crop_scale, cfg.crop_ratio, generator, device
        )
        flip = torch.rand(n, generator=generator, device=device) < cfg.flip_p
        angle = None
        if cfg.rotation > 0:
            limit = math.radians(cfg.rotation)
            angle = _uniform(n, -limit, limit, generator, device)
        x = crop_resize_flip(images, boxes, flip, size, angle)

        jitter = torch.rand(n, generator=generator, device=device) < cfg.jitter_p

        def factor(strength: float) -> Tensor:
            drawn = _uniform(n, max(0.0, 1 - strength), 1 + strength, generator, device)
            return torch.where(jitter, drawn, torch.ones_like(drawn))

        brightness, contrast = factor(cfg.brightness), factor(cfg.contrast)
        saturation = factor(cfg.saturation)
        hue = torch.where(jitter, _uniform(n, -cfg.hue, cfg.hue, generator, device), 0.0)
        grey = torch.rand(n, generator=generator, device=device) < cfg.grayscale_p

        x = adjust_brightness(x, brightness)
        x = adjust_contrast(x, contrast)
        if channels == 3:
            x = adjust_saturation(x, saturation)
            if cfg.hue > 0:
                x = rotate_hue(x, hue)
            x = torch.where(grey.view(-1, 1, 1, 1), to_grayscale(x).expand_as(x), x)
        if cfg.pixel_noise > 0:
            noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
            x = (x + cfg.pixel_noise * noise).clamp_(0, 1)
        mean, std = _normalization(cfg, channels, device)
        return (x - mean) / std


class EvalTransform:
    """No augmentation: uint8 images to [0, 1], resized to ``output_size`` if set, normalised
    as ``TwoViewAugment`` does; vectors only become float32.

    Call with (B, C, H, W) uint8 or (B, dim) float; returns float32 of the same layout.
    """

    def __init__(self, config: AugmentConfig = AugmentConfig()) -> None:
        self.config = config

    def __call__(self, batch: Tensor) -> Tensor:
        if batch.dim() == 2:
            return batch.float()
        x = _to_float_images(batch)
        size = self.config.output_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        mean, std = _normalization(self.config, x.shape[1], x.device)
        return (x - mean) / std
