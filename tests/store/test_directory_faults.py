"""The directory store against what can be planted inside a run: symbolic links that lead out
of it, FIFOs and other files that are not regular files (issue 12, point 9)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nlfs.store import DirectoryStore, NotFoundError, StoreError, SymlinkError


@pytest.fixture
def run_and_outside(tmp_path: Path) -> tuple[DirectoryStore, Path]:
    """A store with one genome, and a directory outside it holding a secret and a target."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"secret": true}')
    store = DirectoryStore(tmp_path / "run")
    store.put("genomes/a.json", b"{}")
    return store, outside


def _every_call(store: DirectoryStore, key: str) -> list:
    return [
        lambda: store.get(key),
        lambda: store.exists(key),
        lambda: store.put(key, b"x"),
        lambda: store.put_if_absent(key, b"x"),
        lambda: store.compare_and_swap(key, b"x", None),
        lambda: store.delete(key),
    ]


def test_a_linked_directory_inside_the_run_is_refused_for_every_call(run_and_outside):
    store, outside = run_and_outside
    (store.root / "results").symlink_to(outside, target_is_directory=True)
    for call in _every_call(store, "results/secret.json"):
        with pytest.raises(SymlinkError, match="results is a symbolic link"):
            call()
    with pytest.raises(SymlinkError):
        store.list("results/")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.json"]  # nothing written out there
    assert (outside / "secret.json").read_text() == '{"secret": true}'
    assert store.list() == ["genomes/a.json"]  # a walk of the run does not follow the link


def test_a_linked_file_is_refused_not_read_through(run_and_outside):
    store, outside = run_and_outside
    (store.root / "genomes" / "b.json").symlink_to(outside / "secret.json")
    for call in _every_call(store, "genomes/b.json"):
        with pytest.raises(SymlinkError, match="genomes/b.json is a symbolic link"):
            call()
    assert (outside / "secret.json").read_text() == '{"secret": true}'
    assert SymlinkError.__mro__[1] is StoreError and "\n" not in str(SymlinkError("x"))


def test_a_link_planted_at_a_lock_name_creates_nothing_outside(run_and_outside):
    store, outside = run_and_outside
    (store.root / "genomes" / ".c.json.lock").symlink_to(outside / "created-by-nlfs")
    with pytest.raises(StoreError):
        store.put_if_absent("genomes/c.json", b"x")
    assert not (outside / "created-by-nlfs").exists()


def test_a_fifo_at_a_key_is_refused_at_once_not_read(run_and_outside):
    store, _ = run_and_outside
    os.mkfifo(store.root / "genomes" / "f.json")  # no writer: a read would block for ever
    with pytest.raises(StoreError, match="not a regular file") as info:
        store.get("genomes/f.json")
    assert not isinstance(info.value, NotFoundError)
    assert store.exists("genomes/f.json") is False
    with pytest.raises(StoreError, match="not a regular file"):
        store.compare_and_swap("genomes/f.json", b"x", None)


def test_the_root_itself_may_be_reached_through_a_link(tmp_path: Path):
    """Only links below the root are refused: a run kept on another disk is fine."""
    real = tmp_path / "disk" / "run"
    real.mkdir(parents=True)
    (tmp_path / "run").symlink_to(real, target_is_directory=True)
    store = DirectoryStore(tmp_path / "run")
    store.put("state.json", b"{}")
    assert store.get("state.json").data == b"{}" and (real / "state.json").exists()
