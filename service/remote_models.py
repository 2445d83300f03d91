"""``--models s3://bucket/runs``: the served files of runs on an object store, mirrored locally.

The service reads models through one loader from a local ROOT (:mod:`service.registry`), and
every replica or worker process needs them on its own disk anyway, so a remote ROOT is copied
once at start into a local cache folder: for each run folder that holds
``export/model.json``, only what is served (``export/model.json``, ``export/model.pt``,
``summary.json``, ``nemd_report.json``), never its checkpoints, clustering cache or
TensorBoard files. A file already in the cache with the store's size and no older than the
store's copy is not copied again, so a restart with a warm cache reads only the listing. Each file is written whole (a rename), and
``model.json`` after ``model.pt``, so a process that reads the cache while another fills it
never takes a half export for a complete one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
from pathlib import Path

from pauc_ray.storage import Location, resolve

__all__ = ["MODELS_CACHE_ENV", "default_cache_dir", "mirror_runs"]

logger = logging.getLogger(__name__)

MODELS_CACHE_ENV = "PAUC_MODELS_CACHE"
_EXPORT = "export"
_SERVED = ("export/model.pt", "export/model.json", "summary.json", "nemd_report.json")


def default_cache_dir(uri: str) -> Path:
    """``$PAUC_MODELS_CACHE`` (else ``~/.cache/pauc-ray/models``) / a folder per store URI."""
    base = Path(os.environ.get(MODELS_CACHE_ENV) or Path.home() / ".cache" / "pauc-ray" / "models")
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    return base.expanduser() / digest


def _run_folders(root: Location, max_depth: int) -> list[str]:
    """Run folders (paths relative to ``root``) holding ``export/model.json``, from one
    recursive listing of the store."""
    runs = set()
    for file in root.walk_files():
        relative = posixpath.relpath(file.path, root.path)
        parts = relative.split("/")
        if parts[-2:] != [_EXPORT, "model.json"] or len(parts) < 3:
            continue
        run = parts[:-2]
        if len(run) > max_depth or any(p.startswith((".", "checkpoint_")) for p in run):
            continue
        runs.add("/".join(run))
    return sorted(runs)


def _up_to_date(target: Path, source: Location) -> bool:
    if not target.is_file():
        return False
    stat = target.stat()
    return stat.st_size == source.size() and stat.st_mtime >= source.mtime()


def mirror_runs(uri: str, cache_dir: str | Path | None = None, max_depth: int = 4) -> Path:
    """Copies the served files of every run under ``uri`` into ``cache_dir`` (default:
    :func:`default_cache_dir`) and returns that folder, the ROOT to serve."""
    root = resolve(uri)
    if not root.is_dir():
        raise ValueError(f"{uri!r}: no such folder on its store")
    local = Path(cache_dir) if cache_dir is not None else default_cache_dir(root.uri)
    local.mkdir(parents=True, exist_ok=True)
    runs = _run_folders(root, max_depth)
    copied = 0
    for run in runs:
        for name in _SERVED:
            source, target = root / f"{run}/{name}", local / run / name
            if not source.is_file():
                continue
            if _up_to_date(target, source):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(source.read_bytes())
            os.replace(tmp, target)
            copied += 1
    logger.info(
        "models: %d run(s) under %s, %d file(s) copied to %s", len(runs), uri, copied, local
    )
    return local.resolve()
