"""Datasets as uint8 image tensors plus int64 labels; subsets, label noise, augmentation.

Every image dataset is decoded once into ``N x 3 x 32 x 32`` uint8 tensors (the form the
training loop and the objective keep resident on the device) and, for image folders,
cached outside the data folder under a key derived from every file's path, size and
modification time, so that a changed source is never served stale. ``synthetic:...`` datasets
(the theorem's separated unit vectors, ``landscape.synthetic``) hold float inputs instead, which
``normalize`` passes through unchanged.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import LandscapeError
from .synthetic import separated_dataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
CACHE_FORMAT = 1


@dataclass
class Dataset:
    """A whole dataset in memory: uint8 images, int64 labels, per-channel mean/std in [0, 1].

    Synthetic datasets hold float inputs (mean 0, std 1: the identity normalization), int64
    labels or float regression targets, and in ``provenance`` how they were made and checked.
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    provenance: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name == "train":
            return self.train_images, self.train_labels
        if name == "test":
            return self.test_images, self.test_labels
        raise LandscapeError(f"unknown split {name!r}: use 'train' or 'test'")


def default_cache_dir() -> Path:
    base = os.environ.get("LANDSCAPE_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "landscape" if base else Path.home() / ".cache" / "landscape"


def resolve_data_root(data_root: str | os.PathLike | None) -> Path:
    root = data_root or os.environ.get("LANDSCAPE_DATA_ROOT") or "."
    return Path(root).expanduser()


def data_root_hint(folder: str) -> str:
    """The end of every missing-data message: the two ways to say where the data lives."""
    return f"point --data-root (or LANDSCAPE_DATA_ROOT) at the folder that holds {folder}"


TORCHVISION_FOLDERS = {"cifar10": ("CIFAR-10", "cifar-10-batches-py"), "cifar100": ("CIFAR-100", "cifar-100-python")}


def missing_data(name: str, data_root=None, download: bool = False) -> str | None:
    """Why ``name`` cannot be loaded without reading it (its folder is absent), or None if it may be."""
    root = resolve_data_root(data_root)
    if name in TORCHVISION_FOLDERS and not download:
        label, folder = TORCHVISION_FOLDERS[name]
        if not (root / folder).is_dir():
            return (f"{label} not found: looked for {(root / folder).resolve()}; pass --download to fetch it, "
                    f"or {data_root_hint(folder)}")
    if name.startswith("folder:"):
        path = Path(name[len("folder:"):]).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_dir():
            return f"image folder {path} does not exist; {data_root_hint(name[len('folder:'):])}"
    return None


def load_dataset(name: str, data_root: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, download: bool = False,
                 progress: bool = True) -> Dataset:
    """Load ``cifar10``, ``cifar100``, ``folder:PATH`` (PATH relative to the data root) or ``synthetic:...``."""
    if name.startswith("synthetic:"):
        return load_synthetic(name)
    root = resolve_data_root(data_root)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if name in ("cifar10", "cifar100"):
        return _load_torchvision_cifar(name, root, download)
    if name.startswith("folder:"):
        path = Path(name[len("folder:"):]).expanduser()
        if not path.is_absolute():
            path = root / path
        return _load_image_folder(name, path, cache, progress)
    raise LandscapeError(f"unknown dataset {name!r}: use cifar10, cifar100, folder:PATH or "
                         f"synthetic:separated?n=..&d=..&delta=..")


def load_synthetic(name: str) -> Dataset:
    """The ``Dataset`` a ``synthetic:separated?...`` name describes (see ``landscape.synthetic``)."""
    return Dataset(**separated_dataset(name))


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.to(torch.float64).div_(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3), unbiased=False)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _load_torchvision_cifar(name: str, root: Path, download: bool) -> Dataset:
    """CIFAR-10/100 from torchvision's official files (downloaded only when asked)."""
    from torchvision import datasets

    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    label = TORCHVISION_FOLDERS[name][0]
    reason = missing_data(name, root, download)
    if reason is not None:
        raise LandscapeError(reason)
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except Exception as exc:  # torchvision reports corrupt files and failed downloads this way
        raise LandscapeError(f"could not read {label} under {root}: {exc}") from exc

    def to_tensors(ds):
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return images, torch.as_tensor(ds.targets, dtype=torch.int64)

    train_x, train_y = to_tensors(train)
    test_x, test_y = to_tensors(test)
    mean, std = _channel_stats(train_x)
    return Dataset(name, train_x, train_y, test_x, test_y, list(train.classes), mean, std)


