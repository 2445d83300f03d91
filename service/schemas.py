"""Request and response bodies (pydantic), which are also the OpenAPI schema.

Requests are strict (no string-to-number coercion) and reject unknown fields, so a typo such
as ``"num_cluster"`` is a 422 naming it rather than a silently ignored setting. Inputs are
checked item by item in :mod:`service.inputs` against the model they are for, which pydantic
cannot know; the schema still says what an item may be.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from pauc_ray.config import NEMDConfig

__all__ = [
    "DatasetEntry",
    "EmbedRequest",
    "EmbedResponse",
    "ErrorBody",
    "ModelEntry",
    "NemdAccepted",
    "NemdRequest",
    "OpenAIEmbeddingsRequest",
    "OpenAIEmbeddingsResponse",
]

_NEMD = NEMDConfig()

InputItem = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": "base64 PNG or JPEG (image models)"},
                {
                    "type": "array",
                    "items": {"type": "number"},
                    "description": "floats (vector models)",
                },
            ]
        }
    ),
]

_INPUTS_DOC = (
    "Raw inputs: base64 PNG/JPEG images of the model's input size and channels (a data URL "
    "prefix is accepted), or vectors of the model's length. See GET /models."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


Representation = Literal["backbone", "projection"]
_REPRESENTATION_DOC = (
    "backbone: the encoder's pooled features with the projection head removed (what kNN and "
    "the linear probe evaluate, as in MoCo v2 and PCL); projection: the head's output, the "
    "space the contrastive losses and the prototypes live in"
)


class EmbedRequest(_Strict):
    model: str = Field(min_length=1, max_length=512, description="model id (GET /models)")
    inputs: list[InputItem] = Field(description=_INPUTS_DOC)
    representation: Representation = Field("backbone", description=_REPRESENTATION_DOC)


class EmbedResponse(BaseModel):
    model: str
    representation: Representation = Field(description=_REPRESENTATION_DOC)
    dimension: int = Field(description="embedding size D")
    count: int = Field(description="number of embeddings N")
    embeddings: list[list[float]] = Field(description="(N, D), each row L2-normalised")


class OpenAIEmbeddingsRequest(_Strict):
    """``POST /v1/embeddings`` in OpenAI's request shape (``input`` as one or more image data
    URIs or base64 strings, or one or more vectors)."""

    model: str = Field(min_length=1, max_length=512, description="model id (GET /models)")
    input: Annotated[
        Any,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "description": "one image: a data URI or base64"},
                    {"type": "array", "items": {"type": "string"}, "description": "images"},
                    {"type": "array", "items": {"type": "number"}, "description": "one vector"},
                    {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "number"}},
                        "description": "vectors",
                    },
                ]
            }
        ),
    ] = Field(description="what to embed, in the model's input kind (GET /models)")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="float: lists of numbers; base64: little-endian float32 bytes"
    )
    representation: Representation = Field("backbone", description=_REPRESENTATION_DOC)
    user: str | None = Field(None, max_length=256, description="accepted and ignored")


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class OpenAIUsage(BaseModel):
    prompt_tokens: int = Field(description="inputs embedded (one per input)")
    total_tokens: int = Field(description="the same")


class OpenAIEmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage


class NemdRequest(_Strict):
    model: str = Field(min_length=1, max_length=512, description="model id (GET /models)")
    inputs: list[InputItem] | None = Field(None, description=_INPUTS_DOC + " Or give dataset.")
    dataset: str | None = Field(
        None, min_length=1, max_length=128, description="a dataset under ROOT/datasets"
    )
    split: str = Field(
        "train", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="split of the dataset"
    )
    num_clusters: list[Annotated[int, Field(ge=2, le=100_000)]] = Field(
        default_factory=lambda: [10],
        min_length=1,
        max_length=8,
        description="K of each clustering (k-means on the embeddings), distinct",
    )
    epsilon: float = Field(
        _NEMD.epsilon, gt=0, le=10, allow_inf_nan=False, description="Sinkhorn regularisation"
    )
    max_points: int | None = Field(
        _NEMD.max_points, ge=1, le=1_000_000, description="points kept per prototype; null: all"
    )
    max_pairs: int | None = Field(
        _NEMD.max_pairs, ge=1, le=10_000_000, description="prototype pairs evaluated; null: all"
    )
    seed: int = Field(_NEMD.seed, ge=0, le=2**32 - 1, description="seed of every subsample")
    matrix: bool = Field(False, description="include each K x K W1 matrix in the report")

    @field_validator("num_clusters")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"values must be distinct, got {value}")
        return value


class NemdAccepted(BaseModel):
    id: str
    status: str
    url: str = Field(description="poll this for the status and the report")


class ModelEntry(BaseModel):
    id: str
    method: str | None
    dataset: str | None
    backbone: str
    input_kind: str
    input_shape: list[int]
    embedding_dim: int = Field(description="size of /embed's default (backbone) embedding")
    projection_dim: int = Field(description="size with representation=projection")
    epoch: int | None
    metrics: dict[str, Any]
    has_nemd_report: bool


class DatasetEntry(BaseModel):
    name: str
    kind: str
    sample_shape: list[int]
    counts: dict[str, int]
    num_classes: int | None


class ErrorBody(BaseModel):
    error: str = Field(description="stable error code, e.g. invalid_input, not_found")
    field: str | None = Field(description="the offending field or item, e.g. inputs[3]")
    message: str
    errors: list[dict[str, Any]]
