"""Shipped training recipes: YAML files of ``TrainConfig`` settings measured to learn on a
dataset within a CPU budget (each file says what it was measured to give and how long it took).

A run starts from the dataclass defaults, then the recipe, then ``--config FILE``, then flags.
``--recipe auto`` (the default) takes the recipe named after the dataset when one ships
(``digits``, ``fashion-mnist``), ``--recipe none`` none, ``--recipe NAME`` a shipped one and
``--recipe PATH.yaml`` any file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

RECIPES_DIR = Path(__file__).resolve().parent

__all__ = ["RECIPES_DIR", "load_recipe", "shipped_recipes"]


def shipped_recipes() -> list[str]:
    """Names of the recipes that ship with the package."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(dataset: str, choice: str = "auto") -> tuple[str | None, dict[str, Any]]:
    """``(name, settings)`` of the recipe ``choice`` selects for ``dataset``.

    Raises:
        ValueError: ``choice`` names no shipped recipe and no YAML file, or the file is not a
            mapping.
    """
    if choice == "none":
        return None, {}
    if choice == "auto":
        if dataset not in shipped_recipes():
            return None, {}
        choice = dataset
    path = RECIPES_DIR / f"{choice}.yaml"
    if choice not in shipped_recipes():
        path = Path(choice).expanduser()
        if not path.is_file():
            raise ValueError(
                f"--recipe {choice}: neither a shipped recipe ({', '.join(shipped_recipes())}, "
                "auto, none) nor a file"
            )
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"--recipe {choice}: {path} must hold a mapping of settings")
    return (path.stem if path.parent == RECIPES_DIR else str(path)), data
