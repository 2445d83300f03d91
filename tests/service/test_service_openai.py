"""POST /v1/embeddings: OpenAI's request and response shape over the same models as /embed."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from service_storage import FEATURE_DIM, IMAGE_ID, VECTOR_ID, digit_images, png_b64
from test_service_app import assert_error


def test_images_as_data_uris_give_the_embed_rows(client, registry):
    images = digit_images(3, seed=7)
    uris = [f"data:image/png;base64,{png_b64(i)}" for i in images]
    response = client.post("/v1/embeddings", json={"model": IMAGE_ID, "input": uris})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == IMAGE_ID
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert {d["object"] for d in body["data"]} == {"embedding"}
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    got = np.array([d["embedding"] for d in body["data"]], dtype=np.float32)
    want = registry.get(IMAGE_ID).embed(images[:, None])
    np.testing.assert_allclose(got, want, atol=1e-5)
    embed = client.post("/embed", json={"model": IMAGE_ID, "inputs": uris}).json()
    np.testing.assert_allclose(got, np.array(embed["embeddings"]), atol=1e-6)


def test_one_input_and_base64_encoding(client, registry):
    one = client.post(
        "/v1/embeddings",
        json={"model": VECTOR_ID, "input": [0.5, -1.0, 2.0], "encoding_format": "base64"},
    )
    assert one.status_code == 200, one.text
    (item,) = one.json()["data"]
    decoded = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
    want = registry.get(VECTOR_ID).embed(np.array([[0.5, -1.0, 2.0]], np.float32))[0]
    assert decoded.shape == (FEATURE_DIM,)
    np.testing.assert_allclose(decoded, want, atol=1e-6)
    single_image = client.post(
        "/v1/embeddings", json={"model": IMAGE_ID, "input": png_b64(digit_images(1)[0])}
    )
    assert single_image.status_code == 200 and len(single_image.json()["data"]) == 1


def test_projection_representation_and_user_field(client, registry):
    vectors = [[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]]
    body = client.post(
        "/v1/embeddings",
        json={"model": VECTOR_ID, "input": vectors, "representation": "projection", "user": "u1"},
    ).json()
    want = registry.get(VECTOR_ID).embed(np.array(vectors, np.float32), "projection")
    np.testing.assert_allclose([d["embedding"] for d in body["data"]], want, atol=1e-5)


@pytest.mark.parametrize(
    ("payload", "status", "field", "words"),
    [
        ({"model": VECTOR_ID, "input": [[1, 2]]}, 422, "input[0]", "vector of length 2"),
        ({"model": VECTOR_ID, "input": []}, 422, "input", "empty list"),
        ({"model": IMAGE_ID, "input": ["not base64!"]}, 422, "input[0]", "not valid base64"),
        ({"model": VECTOR_ID, "input": [[1, 2, 3]], "encoding_format": "hex"}, 422,
         "encoding_format", None),
        ({"model": VECTOR_ID, "input": [[1, 2, 3]], "dimensions": 8}, 422, "dimensions", None),
        ({"model": "no-such-model", "input": [[1, 2, 3]]}, 404, "model", "no-such-model"),
    ],
)  # fmt: skip
def test_bad_requests_name_the_field(client, payload, status, field, words):
    assert_error(client.post("/v1/embeddings", json=payload), status, field, words or "")


def test_other_content_types_are_refused(client):
    response = client.post("/v1/embeddings", content=b"x", headers={"content-type": "text/plain"})
    assert_error(response, 415, "content-type", "application/json")
