"""POST /embed through the test client: JSON and multipart, every bad input, then still up."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from service_storage import (
    EMBEDDING_DIM,
    FEATURE_DIM,
    IMAGE_ID,
    VECTOR_ID,
    digit_images,
    encode,
    png_b64,
)
from test_service_app import assert_body_limit, assert_error


def test_vectors(client, registry):
    vectors = [[0.5, -1.0, 2.0], [0.0, 0.0, 1.0]]
    response = client.post("/embed", json={"model": VECTOR_ID, "inputs": vectors})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == VECTOR_ID and body["dimension"] == FEATURE_DIM and body["count"] == 2
    assert body["representation"] == "backbone"
    got = np.array(body["embeddings"])
    want = registry.get(VECTOR_ID).embed(np.array(vectors, np.float32))
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("representation", ["backbone", "projection"])
def test_either_representation_on_request(client, registry, representation):
    images = digit_images(3, seed=4)
    response = client.post(
        "/embed",
        json={
            "model": IMAGE_ID,
            "inputs": [png_b64(i) for i in images],
            "representation": representation,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    size = FEATURE_DIM if representation == "backbone" else EMBEDDING_DIM
    assert body["representation"] == representation and body["dimension"] == size
    want = registry.get(IMAGE_ID).embed(images[:, None], representation=representation)
    assert want.shape == (3, size)
    np.testing.assert_allclose(np.array(body["embeddings"]), want, atol=1e-5)
    files = [("files", (f"{i}.png", encode(im, "PNG"), "image/png")) for i, im in enumerate(images)]
    response = client.post(
        "/embed", data={"model": IMAGE_ID, "representation": representation}, files=files
    )
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.array(response.json()["embeddings"]), want, atol=1e-5)


def test_an_unknown_representation_is_refused(client):
    payload = {"model": VECTOR_ID, "inputs": [[1, 2, 3]], "representation": "logits"}
    assert_error(client.post("/embed", json=payload), 422, "representation")
    files = [("files", ("a.png", encode(digit_images(1)[0], "PNG"), "image/png"))]
    response = client.post("/embed", data={"model": IMAGE_ID, "representation": "x"}, files=files)
    assert_error(response, 422, "representation")


def test_base64_images(client, registry):
    images = digit_images(4, seed=1)
    response = client.post(
        "/embed", json={"model": IMAGE_ID, "inputs": [png_b64(i) for i in images]}
    )
    assert response.status_code == 200
    want = registry.get(IMAGE_ID).embed(images[:, None])
    np.testing.assert_allclose(np.array(response.json()["embeddings"]), want, atol=1e-5)


def test_multipart_upload(client, registry):
    images = digit_images(3, seed=2)
    files = [("files", (f"{i}.png", encode(im, "PNG"), "image/png")) for i, im in enumerate(images)]
    response = client.post("/embed", data={"model": IMAGE_ID}, files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3 and body["model"] == IMAGE_ID
    want = registry.get(IMAGE_ID).embed(images[:, None])
    np.testing.assert_allclose(np.array(body["embeddings"]), want, atol=1e-5)


GOOD_IMAGE = png_b64(digit_images(1)[0])


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({"model": IMAGE_ID, "inputs": [GOOD_IMAGE, "%%%"]}, "inputs[1]", "not valid base64"),
        (
            {"model": IMAGE_ID, "inputs": [base64.b64encode(b"hello").decode()]},
            "inputs[0]",
            "not a PNG or JPEG image",
        ),
        (
            {"model": IMAGE_ID, "inputs": [png_b64(np.zeros((28, 28), np.uint8))]},
            "inputs[0]",
            "image is 28x28 (HxW), expected 8x8",
        ),
        (
            {"model": IMAGE_ID, "inputs": [png_b64(np.zeros((8, 8, 3), np.uint8))]},
            "inputs[0]",
            "expected 1 channel(s)",
        ),
        ({"model": VECTOR_ID, "inputs": [[1, 2, 3], [1, 2]]}, "inputs[1]", "length 2, expected 3"),
        ({"model": VECTOR_ID, "inputs": []}, "inputs", "empty list"),
        ({"model": VECTOR_ID, "inputs": [[1, 2, 3]] * 17}, "inputs", "17 items, at most 16"),
        ({"model": VECTOR_ID, "inputs": [GOOD_IMAGE]}, "inputs[0]", "takes vectors"),
        ({"model": IMAGE_ID, "inputs": [[1, 2, 3]]}, "inputs[0]", "takes images"),
        ({"model": VECTOR_ID}, "inputs", "required field missing"),
        ({"inputs": [[1, 2, 3]]}, "model", "required field missing"),
        ({"model": 3, "inputs": [[1, 2, 3]]}, "model", "valid string"),
        ({"model": VECTOR_ID, "inputs": "abc"}, "inputs", "valid list"),
        ({"model": VECTOR_ID, "inputs": [[1, 2, 3]], "extra": 1}, "extra", "unknown field"),
    ],
)
def test_bad_json_inputs_are_named(client, payload, field, says):
    assert_error(client.post("/embed", json=payload), 422, field, says)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity(client, token):
    body = f'{{"model": "{VECTOR_ID}", "inputs": [[1, 2, 3], [1, {token}, 3]]}}'
    response = client.post("/embed", content=body, headers={"content-type": "application/json"})
    assert_error(response, 422, "inputs[1]", "NaN or infinity")


@pytest.mark.parametrize(
    ("content", "content_type", "status", "field", "says"),
    [
        (b'{"model": ', "application/json", 400, "body", "not valid JSON"),
        (b"", "application/json", 400, "body", "empty"),
        (b"\xff\xfe", "application/json", 400, "body", "not valid JSON"),
        (b"[" * 100_00 + b"]" * 100_00, "application/json", 400, "body", "not valid JSON"),
        (b"[1, 2]", "application/json", 422, "body", "expected a JSON object, got list"),
        (b"model=x", "text/plain", 415, "content-type", "expected application/json"),
    ],
)
def test_malformed_bodies(client, content, content_type, status, field, says):
    response = client.post("/embed", content=content, headers={"content-type": content_type})
    assert_error(response, status, field, says)


def test_body_too_large(client):
    assert_body_limit(client, "/embed")


def test_bad_multipart_uploads_are_named(client):
    good = encode(digit_images(1)[0], "PNG")
    files = [("files", ("a.png", good, "image/png")), ("files", ("b.txt", b"hi", "text/plain"))]
    response = client.post("/embed", data={"model": IMAGE_ID}, files=files)
    assert_error(response, 422, "files[1]", "files[1] (b.txt): not a PNG or JPEG image")
    small = encode(np.zeros((4, 4), np.uint8), "PNG")
    response = client.post(
        "/embed", data={"model": IMAGE_ID}, files=[("files", ("s.png", small, "image/png"))]
    )
    assert_error(response, 422, "files[0]", "image is 4x4 (HxW), expected 8x8")
    response = client.post("/embed", files=[("files", ("a.png", good, "image/png"))])
    assert_error(response, 422, "model", "required form field")
    response = client.post("/embed", data={"model": IMAGE_ID})
    assert_error(response, 422, "files", "empty list")
    response = client.post(
        "/embed", data={"model": VECTOR_ID}, files=[("files", ("a.png", good, "image/png"))]
    )
    assert_error(response, 422, "files", "takes vectors")
    response = client.post(
        "/embed", data={"model": IMAGE_ID, "colour": "red"}, files=[("files", ("a.png", good))]
    )
    assert_error(response, 422, "colour", "unknown form field")
    many = [("files", (f"{i}.png", good, "image/png")) for i in range(17)]
    response = client.post("/embed", data={"model": IMAGE_ID}, files=many)
    assert_error(response, 422, "files", "Too many files")
    response = client.post(
        "/embed",
        content=b"--xyz\r\nnot a part",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code in (400, 422) and response.json()["field"] in ("body", "model")


def test_unknown_model(client):
    response = client.post("/embed", json={"model": "no-such-run", "inputs": [[1, 2, 3]]})
    assert_error(response, 404, "model", "model: unknown model 'no-such-run'")


def test_still_serving_after_every_bad_request(client):
    response = client.post("/embed", json={"model": VECTOR_ID, "inputs": [[1, 2, 3]]})
    assert response.status_code == 200 and response.json()["count"] == 1
    assert json.loads(client.get("/readyz").text)["status"] == "ready"