def _list_image_folder(path: Path) -> dict[str, list[tuple[str, list[Path]]]]:
    """{'train', 'test'}: [(class name, sorted image files)] in sorted class order; one-line errors."""
    if not path.is_dir():
        raise LandscapeError(f"image folder {path} does not exist (expected {path}/train/<class>/...); "
                             f"{data_root_hint(path.name)}")
    splits = {}
    for split in ("train", "test"):
        split_dir = path / split
        if not split_dir.is_dir():
            raise LandscapeError(f"image folder {path} has no {split}/ subfolder")
        classes = sorted(d.name for d in os.scandir(split_dir) if d.is_dir())
        if not classes:
            raise LandscapeError(f"{split_dir} holds no class folders")
        entries = []
        for c in classes:
            files = sorted(Path(e.path) for e in os.scandir(split_dir / c)
                           if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES))
            if not files:
                raise LandscapeError(f"class folder {split_dir / c} holds no images")
            entries.append((c, files))
        splits[split] = entries
    train_classes = [c for c, _ in splits["train"]]
    test_classes = [c for c, _ in splits["test"]]
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise LandscapeError(
            f"image folder {path}: train and test classes differ "
            f"(only in train: {only_train or '-'}; only in test: {only_test or '-'})")
    return splits


def _fingerprint(splits: dict) -> str:
    """A key over every file's relative path, size and mtime: any edit changes it."""
    h = hashlib.sha256(f"format={CACHE_FORMAT}".encode())
    for split, entries in splits.items():
        for c, files in entries:
            for f in files:
                st = f.stat()
                h.update(f"{split}/{c}/{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _decode(path: Path) -> np.ndarray:
    """One image file as a 32×32×3 uint8 array, or a one-line error naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except Exception as exc:
        raise LandscapeError(f"cannot decode image {path}: {exc}") from exc
    if arr.shape != (32, 32, 3):
        raise LandscapeError(f"image {path} is {arr.shape[1]}x{arr.shape[0]}, expected 32x32")
    return arr


def _decode_split(entries, progress: bool, desc: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 N×3×32×32 images, labels) of a split, decoded on a thread pool with a progress bar."""
    from tqdm import tqdm

    paths = [f for _, files in entries for f in files]
    labels = [i for i, (_, files) in enumerate(entries) for _ in files]
    images = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        it = pool.map(_decode, paths, chunksize=256)
        for i, arr in enumerate(tqdm(it, total=len(paths), desc=desc, unit="img",
                                     disable=not progress, leave=False)):
            images[i] = arr
    return (torch.from_numpy(images.transpose(0, 3, 1, 2).copy()),
            torch.tensor(labels, dtype=torch.int64))


def _load_image_folder(name: str, path: Path, cache: Path, progress: bool) -> Dataset:
    """An image-folder dataset, decoded once and cached by its files' fingerprint."""
    splits = _list_image_folder(path)
    key = _fingerprint(splits)
    cache_file = cache / f"imagefolder-{path.name}-{key}.pt"
    if cache_file.is_file():
        try:
            blob = torch.load(cache_file, weights_only=True, mmap=True)
            return Dataset(name, blob["train_images"], blob["train_labels"], blob["test_images"],
                           blob["test_labels"], list(blob["classes"]), tuple(blob["mean"]),
                           tuple(blob["std"]))
        except Exception:
            pass  # a damaged cache is rebuilt below
    train_x, train_y = _decode_split(splits["train"], progress, f"decoding {path.name}/train")
    test_x, test_y = _decode_split(splits["test"], progress, f"decoding {path.name}/test")
    mean, std = _channel_stats(train_x)
    classes = [c for c, _ in splits["train"]]
    blob = dict(train_images=train_x, train_labels=train_y, test_images=test_x,
                test_labels=test_y, classes=classes, mean=list(mean), std=list(std))
    try:
        from .results import atomic_torch_save

        cache.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(blob, cache_file)
    except OSError:
        pass  # an unwritable cache only costs the next load its decode time
    return Dataset(name, train_x, train_y, test_x, test_y, classes, mean, std)


def balanced_subset(labels: torch.Tensor, size: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded, class-balanced subset (class counts differ by at most one)."""
    n = len(labels)
    if size is None or size == n:
        return torch.arange(n)
    return _balanced_blocks(labels, size, 1, seed)[0]


def disjoint_balanced_subsets(labels: torch.Tensor, size: int | None, count: int,
                              seed: int) -> list[torch.Tensor] | None:
    """``count`` pairwise disjoint balanced subsets of ``size`` (the first is ``balanced_subset``'s).

    None when the labels are too few to split that way (then repeats can only vary seeds).
    """
    if size is None or size * count > len(labels):
        return None
    try:
        return _balanced_blocks(labels, size, count, seed)
    except LandscapeError:
        return None


def _balanced_blocks(labels: torch.Tensor, size: int, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` disjoint balanced blocks of ``size`` indices, drawn from one seeded generator."""
    n = len(labels)
    if size <= 0 or size > n:
        raise LandscapeError(f"subset size {size} is outside 1..{n}")
    gen = torch.Generator().manual_seed(seed)
    classes = torch.unique(labels)
    k = len(classes)
    counts = torch.full((k,), size // k, dtype=torch.int64)
    counts[torch.randperm(k, generator=gen)[: size % k]] += 1
    blocks: list[list[torch.Tensor]] = [[] for _ in range(count)]
    for c, m in zip(classes.tolist(), counts.tolist()):
        members = torch.nonzero(labels == c).flatten()
        if m * count > len(members):
            raise LandscapeError(f"class {c} has {len(members)} examples, fewer than the {m * count} "
                                 f"{count} balanced subset(s) of {size} need")
        shuffled = members[torch.randperm(len(members), generator=gen)]
        for r in range(count):
            blocks[r].append(shuffled[r * m:(r + 1) * m])
    return [torch.sort(torch.cat(b)).values for b in blocks]


def add_label_noise(labels: torch.Tensor, fraction: float, num_classes: int, seed: int) -> torch.Tensor:
    """Replace exactly round(fraction * N) seeded labels by a uniformly drawn *different* class."""
    if not 0.0 <= fraction < 1.0:
        raise LandscapeError(f"label noise must be in [0, 1), got {fraction}")
    noisy = labels.clone()
    count = int(round(fraction * len(labels)))
    if count == 0:
        return noisy
    gen = torch.Generator().manual_seed(seed + 7919)
    idx = torch.randperm(len(labels), generator=gen)[:count]
    shift = torch.randint(1, num_classes, (count,), generator=gen)
    noisy[idx] = (labels[idx] + shift) % num_classes
    return noisy


def normalize(images: torch.Tensor, mean, std, dtype=torch.float32) -> torch.Tensor:
    """uint8 NCHW -> float, scaled to [0, 1] and standardized per channel; float inputs pass unchanged.

    Float inputs (synthetic data) are already what the model reads: they are only cast to
    ``dtype`` (the identity normalization), whatever ``mean``/``std`` say. ``mean``/``std`` may be sequences or tensors already on the device (the training loop passes
    tensors, so no step copies them from the host).
    """
    if images.is_floating_point():
        return images.to(dtype)
    m = torch.as_tensor(mean, dtype=dtype, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=dtype, device=images.device).view(1, -1, 1, 1)
    return (images.to(dtype) / 255.0 - m) / s


def draw_augmentation(count: int, generator: torch.Generator, padding: int = 4):
    """The random part of the recipe's augmentation for ``count`` images: (dy, dx, flip) on the CPU."""
    dy = torch.randint(0, 2 * padding + 1, (count,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (count,), generator=generator)
    flip = torch.rand(count, generator=generator) < 0.5
    return dy, dx, flip


def augment(images: torch.Tensor, augmentation, padding: int = 4) -> torch.Tensor:
    """The paper recipe's augmentation on a whole uint8 batch: zero-pad + random crop, random flip.

    ``augmentation`` is a CPU ``torch.Generator`` (draws are made here) or (dy, dx, flip) from
    ``draw_augmentation``, already on the batch's device — the training loop draws a whole
    epoch at once so that no step waits on a host-to-device copy. Reproducible on any device.
    """
    b, _, h, w = images.shape
    if isinstance(augmentation, torch.Generator):
        augmentation = draw_augmentation(b, augmentation, padding)
    dy, dx, flip = (t.to(images.device, non_blocking=True) for t in augmentation)
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    rows = dy[:, None] + torch.arange(h, device=images.device)[None, :]  # b x h
    cols = dx[:, None] + torch.arange(w, device=images.device)[None, :]  # b x w
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # b x h x w x c
    return out.permute(0, 3, 1, 2)
