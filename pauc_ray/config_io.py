"""Settings as data: every config dataclass from a (nested) mapping, YAML/JSON files, merging.

One coercion for every frozen config dataclass of the project (``TrainConfig`` and its sections,
``AugmentConfig`` saved in an export, ``NEMDConfig``, the sweep's base settings). It lives here,
below the trainer, so that evaluation, tuning and the experiments read a config without
importing ``pauc_ray.train``. Unknown keys are errors that name the setting and the known ones.

Hand-written rather than pydantic because the configs are plain frozen dataclasses shared with
code (the losses, the clustering actor) that must not depend on a validation library; the
coercion needs only the dataclass's own type hints.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["coerce", "from_dict", "load_config_file", "merge"]


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """``value`` (from YAML, JSON, an environment variable or a flag) as type ``annotation``:
    lists and comma/space separated strings become tuples, mappings become nested dataclasses,
    ``"none"``/``"null"`` becomes None for optional fields. ValueError names ``where``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        ):
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], where)
    if is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} must be a mapping, got {value!r}")
        return from_dict(annotation, value, where)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, Sequence):
            raise ValueError(f"{where} must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(coerce(v, item, f"{where}[]") for v in value)
    try:
        if annotation is bool:
            if isinstance(value, str):
                lowered = value.lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return lowered in ("true", "1", "yes")
            return bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be {annotation.__name__}, got {value!r}") from None
    return value


def from_dict(cls: type, data: Mapping[str, Any], where: str = "config") -> Any:
    """Builds dataclass ``cls`` from a (nested) mapping; unknown keys are errors."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; known: {sorted(names)}")
    values = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**values)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON file (empty file: ``{}``); ValueError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--config {path}: no such file")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ValueError(f"--config {path}: not valid YAML/JSON ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValueError(f"--config {path}: expected a mapping of settings")
    return dict(data)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge (nested mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
