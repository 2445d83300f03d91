"""Where runs and datasets live: a local folder or any filesystem pyarrow or fsspec knows.

A location is written as a local path (``./runs``, ``/data/runs``) or a URI
(``s3://bucket/prefix``, ``gs://...``, ``hdfs://...``, or any fsspec protocol such as
``memory://`` or ``abfs://``). :func:`resolve` turns it into a :class:`Location`: a
``pyarrow.fs.FileSystem`` and a path on it. pyarrow's own filesystems (local, S3, GCS, HDFS)
come first, because Ray Train and Ray Data take the same ``pyarrow.fs.FileSystem`` objects;
other schemes go through fsspec wrapped in ``pyarrow.fs.PyFileSystem(FSSpecHandler(...))``.

S3 settings come from the usual places (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL for an S3-compatible store such as MinIO, or URI options
such as ``s3://bucket/prefix?endpoint_override=host:9000&scheme=http``).

The only hand-written parts are what pyarrow's API leaves to its callers: a whole-object
write that readers never see half done (a rename on local disks, where a crash could leave a
truncated file; one PUT on object stores, whose objects appear whole or not at all), and
copying one folder's files in a chosen order (an export's ``model.json`` marks it complete, so
it must land last).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

__all__ = ["Location", "StorageError", "is_remote", "resolve", "storage_env"]

# credentials and endpoints of the object stores pyarrow and fsspec read from the environment
_STORAGE_ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCS_", "AZURE_STORAGE_", "HADOOP_", "ARROW_")


class StorageError(ValueError):
    """A location that cannot be opened (unknown scheme, missing filesystem package)."""


def is_remote(where: str | os.PathLike | Location) -> bool:
    """Whether ``where`` names something other than a local folder (a URI with a scheme)."""
    if isinstance(where, Location):
        return not where.is_local
    text = os.fspath(where)
    return "://" in text and not text.startswith("file://")


def storage_env() -> dict[str, str]:
    """This process's object-store settings (``AWS_*``, ``GOOGLE_*``, ...), for the Ray
    processes it starts: a worker must reach the run's store the way the driver does."""
    return {k: v for k, v in os.environ.items() if k.startswith(_STORAGE_ENV_PREFIXES)}


def resolve(where: str | os.PathLike | Location) -> Location:
    """The :class:`Location` of a local path or a URI (see the module docstring)."""
    if isinstance(where, Location):
        return where
    text = os.fspath(where)
    if not is_remote(text):
        local = Path(text.removeprefix("file://")).expanduser().resolve()
        return Location(pafs.LocalFileSystem(), local.as_posix(), str(local))
    if text.startswith("s3://") and "?" not in text:
        return Location(_s3_from_env(), text.removeprefix("s3://").rstrip("/"), text.rstrip("/"))
    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
    except (ValueError, NotImplementedError):  # ArrowInvalid: a scheme pyarrow does not know
        filesystem, path = _fsspec_filesystem(text)
    uri = text.split("?", 1)[0].rstrip("/")
    return Location(filesystem, path.rstrip("/"), uri)


