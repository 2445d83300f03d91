"""pauc_ray.export: the one loader, strict weights and strict preprocessing."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pauc_ray.data.augment import AugmentConfig
from pauc_ray.export import ExportError, export_model, load_exported_model, parse_preprocessing
from pauc_ray.model.backbones import EncoderSpec, build_encoder

SPEC = EncoderSpec("mlp", "vector", (3,), embedding_dim=4)


def _export(tmp_path, preprocessing):
    encoder = build_encoder(SPEC, seed=0)
    meta = {"method": "pauc"}
    if preprocessing is not None:
        meta["preprocessing"] = preprocessing
    return export_model(tmp_path / "export", encoder.state_dict(), SPEC, meta), encoder


def test_preprocessing_round_trips_into_the_loaded_model(tmp_path):
    augment = AugmentConfig(output_size=12, mean=(0.5,), std=(0.25,))
    path, encoder = _export(tmp_path, {"augment": dataclasses.asdict(augment)})
    model = load_exported_model(path)
    assert model.preprocessing == augment
    x = torch.randn(5, 3)
    torch.testing.assert_close(model.encoder(x), encoder.eval()(x))


def test_unknown_preprocessing_key_is_an_error_naming_the_file(tmp_path):
    raw = dataclasses.asdict(AugmentConfig()) | {"sharpen": 2.0}
    path, _ = _export(tmp_path, {"augment": raw})
    with pytest.raises(ExportError, match=r"model\.json.*unknown setting.*sharpen"):
        load_exported_model(path)


def test_bad_preprocessing_value_is_an_error(tmp_path):
    raw = dataclasses.asdict(AugmentConfig()) | {"output_size": "large"}
    with pytest.raises(ExportError, match="output_size"):
        parse_preprocessing({"preprocessing": {"augment": raw}})


def test_missing_preprocessing_falls_back_to_the_defaults(tmp_path):
    path, _ = _export(tmp_path, None)
    assert load_exported_model(path).preprocessing == AugmentConfig()


def test_weights_of_another_spec_are_refused(tmp_path):
    path, _ = _export(tmp_path, {"augment": dataclasses.asdict(AugmentConfig())})
    meta = json.loads((path / "model.json").read_text())
    meta["spec"]["embedding_dim"] = 8
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match="do not match"):
        load_exported_model(path)


def test_an_image_encoder_loads_in_channels_last_on_the_cpu_with_the_same_embeddings(tmp_path):
    spec = EncoderSpec("convnet", "image", (1, 12, 12), width=4, embedding_dim=8)
    encoder = build_encoder(spec, seed=0).eval()
    path = export_model(tmp_path / "export", encoder.state_dict(), spec, {"method": "pauc"})
    model = load_exported_model(path)
    conv = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(6, 1, 12, 12)  # NCHW inputs, as the service and evaluation give them
    out = model.encoder(x)
    torch.testing.assert_close(out, encoder(x), atol=1e-5, rtol=1e-4)
    # the weights file holds the same values whatever the layout they ran in
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.encoder.state_dict().values(), encoder.state_dict().values())
    )
