"""pauc_ray.storage: local folders, fsspec's memory filesystem and a loopback S3 server behave
the same through one Location."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pauc_ray.storage import Location, StorageError, is_remote, resolve, storage_env


@pytest.fixture(params=["local", "memory", "s3"])
def place(request, tmp_path) -> Location:
    """An empty folder on each kind of store."""
    if request.param == "local":
        return resolve(tmp_path / "store")
    if request.param == "memory":
        return resolve(f"memory://pauc-tests/{uuid.uuid4().hex}")
    bucket = request.getfixturevalue("s3_bucket")
    return resolve(f"{bucket}/prefix")


def test_is_remote():
    assert is_remote("s3://b/p") and is_remote("memory://x")
    assert not is_remote("runs") and not is_remote("/tmp/x") and not is_remote("file:///tmp/x")


def test_local_paths_resolve_like_pathlib(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    where = resolve("runs/a")
    assert where.is_local and where.local_path == tmp_path / "runs" / "a"
    assert str(where) == str(tmp_path / "runs" / "a")
    assert resolve("~").local_path == Path.home().resolve()
    assert resolve(f"file://{tmp_path}").local_path == tmp_path
    assert (where / "b" / "c.json").local_path == tmp_path / "runs" / "a" / "b" / "c.json"
    assert (where / "b").parent == where and (where / "b").name == "b"


def test_uris_keep_their_scheme_in_joins(s3_bucket):
    where = resolve(f"{s3_bucket}/runs/")
    assert str(where) == f"{s3_bucket}/runs" and not where.is_local and where.local_path is None
    child = where / "x" / "config.json"
    assert str(child) == f"{s3_bucket}/runs/x/config.json"
    assert child.path == f"{s3_bucket.removeprefix('s3://')}/runs/x/config.json"
    assert str(child.parent.parent) == str(where)


def test_write_read_list_and_delete(place):
    assert not place.exists() or list(place.walk_files()) == []
    (place / "b.json").write_text('{"a": 1}')
    (place / "sub" / "deep" / "c.bin").write_bytes(b"\x00\x01")
    assert (place / "b.json").read_text() == '{"a": 1}'
    assert (place / "b.json").is_file() and (place / "b.json").size() == 8
    assert (place / "sub").is_dir() and not (place / "sub").is_file()
    assert not (place / "missing").exists()
    names = [f.path.removeprefix(place.path + "/") for f in place.walk_files()]
    assert names == ["b.json", "sub/deep/c.bin"]
    assert [c.name for c in place.children()] == ["b.json", "sub"]
    (place / "b.json").write_text("{}")  # overwritten whole
    assert (place / "b.json").read_text() == "{}"
    (place / "sub").delete()
    assert not (place / "sub" / "deep" / "c.bin").exists()
    assert [f.name for f in place.walk_files()] == ["b.json"]


def test_local_writes_leave_no_temporary_files(tmp_path):
    where = resolve(tmp_path) / "x.json"
    for i in range(3):
        where.write_text(str(i))
    assert sorted(os.listdir(tmp_path)) == ["x.json"] and where.read_text() == "2"


def test_upload_in_order_and_download_back(place, tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "first.pt").write_bytes(b"weights")
    (src / "last.json").write_text("{}")
    (src / "d" / "e.txt").write_text("e")
    place.upload(src, names=["first.pt", "last.json"])
    assert sorted(f.name for f in place.walk_files()) == ["first.pt", "last.json"]
    place.upload(src)  # everything
    back = place.download(tmp_path / "back")
    assert (back / "first.pt").read_bytes() == b"weights"
    assert (back / "d" / "e.txt").read_text() == "e"
    assert sorted(p.name for p in back.rglob("*") if p.is_file()) == [
        "e.txt",
        "first.pt",
        "last.json",
    ]


def test_an_unknown_scheme_is_a_clear_error():
    with pytest.raises(StorageError, match="no filesystem for this scheme"):
        resolve("nosuchscheme://bucket/x")


def test_storage_env_is_only_object_store_settings(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/k.json")
    monkeypatch.setenv("PAUC_UNRELATED", "1")
    env = storage_env()
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/k.json"
    assert "PAUC_UNRELATED" not in env and "PATH" not in env
