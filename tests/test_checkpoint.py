"""pauc_ray.checkpoint: complete folders load, incomplete or corrupt ones never do."""

from __future__ import annotations

import json
import os

import pytest
import torch

from pauc_ray.checkpoint import (
    MANIFEST_FILE,
    STATE_FILE,
    CheckpointError,
    checkpoint_epoch,
    find_latest_checkpoint,
    read_checkpoint,
    write_checkpoint,
)


def _state(value: float = 1.0) -> dict:
    return {"weights": torch.full((3, 2), value), "epoch": 4, "note": "plain"}


def test_round_trip_reads_back_the_same_tensors(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", _state(2.5), epoch=4)
    assert checkpoint_epoch(folder) == 4
    back = read_checkpoint(folder)
    torch.testing.assert_close(back["weights"], torch.full((3, 2), 2.5))
    assert back["note"] == "plain" and back["epoch"] == 4
    assert not list(folder.glob(".*.tmp"))  # no temporary file left behind


def test_missing_manifest_is_incomplete(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", _state(), epoch=1)
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        read_checkpoint(folder)


def test_state_of_another_size_is_refused(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", _state(), epoch=1)
    with (folder / STATE_FILE).open("ab") as f:
        f.write(b"x")
    with pytest.raises(CheckpointError, match="wrong size"):
        checkpoint_epoch(folder, verify=False)


def test_state_of_the_same_size_but_other_bytes_fails_the_checksum(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", _state(), epoch=1)
    data = bytearray((folder / STATE_FILE).read_bytes())
    data[-1] ^= 0xFF
    (folder / STATE_FILE).write_bytes(bytes(data))
    assert checkpoint_epoch(folder, verify=False) == 1  # the cheap check cannot see it
    with pytest.raises(CheckpointError, match="checksum"):
        read_checkpoint(folder)


def test_unreadable_manifest_is_named(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", _state(), epoch=1)
    (folder / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable manifest"):
        checkpoint_epoch(folder)


def test_latest_skips_partial_folders_and_takes_the_highest_complete_epoch(tmp_path):
    run = tmp_path / "run"
    write_checkpoint(run / "checkpoint_epoch_00002", _state(2.0), epoch=2)
    write_checkpoint(run / "nested" / "checkpoint_epoch_00004", _state(4.0), epoch=4)
    # a crash after state.pt but before the manifest: a folder that must never be chosen
    partial = run / "checkpoint_epoch_00006"
    partial.mkdir()
    torch.save(_state(6.0), partial / STATE_FILE)
    # a folder whose manifest promises another file size
    broken = write_checkpoint(run / "checkpoint_epoch_00008", _state(8.0), epoch=8)
    manifest = json.loads((broken / MANIFEST_FILE).read_text())
    manifest["files"][STATE_FILE]["bytes"] += 1
    (broken / MANIFEST_FILE).write_text(json.dumps(manifest))
    latest = find_latest_checkpoint(run)
    assert latest == run / "nested" / "checkpoint_epoch_00004"
    torch.testing.assert_close(read_checkpoint(latest)["weights"], torch.full((3, 2), 4.0))


def test_latest_breaks_epoch_ties_by_the_newer_manifest(tmp_path):
    old = write_checkpoint(tmp_path / "a", _state(1.0), epoch=3)
    new = write_checkpoint(tmp_path / "b", _state(2.0), epoch=3)
    os.utime(old / MANIFEST_FILE, (1_000_000, 1_000_000))
    assert find_latest_checkpoint(tmp_path) == new


def test_no_checkpoint_gives_none(tmp_path):
    assert find_latest_checkpoint(tmp_path) is None
