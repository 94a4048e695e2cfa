"""File datasets in torchvision's on-disk layout: CIFAR-10/100, SVHN, Flowers-102, Stanford Cars,
Caltech-101. Read here without torchvision's MD5 checks (the files come from our own staged copy)
and without general unpickling (CIFAR's batches go through an allow-list of numpy classes).

Images of varied size are decoded once, resized (shorter side, then centre crop) to
`dataset.image_size` (default 224, our choice) and cached as a tensor file next to the files.
"""

from __future__ import annotations

import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nlfs.errors import NlfsError
from nlfs.train.data import RawDataset
from nlfs.train.profiles import DatasetSpec
from nlfs.train.registry import register_dataset
from nlfs.train.staging import DATASET_FILES, DatasetFiles, dataset_root

DEFAULT_IMAGE_SIZE = 224  # for datasets of varied image size; our choice (ImageNet's usual crop)


# What `nlfs data stage` uploads for each file dataset; registered in staging.DATASET_FILES at the end.
FILES: dict[str, DatasetFiles] = {}


def _torchvision_download(cls_name: str, **kwargs) -> Callable[[Path], None]:
    def download(root: Path) -> None:
        import torchvision.datasets as D

        getattr(D, cls_name)(str(root), download=True, **kwargs)

    return download


def _root(spec: DatasetSpec) -> Path:
    return dataset_root(spec)


def _need(path: Path) -> Path:
    if not path.exists():
        raise NlfsError(f"dataset file {path} is missing (stage the dataset again?)")
    return path


# ---------------------------------------------------------------------------------------------
# CIFAR


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's python batches hold numpy arrays, lists and strings; nothing else may load."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    with open(_need(path), "rb") as f:
        try:
            entry = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise NlfsError(f"{path}: not a CIFAR batch ({err})") from None
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(entry[label_key], dtype=np.int64)


def _cifar(spec: DatasetSpec, folder: str, train_files: list[str], test_file: str, label_key: str,
           num_classes: int) -> RawDataset:
    base = _root(spec) / folder
    parts = [_cifar_batch(base / name, label_key) for name in train_files]
    test_x, test_y = _cifar_batch(base / test_file, label_key)
    train_x = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    train_y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    # METHOD.md 4: 45k train / 5k validation out of the 50k training images.
    return RawDataset(train_x, train_y, torch.from_numpy(test_x), torch.from_numpy(test_y), num_classes,
                      default_val_size=5000)


@register_dataset("cifar10")
def cifar10(spec: DatasetSpec) -> RawDataset:
    return _cifar(spec, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                  "labels", 10)


@register_dataset("cifar100")
def cifar100(spec: DatasetSpec) -> RawDataset:
    return _cifar(spec, "cifar-100-python", ["train"], "test", "fine_labels", 100)


FILES["cifar10"] = DatasetFiles(("cifar-10-batches-py",), _torchvision_download("CIFAR10"))
FILES["cifar100"] = DatasetFiles(("cifar-100-python",), _torchvision_download("CIFAR100"))


# ---------------------------------------------------------------------------------------------
# SVHN


def _svhn_split(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from scipy.io import loadmat

    mat = loadmat(str(_need(path)))
    x = torch.from_numpy(np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1))))  # [32,32,3,N] -> [N,3,32,32]
    y = torch.from_numpy(mat["y"].astype(np.int64).reshape(-1) % 10)  # label 10 is the digit 0
    return x, y


@register_dataset("svhn")
def svhn(spec: DatasetSpec) -> RawDataset:
    """SVHN cropped digits; holdout default 5000 (our choice, as for CIFAR)."""
    root = _root(spec)
    train_x, train_y = _svhn_split(root / "train_32x32.mat")
    test_x, test_y = _svhn_split(root / "test_32x32.mat")
    return RawDataset(train_x, train_y, test_x, test_y, 10, default_val_size=5000)


def _svhn_download(root: Path) -> None:
    import torchvision.datasets as D

    for split in ("train", "test"):
        D.SVHN(str(root), split=split, download=True)


FILES["svhn"] = DatasetFiles(("train_32x32.mat", "test_32x32.mat"), _svhn_download)


# ---------------------------------------------------------------------------------------------
# image-file datasets


