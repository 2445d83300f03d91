"""Checkpoint folders: written so a crash never leaves one that looks valid.

A checkpoint is a folder with ``state.pt`` (``torch.save`` of plain tensors, numbers and
strings, so ``torch.load(..., weights_only=True)`` reads it: no arbitrary unpickling) and
``manifest.json`` (size and SHA-256 of ``state.pt``, the epoch), written last. A folder whose
manifest is missing or does not match its ``state.pt`` is incomplete and is never loaded.
No Ray here: the trainer hands these folders to ``ray.train.report``; the service, evaluation
and ``--resume`` read them back through :func:`read_checkpoint`. Run folders may be on an
object store (:mod:`pauc_ray.storage`): :func:`find_latest_checkpoint` then looks through the
store's listing and :func:`read_checkpoint` downloads the folder before checking it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from pauc_ray.storage import Location, is_remote, resolve

logger = logging.getLogger(__name__)

STATE_FILE = "state.pt"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, incomplete or corrupt."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint(directory: str | Path, state: dict[str, Any], epoch: int) -> Path:
    """Writes ``state`` into ``directory`` (created), then the manifest, each via rename."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / STATE_FILE
    tmp = directory / f".{STATE_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, target)
    manifest = {
        "format_version": FORMAT_VERSION,
        "epoch": int(epoch),
        "files": {STATE_FILE: {"bytes": target.stat().st_size, "sha256": _sha256(target)}},
    }
    tmp_manifest = directory / f".{MANIFEST_FILE}.tmp"
    tmp_manifest.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp_manifest, directory / MANIFEST_FILE)
    return directory


def checkpoint_epoch(directory: str | Path, verify: bool = True) -> int:
    """The epoch a complete checkpoint holds; CheckpointError if it is not complete."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CheckpointError(f"{directory}: no {MANIFEST_FILE} (incomplete checkpoint)")
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = manifest["files"][STATE_FILE]
        epoch = int(manifest["epoch"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable manifest ({exc})") from None
    state = directory / STATE_FILE
    if not state.is_file() or state.stat().st_size != expected["bytes"]:
        raise CheckpointError(f"{directory}: {STATE_FILE} missing or of the wrong size")
    if verify and _sha256(state) != expected["sha256"]:
        raise CheckpointError(f"{directory}: {STATE_FILE} does not match its checksum")
    return epoch


def read_checkpoint(
    directory: str | Path | Location, map_location: str | torch.device = "cpu"
) -> dict:
    """Loads a complete checkpoint with ``weights_only=True`` (a local folder, or one on an
    object store, downloaded to a temporary folder and checked there)."""
    if is_remote(directory):
        with tempfile.TemporaryDirectory(prefix="pauc-checkpoint-") as tmp:
            return read_checkpoint(resolve(directory).download(tmp), map_location)
    checkpoint_epoch(directory)
    return torch.load(Path(directory) / STATE_FILE, map_location=map_location, weights_only=True)


def _remote_checkpoint_epoch(folder: Location) -> int:
    """:func:`checkpoint_epoch` without the checksum, from the store's listing (the checksum
    is checked when :func:`read_checkpoint` has the folder)."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        expected = manifest["files"][STATE_FILE]
        epoch = int(manifest["epoch"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / MANIFEST_FILE}: unreadable manifest ({exc})") from None
    state = folder / STATE_FILE
    if not state.is_file() or state.size() != expected["bytes"]:
        raise CheckpointError(f"{folder}: {STATE_FILE} missing or of the wrong size")
    return epoch


def find_latest_checkpoint(run_dir: str | Path | Location) -> Path | str | None:
    """The complete checkpoint folder with the highest epoch anywhere under ``run_dir``: a
    ``Path`` for a local run folder (checksum verified), the folder's URI on an object store
    (size checked; the checksum when it is read)."""
    root = resolve(run_dir)
    best: tuple[int, float, Location] | None = None
    for manifest in root.walk_files():
        if manifest.name != MANIFEST_FILE:
            continue
        folder = manifest.parent
        try:
            if folder.is_local:
                epoch = checkpoint_epoch(folder.path, verify=False)
            else:
                epoch = _remote_checkpoint_epoch(folder)
        except CheckpointError as exc:
            logger.warning("skipping %s", exc)
            continue
        key = (epoch, manifest.mtime(), folder)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return None
    if not best[2].is_local:
        return best[2].uri
    checkpoint_epoch(best[2].path)  # full checksum of the one we will use
    return Path(best[2].path)
