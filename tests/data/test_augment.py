"""Per-sample batched two-view augmentation."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from pauc_ray.data.augment import (
    AugmentConfig,
    EvalTransform,
    TwoViewAugment,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    crop_resize_flip,
    rotate_hue,
    sample_crop_boxes,
    to_grayscale,
)

NO_NORM = {"mean": (0.0,), "std": (1.0,)}


def _images(b=16, c=3, h=12, w=10, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_dtypes_and_views_differ(channels):
    batch = _images(c=channels)
    v1, v2 = TwoViewAugment()(batch, torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == batch.shape
    assert v1.dtype == v2.dtype == torch.float32
    per_sample = (v1 - v2).flatten(1).abs().amax(1)
    assert (per_sample > 1e-3).all()  # the two views differ for every sample
    # and samples got different crops: identical inputs give different outputs
    same = batch[:1].expand(8, -1, -1, -1).contiguous()
    out, _ = TwoViewAugment()(same, torch.Generator().manual_seed(1))
    assert (out[1:] - out[:1]).flatten(1).abs().amax(1).min() > 1e-3


def test_seeded_generator_is_deterministic():
    batch = _images()
    aug = TwoViewAugment()
    a = aug(batch, torch.Generator().manual_seed(5))
    b = aug(batch, torch.Generator().manual_seed(5))
    c = aug(batch, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_output_size():
    v1, _ = TwoViewAugment(AugmentConfig(output_size=7))(_images(), torch.Generator())
    assert v1.shape == (16, 3, 7, 7)


def test_identity_crop_reproduces_input_and_flip_mirrors():
    x = _images(b=4).float() / 255
    whole = torch.tensor([[0.0, 0.0, 10.0, 12.0]]).expand(4, 4)
    no_flip = torch.zeros(4, dtype=torch.bool)
    torch.testing.assert_close(crop_resize_flip(x, whole, no_flip), x, atol=1e-5, rtol=0)
    flipped = crop_resize_flip(x, whole, torch.tensor([True, False, True, False]))
    torch.testing.assert_close(flipped[0], x[0].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(flipped[1], x[1], atol=1e-5, rtol=0)
    # the right half of an image, resized to (H, W // 2) pixel for pixel, is that half
    half = torch.tensor([[5.0, 0.0, 5.0, 12.0]]).expand(4, 4)
    torch.testing.assert_close(crop_resize_flip(x, half, no_flip, (12, 5)), x[..., 5:])


def test_whole_pipeline_with_everything_off_is_identity():
    config = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(10 / 12, 10 / 12), flip_p=0.0,
                           jitter_p=0.0, grayscale_p=0.0, **NO_NORM)  # fmt: skip
    x = _images()
    v1, v2 = TwoViewAugment(config)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(v1, x.float() / 255, atol=1e-5, rtol=0)
    torch.testing.assert_close(v2, v1)


def test_crop_boxes_inside_image_with_requested_area():
    boxes = sample_crop_boxes(2000, 20, 30, (0.2, 1.0), (3 / 4, 4 / 3), torch.Generator())
    x0, y0, w, h = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all()
    assert (x0 + w <= 30 + 1e-4).all() and (y0 + h <= 20 + 1e-4).all()
    area = w * h / 600
    assert area.min() >= 0.2 - 1e-4 and area.max() <= 1 + 1e-4
    ratio = w / h
    fitted = area < 0.999  # all ten draws failing falls back to the whole image
    assert (ratio[fitted] >= 0.75 - 1e-4).all() and (ratio[fitted] <= 4 / 3 + 1e-4).all()


def test_colour_ops_match_torchvision_per_sample():
    x = _images(b=5).float() / 255
    factors = torch.tensor([0.6, 0.9, 1.0, 1.2, 1.4])
    ours = {
        "brightness": adjust_brightness(x, factors),
        "contrast": adjust_contrast(x, factors),
        "saturation": adjust_saturation(x, factors),
    }
    for i, f in enumerate(factors.tolist()):
        torch.testing.assert_close(ours["brightness"][i], TF.adjust_brightness(x[i], f))
        torch.testing.assert_close(ours["contrast"][i], TF.adjust_contrast(x[i], f))
        torch.testing.assert_close(ours["saturation"][i], TF.adjust_saturation(x[i], f))
    torch.testing.assert_close(to_grayscale(x)[:, 0], TF.rgb_to_grayscale(x)[:, 0])


def test_hue_rotation():
    x = _images(b=3).float() / 255
    assert torch.equal(rotate_hue(x, torch.zeros(3)), x)
    grey = x[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(rotate_hue(grey, torch.full((3,), 0.1)), grey)
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 0.8
    shifted = rotate_hue(red, torch.tensor([0.05]))[0, :, 0, 0]
    assert shifted[1] > shifted[2]  # red moves towards yellow (green up), as in HSV
    reference = TF.adjust_hue(red[0], 0.05)[:, 0, 0]
    assert (shifted - reference).abs().max() < 0.1  # an approximation of the HSV shift


def test_grayscale_probability_one_gives_grey_images():
    config = AugmentConfig(grayscale_p=1.0, **NO_NORM)
    v1, _ = TwoViewAugment(config)(_images(), torch.Generator().manual_seed(0))
    assert torch.equal(v1[:, 0], v1[:, 1]) and torch.equal(v1[:, 1], v1[:, 2])


def test_one_channel_jitter_is_contrast_only_without_brightness():
    # saturation and hue must not touch one-channel images: with brightness off, the jitter
    # is contrast alone, an affine map of each image's pixels (up to clamping).
    config = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(10 / 12, 10 / 12), flip_p=0.0,
                           jitter_p=1.0, brightness=0.0, **NO_NORM)  # fmt: skip
    x = _images(c=1)
    v1, _ = TwoViewAugment(config)(x, torch.Generator().manual_seed(0))
    flat_in, flat_out = x.float().flatten(1), v1.flatten(1)
    unclipped = ((flat_out > 0.01) & (flat_out < 0.99)).float()
    assert unclipped.mean() > 0.5
    for i in range(4):
        keep = unclipped[i].bool()
        corr = torch.corrcoef(torch.stack([flat_in[i][keep], flat_out[i][keep]]))[0, 1]
        assert corr > 0.999


def test_vectors_get_gaussian_noise():
    x = torch.randn(4000, 3)
    v1, v2 = TwoViewAugment(AugmentConfig(vector_sigma=0.1))(x, torch.Generator().manual_seed(0))
    assert v1.shape == x.shape and v1.dtype == torch.float32
    noise = torch.cat([v1 - x, v2 - x])
    assert abs(noise.std().item() - 0.1) < 0.005 and abs(noise.mean().item()) < 0.005
    assert not torch.equal(v1, v2)


def test_eval_transform_normalises_without_augmenting():
    x = _images()
    out = EvalTransform()(x)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (x.float() / 255 - mean) / std)
    assert EvalTransform(AugmentConfig(output_size=6))(x).shape == (16, 3, 6, 6)
    grey = EvalTransform()(_images(c=1))
    assert grey.shape == (16, 1, 12, 10)
    vectors = torch.randn(3, 2, dtype=torch.float64)
    assert EvalTransform()(vectors).dtype == torch.float32


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentConfig(crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="hue"):
        AugmentConfig(hue=0.7)
    with pytest.raises(ValueError, match="mean and std"):
        AugmentConfig(mean=(0.5,))
    with pytest.raises(ValueError, match="channels"):
        TwoViewAugment()(torch.zeros(2, 4, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="mean/std"):
        EvalTransform(AugmentConfig(mean=(0.1, 0.2), std=(1.0, 1.0)))(_images())