def _decode(path: Path, size: int) -> np.ndarray:
    """One image file -> uint8 [3, size, size]: RGB, shorter side resized to size, centre crop."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
        w, h = img.size
        left, top = (w - size) // 2, (h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def _decode_all(paths: list[Path], size: int, cache: Path) -> torch.Tensor:
    """Images [N, 3, size, size] uint8, decoded in threads once and then read from `cache`."""
    if cache.exists():
        x = torch.load(cache, map_location="cpu", weights_only=True)
        if x.shape[0] == len(paths) and x.shape[-1] == size:
            return x
    for p in paths:
        _need(p)
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        images = list(pool.map(lambda p: _decode(p, size), paths))
    x = torch.from_numpy(np.stack(images)) if images else torch.empty(0, 3, size, size, dtype=torch.uint8)
    tmp = cache.with_suffix(".tmp")
    torch.save(x, tmp)
    os.replace(tmp, cache)
    return x


def _images(spec: DatasetSpec, base: Path, tag: str, paths: list[Path]) -> torch.Tensor:
    size = spec.image_size or DEFAULT_IMAGE_SIZE
    return _decode_all(paths, size, base / f".nlfs-{tag}-{size}.pt")


@register_dataset("flowers102")
def flowers102(spec: DatasetSpec) -> RawDataset:
    """Oxford Flowers-102: training = the official train + val splits (2040), test = test (6149);
    holdout default 1020, the official val split's size (our choice)."""
    from scipy.io import loadmat

    base = _root(spec) / "flowers-102"
    labels = loadmat(str(_need(base / "imagelabels.mat")), squeeze_me=True)["labels"].astype(np.int64) - 1
    setid = loadmat(str(_need(base / "setid.mat")), squeeze_me=True)

    def split(ids: np.ndarray, tag: str):
        ids = np.atleast_1d(ids).astype(np.int64)
        paths = [base / "jpg" / f"image_{i:05d}.jpg" for i in ids]
        return _images(spec, base, tag, paths), torch.from_numpy(labels[ids - 1])

    train_ids = np.concatenate([np.atleast_1d(setid["trnid"]), np.atleast_1d(setid["valid"])])
    train_x, train_y = split(train_ids, "train")
    test_x, test_y = split(setid["tstid"], "test")
    return RawDataset(train_x, train_y, test_x, test_y, 102, default_val_size=1020)


FILES["flowers102"] = DatasetFiles(("flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"),
                                   _torchvision_download("Flowers102"))


@register_dataset("stanford_cars")
def stanford_cars(spec: DatasetSpec) -> RawDataset:
    """Stanford Cars (196 classes), official train (8144) / test (8041); holdout default 1000 (our choice)."""
    from scipy.io import loadmat

    base = _root(spec) / "stanford_cars"

    def split(annos: Path, folder: str, tag: str):
        records = np.atleast_1d(loadmat(str(_need(annos)), squeeze_me=True)["annotations"])
        paths = [base / folder / str(r["fname"]) for r in records]
        y = torch.tensor([int(r["class"]) - 1 for r in records], dtype=torch.int64)
        return _images(spec, base, tag, paths), y

    train_x, train_y = split(base / "devkit" / "cars_train_annos.mat", "cars_train", "train")
    test_x, test_y = split(base / "cars_test_annos_withlabels.mat", "cars_test", "test")
    return RawDataset(train_x, train_y, test_x, test_y, 196, default_val_size=1000)


FILES["stanford_cars"] = DatasetFiles(("stanford_cars",), None)  # torchvision's source URL is gone


@register_dataset("caltech101")
def caltech101(spec: DatasetSpec) -> RawDataset:
    """Caltech-101 (101 categories, BACKGROUND_Google excluded as torchvision does). It has no
    official split: everything is training data, holdout default 1735 (20%, our choice)."""
    base = _root(spec) / "caltech101"
    folder = _need(base / "101_ObjectCategories")
    categories = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name != "BACKGROUND_Google")
    paths, labels = [], []
    for k, category in enumerate(categories):
        files = sorted(p for p in (folder / category).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        paths += files
        labels += [k] * len(files)
    x = _images(spec, base, "all", paths)
    return RawDataset(x, torch.tensor(labels, dtype=torch.int64), None, None, len(categories),
                      default_val_size=max(1, round(0.2 * len(paths))))


FILES["caltech101"] = DatasetFiles(("caltech101/101_ObjectCategories",), _torchvision_download("Caltech101"))


# staging.py looks the files up by name here; it never imports this module (no import circle).
for _name, _files in FILES.items():
    DATASET_FILES.register(_name)(_files)