def _s3_from_env() -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem with the endpoint, region and keys of this process's
    environment written into it, so that the copy Ray pickles into its own processes (Ray
    Train's controller, workers on other nodes) reaches the same store with the same keys even
    where their environment lacks them. Without keys in the environment the remote processes
    use their own credential chain (instance roles)."""
    env = os.environ
    options: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme or "https")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        options.update(access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env["AWS_SECRET_ACCESS_KEY"])
        if env.get("AWS_SESSION_TOKEN"):
            options["session_token"] = env["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**options)


def _fsspec_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with ray[data]
        raise StorageError(
            f"{uri}: pyarrow does not know this scheme and fsspec is missing"
        ) from None
    try:
        filesystem, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise StorageError(f"{uri}: no filesystem for this scheme ({exc})") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path


@dataclass(frozen=True)
class Location:
    """A path on a filesystem, with the URI a user would write for it.

    Attributes:
        fs: the ``pyarrow.fs.FileSystem``.
        path: the path on ``fs`` (no scheme; ``bucket/prefix`` on S3).
        uri: how to name it (the local path, or ``s3://bucket/prefix``); ``str()`` gives it.
    """

    fs: pafs.FileSystem
    path: str
    uri: str

    def __str__(self) -> str:
        return self.uri

    def __truediv__(self, name: str) -> Location:
        name = str(name).strip("/")
        uri = str(Path(self.uri) / name) if self.is_local else posixpath.join(self.uri, name)
        return Location(self.fs, posixpath.join(self.path, name), uri)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent(self) -> Location:
        parent_uri = str(Path(self.uri).parent) if self.is_local else self.uri.rsplit("/", 1)[0]
        return Location(self.fs, posixpath.dirname(self.path), parent_uri)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    @property
    def local_path(self) -> Path | None:
        """The local folder or file, or None on a remote store."""
        return Path(self.path) if self.is_local else None

    # -- queries ------------------------------------------------------------------------------
    def _type(self) -> pafs.FileType:
        return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def size(self) -> int:
        return int(self.fs.get_file_info(self.path).size)

    def mtime(self) -> float:
        info = self.fs.get_file_info(self.path)
        return info.mtime.timestamp() if info.mtime is not None else 0.0

    def walk_files(self) -> Iterator[Location]:
        """Every file under this folder (none if it does not exist), in sorted order."""
        selector = pafs.FileSelector(self.path, recursive=True, allow_not_found=True)
        infos = [i for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File]
        for info in sorted(infos, key=lambda i: i.path):
            relative = posixpath.relpath(info.path, self.path)
            yield self / relative

    def children(self) -> list[Location]:
        """The entries right below this folder (files and folders), sorted by name."""
        selector = pafs.FileSelector(self.path, recursive=False, allow_not_found=True)
        return [
            self / posixpath.basename(i.path)
            for i in sorted(self.fs.get_file_info(selector), key=lambda i: i.path)
        ]

    # -- reading and writing -----------------------------------------------------------------
    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def mkdir(self) -> None:
        """Creates the folder (and its parents); on object stores, a no-op where prefixes
        need no creating."""
        self.fs.create_dir(self.path, recursive=True)

    def write_bytes(self, data: bytes) -> Location:
        """Writes the whole file so that readers never see part of it (see module docstring)."""
        self.parent.mkdir()
        if self.is_local:
            tmp = posixpath.join(posixpath.dirname(self.path), f".{self.name}.{uuid.uuid4().hex}")
            try:
                with self.fs.open_output_stream(tmp) as stream:
                    stream.write(data)
                os.replace(tmp, self.path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            with self.fs.open_output_stream(self.path) as stream:
                stream.write(data)
        return self

    def write_text(self, text: str) -> Location:
        return self.write_bytes(text.encode("utf-8"))

    def delete(self) -> None:
        """Removes the file, or the folder with everything in it; nothing if absent."""
        kind = self._type()
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(self.path)

    def upload(self, local: str | Path, names: list[str] | None = None) -> Location:
        """Copies the local folder's files here: ``names`` in that order (each written
        whole), else every file; returns self."""
        local = Path(local)
        files = (
            names
            if names is not None
            else [p.relative_to(local).as_posix() for p in sorted(local.rglob("*")) if p.is_file()]
        )
        for name in files:
            (self / name).write_bytes((local / name).read_bytes())
        return self

    def download(self, local: str | Path) -> Path:
        """Copies every file under this folder into ``local`` (created); returns it."""
        local = Path(local)
        local.mkdir(parents=True, exist_ok=True)
        if self.is_local and Path(self.path).resolve() == local.resolve():
            return local
        for file in self.walk_files():
            target = local / posixpath.relpath(file.path, self.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            pafs.copy_files(file.path, target.as_posix(), file.fs, pafs.LocalFileSystem())
        return local
