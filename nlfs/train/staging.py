"""Datasets in object storage, for pods without internet: `stage_dataset` uploads a dataset's
files once; `dataset_root` gives evaluation a local copy, fetched into a cache when needed.

Layout under a datasets store URI (e.g. `s3://bucket/datasets`):
    <name>/files/<path>        the dataset's files, torchvision's on-disk layout
    <name>/MANIFEST.json       `nlfs.dataset/v1`: every file's path, size and sha256; written last,
                               so a dataset without it is not (completely) staged
Local cache: $NLFS_CACHE (default ~/.cache/nlfs) /datasets/<name>/, complete when its copy of the
manifest equals the store's. Where to fetch from: `dataset.source` in the profile, else $NLFS_DATA.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict

from nlfs.errors import NlfsError
from nlfs.formats import parse_stored_json
from nlfs.train.profiles import DatasetSpec
from nlfs.train.registry import Registry

DATASET_FORMAT = "nlfs.dataset/v1"
CACHE_ENV, DATA_ENV = "NLFS_CACHE", "NLFS_DATA"
_LOCAL_MANIFEST = ".nlfs-manifest.json"
_THREADS = 8  # concurrent transfers; many small files (Flowers, Caltech) are latency-bound


class ManifestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DatasetFiles:
    """What `nlfs data stage` uploads (paths relative to the root) and how to fetch it once."""

    paths: tuple[str, ...]
    download: Callable[[Path], None] | None  # puts the files under root (needs internet)


# What `nlfs data stage` uploads, by dataset name. Filled by nlfs.train.data_vision (loaded on the
# first lookup): the loaders import this module for dataset_root, so this one never imports them.
DATASET_FILES: Registry = Registry("dataset with files", ("nlfs.train.data_vision",))


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["nlfs.dataset/v1"] = DATASET_FORMAT
    name: str
    files: list[ManifestFile]


def manifest_key(name: str) -> str:
    return f"{name}/MANIFEST.json"


def file_key(name: str, path: str) -> str:
    return f"{name}/files/{path}"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "nlfs")


def local_dir(name: str) -> Path:
    return cache_dir() / "datasets" / name


def _files_of(name: str) -> DatasetFiles:
    if name not in DATASET_FILES:
        raise NlfsError(f"dataset {name!r} has no files to stage "
                        f"(file datasets: {', '.join(DATASET_FILES.names())})")
    return DATASET_FILES.get(name)


def _collect(root: Path, paths: tuple[str, ...]) -> list[str]:
    """Relative paths of every file under the dataset's `paths`, hidden files (our caches) left out."""
    found: list[str] = []
    for rel in paths:
        target = root / rel
        if target.is_file():
            found.append(rel)
        elif target.is_dir():
            for p in sorted(target.rglob("*")):
                parts = p.relative_to(root).parts
                if p.is_file() and not any(part.startswith(".") for part in parts):
                    found.append("/".join(parts))
        else:
            raise NlfsError(f"{target} is missing: the dataset is not (completely) under {root}")
    return found


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stage_dataset(name: str, to_uri: str, *, source: Path | None = None, download: bool = False) -> tuple[int, int]:
    """Upload dataset `name` from `source` (default: the local cache) to `<to_uri>/<name>/`;
    with `download`, fetch it with torchvision first. Returns (files, bytes)."""
    from nlfs.store import open_store

    files = _files_of(name)
    root = Path(source) if source is not None else local_dir(name)
    if download:
        if files.download is None:
            raise NlfsError(f"dataset {name!r} cannot be downloaded automatically; put its files under --from DIR")
        root.mkdir(parents=True, exist_ok=True)
        files.download(root)
    rels = _collect(root, files.paths)
    store = open_store(to_uri)
    store.exists(manifest_key(name))  # fail fast on a bad store before reading gigabytes

    def upload(rel: str) -> ManifestFile:
        data = (root / rel).read_bytes()
        store.put(file_key(name, rel), data)
        return ManifestFile(path=rel, size=len(data), sha256=_sha256(data))

    with ThreadPoolExecutor(_THREADS) as pool:
        entries = list(pool.map(upload, rels))
    manifest = Manifest(name=name, files=entries)
    store.put(manifest_key(name), manifest.model_dump_json(indent=1).encode())
    return len(entries), sum(e.size for e in entries)


@contextmanager
def _locked(path: Path):
    """An exclusive lock between processes of this machine (workers fetching the same dataset)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_dataset(name: str, uri: str, local: Path) -> Path:
    """Make `local` a complete copy of the dataset staged at `<uri>/<name>/`; cheap when it is."""
    from nlfs.store import NotFoundError, open_store

    store = open_store(uri)
    try:
        raw = store.get(manifest_key(name)).data
    except NotFoundError:
        raise NlfsError(f"dataset {name!r} is not staged in {uri} (run: nlfs data stage {name} --to {uri})") from None
    manifest = parse_stored_json(Manifest, raw, f"{uri}/{manifest_key(name)} ({DATASET_FORMAT} manifest)")
    marker = local / _LOCAL_MANIFEST
    with _locked(local.parent / f".{name}.lock"):
        if marker.is_file() and marker.read_bytes() == raw:
            return local
        local.mkdir(parents=True, exist_ok=True)
        marker.unlink(missing_ok=True)

        def download(entry: ManifestFile) -> None:
            target = local / entry.path
            if not target.resolve().is_relative_to(local.resolve()):
                raise NlfsError(f"manifest path {entry.path!r} leaves the dataset folder")
            data = store.get(file_key(name, entry.path)).data
            if len(data) != entry.size or _sha256(data) != entry.sha256:
                raise NlfsError(f"{uri}/{file_key(name, entry.path)}: content does not match the manifest")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            tmp.write_bytes(data)
            os.replace(tmp, target)

        with ThreadPoolExecutor(_THREADS) as pool:
            list(pool.map(download, manifest.files))
        marker.write_bytes(raw)
    return local


def dataset_root(spec: DatasetSpec) -> Path:
    """The local folder holding the files of `spec`'s dataset, fetched from a store if needed."""
    if spec.root is not None:
        root = Path(spec.root)
        if not root.is_dir():
            raise NlfsError(f"dataset.root {root} is not a directory")
        return root
    source = spec.source or os.environ.get(DATA_ENV)
    local = local_dir(spec.name)
    if source:
        return fetch_dataset(spec.name, source, local)
    if local.is_dir():
        return local
    raise NlfsError(f"dataset {spec.name!r} is not in {local}: stage it with `nlfs data stage {spec.name} --to URI` "
                    f"and set {DATA_ENV}=URI (or dataset.source), or give dataset.root")
