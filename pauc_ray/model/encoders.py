"""Encoders for the MoCo pair. Image backbones (torchvision ResNets) come with the trainer."""

from __future__ import annotations

import torch
from torch import nn


def mlp_layers(in_features: int, hidden: tuple[int, ...]) -> tuple[list[nn.Module], int]:
    """Linear-LayerNorm-ReLU for each hidden width, and the last width. No BatchNorm: the same
    batch statistics in both MoCo branches would let the model find the positive pair through
    them (the leak MoCo's shuffle-BN exists to stop); vector data here is standardised, so
    LayerNorm after each hidden layer is enough."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.LayerNorm(h), nn.ReLU(inplace=True)]
        width = h
    return layers, width


class MLPEncoder(nn.Sequential):
    """An MLP for vector data: ``in -> hidden -> ... -> embedding_dim`` (:func:`mlp_layers`,
    then a linear map to the embedding).

    Args:
        in_features: input size (3 for the paper's blobs).
        embedding_dim: output size (2 for the unit-circle experiment, 128 by default elsewhere).
        hidden: hidden layer widths.
    """

    def __init__(
        self, in_features: int, embedding_dim: int = 128, hidden: tuple[int, ...] = (256, 256)
    ) -> None:
        if in_features < 1 or embedding_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(
                f"in_features, embedding_dim and hidden must be positive, got "
                f"{in_features}, {embedding_dim}, {hidden}"
            )
        layers, width = mlp_layers(in_features, hidden)
        super().__init__(*layers, nn.Linear(width, embedding_dim))
        self.in_features = in_features
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must be (B, {self.in_features}), got {tuple(x.shape)}")
        return super().forward(x)
