"""Tiny fake datasets written in torchvision's on-disk formats (no internet in tests)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def write_cifar10(root: Path, per_batch: int = 20, test: int = 20) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = _rng()
    for name, n in [*[(f"data_batch_{i}", per_batch) for i in range(1, 6)], ("test_batch", test)]:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist(),
                 "batch_label": name, "filenames": [f"{name}_{i}.png" for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    return root


def write_cifar100(root: Path, train: int = 60, test: int = 20) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = _rng(1)
    for name, n in [("train", train), ("test", test)]:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": rng.integers(0, 100, n).tolist(),
                 "coarse_labels": rng.integers(0, 20, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry))
    return root


def write_svhn(root: Path, train: int = 30, test: int = 10) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = _rng(2)
    for name, n in [("train_32x32.mat", train), ("test_32x32.mat", test)]:
        sio.savemat(root / name, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                  "y": rng.integers(1, 11, (n, 1)).astype(np.uint8)})
    return root


def _jpeg(path: Path, rng: np.random.Generator, size=(40, 30), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path, quality=90)


def write_flowers102(root: Path, n: int = 12) -> Path:
    base = root / "flowers-102"
    rng = _rng(3)
    for i in range(1, n + 1):
        _jpeg(base / "jpg" / f"image_{i:05d}.jpg", rng)
    sio.savemat(base / "imagelabels.mat", {"labels": (np.arange(n) % 102 + 1).reshape(1, -1)})
    ids = np.arange(1, n + 1)
    sio.savemat(base / "setid.mat", {"trnid": ids[: n // 3], "valid": ids[n // 3: 2 * n // 3], "tstid": ids[2 * n // 3:]})
    return root


def write_stanford_cars(root: Path, n: int = 6) -> Path:
    base = root / "stanford_cars"
    rng = _rng(4)
    for split, folder, annos in [("train", "cars_train", base / "devkit" / "cars_train_annos.mat"),
                                 ("test", "cars_test", base / "cars_test_annos_withlabels.mat")]:
        records = np.array([(f"{i:05d}.jpg", i % 196 + 1) for i in range(1, n + 1)], dtype=[("fname", "O"), ("class", "O")])
        for i in range(1, n + 1):
            _jpeg(base / folder / f"{i:05d}.jpg", rng, size=(50, 20))
        annos.parent.mkdir(parents=True, exist_ok=True)
        sio.savemat(annos, {"annotations": records})
    sio.savemat(base / "devkit" / "cars_meta.mat", {"class_names": np.array([f"car{i}" for i in range(196)], dtype=object)})
    return root


def write_caltech101(root: Path, per_class: int = 3) -> Path:
    base = root / "caltech101" / "101_ObjectCategories"
    rng = _rng(5)
    for category in ("BACKGROUND_Google", "accordion", "airplanes", "ant"):
        for i in range(1, per_class + 1):
            _jpeg(base / category / f"image_{i:04d}.jpg", rng, mode="L" if i == 1 else "RGB")
    return root


WRITERS = {"cifar10": write_cifar10, "cifar100": write_cifar100, "svhn": write_svhn, "flowers102": write_flowers102,
           "stanford_cars": write_stanford_cars, "caltech101": write_caltech101}


@pytest.fixture
def fake_root(tmp_path):
    """fake_root(name) -> a folder holding a tiny copy of dataset `name` in torchvision's layout."""

    def make(name: str) -> Path:
        return WRITERS[name](tmp_path / "data" / name)

    return make


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test gets its own dataset cache and no staged-data URI from the environment."""
    monkeypatch.setenv("NLFS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NLFS_DATA", raising=False)
