"""landscape.data: real-data loading, the decode cache, subsets, label noise, augmentation."""

from __future__ import annotations

import math
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from landscape import data
from landscape.data import (add_label_noise, augment, balanced_subset, load_dataset, normalize)
from landscape.errors import LandscapeError

from cases import CIFAR10_CLASSES, REAL_FOLDER, write_image_folder


# ----------------------------------------------------------------------------- the real data
@pytest.mark.slow
def test_real_cifar10_jpeg_is_decoded_in_label_order(cifar10, data_root):
    assert cifar10.classes == CIFAR10_CLASSES
    assert cifar10.train_images.shape == (50_000, 3, 32, 32)
    assert cifar10.test_images.shape == (10_000, 3, 32, 32)
    assert cifar10.train_images.dtype == torch.uint8 and cifar10.train_labels.dtype == torch.int64
    assert torch.equal(torch.bincount(cifar10.train_labels), torch.full((10,), 5000))
    assert torch.equal(torch.bincount(cifar10.test_labels), torch.full((10,), 1000))
    # images are laid out class by class, files in name order; compare with Pillow directly
    for split, cls, i, per_class in (("train", "cat", 0, 5000), ("train", "truck", 4999, 5000),
                                     ("test", "airplane", 17, 1000)):
        images, labels = cifar10.split(split)
        label = CIFAR10_CLASSES.index(cls)
        k = label * per_class + i
        with Image.open(data_root / REAL_FOLDER / split / cls / f"{i:04d}.jpg") as im:
            expected = torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())
        assert int(labels[k]) == label
        assert torch.equal(images[k], expected)
    with pytest.raises(LandscapeError, match="unknown split"):
        cifar10.split("validation")


@pytest.mark.slow
def test_real_channel_statistics_match_the_documented_means(cifar10):
    # shared/data/README.md: train means (0-255) 125.27, 122.93, 113.86
    assert cifar10.mean == pytest.approx([125.27 / 255, 122.93 / 255, 113.86 / 255], abs=2e-4)
    assert all(0.2 < s < 0.3 for s in cifar10.std)


@pytest.mark.slow
def test_normalization_centres_and_scales_every_channel_of_the_training_set(cifar10):
    means, variances = [], []
    for chunk in cifar10.train_images.split(10_000):  # equal chunks: moments combine simply
        x = normalize(chunk, cifar10.mean, cifar10.std)
        assert x.dtype == torch.float32 and x.shape == chunk.shape
        var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        means.append(mean.double())
        variances.append(var.double())
    means, variances = torch.stack(means), torch.stack(variances)
    mean = means.mean(0)
    var = variances.mean(0) + means.var(0, correction=0)
    assert mean.abs().max() < 1e-4
    assert (var.sqrt() - 1).abs().max() < 1e-4


def test_normalize_maps_pixel_values_exactly():
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1)
    out = normalize(images, (0.0, 0.1, 0.5), (1.0, 0.5, 0.25))
    assert torch.allclose(out.flatten(), torch.tensor([0.0, (0.2 - 0.1) / 0.5, (1.0 - 0.5) / 0.25]))


# ----------------------------------------------------------------------------- image folders
def test_image_folder_pixels_and_labels_round_trip(tmp_path):
    pixels = write_image_folder(tmp_path / "pngs", {"b": 3, "a": 2}, {"a": 1, "b": 2})
    ds = load_dataset("folder:pngs", tmp_path, tmp_path / "cache", progress=False)
    assert ds.classes == ["a", "b"] and ds.num_classes == 2
    assert ds.train_labels.tolist() == [0, 0, 1, 1, 1]
    assert ds.test_labels.tolist() == [0, 1, 1]
    expected = np.stack(pixels["train"]["a"] + pixels["train"]["b"]).transpose(0, 3, 1, 2)
    assert torch.equal(ds.train_images, torch.from_numpy(expected.copy()))
    # absolute paths work as well as paths relative to the data root
    same = load_dataset(f"folder:{tmp_path / 'pngs'}", "/nonexistent", tmp_path / "cache", progress=False)
    assert torch.equal(same.test_images, ds.test_images)


def _counting_decode(monkeypatch):
    calls = []
    real = data._decode

    def decode(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(data, "_decode", decode)
    return calls


def test_cache_serves_second_load_and_any_touched_file_invalidates_it(tmp_path, monkeypatch):
    root = tmp_path / "data"
    write_image_folder(root / "imgs", {"x": 4, "y": 4}, {"x": 2, "y": 2})
    cache = tmp_path / "cache"
    calls = _counting_decode(monkeypatch)

    first = load_dataset("folder:imgs", root, cache, progress=False)
    assert len(calls) == 12
    assert len(list(cache.glob("*.pt"))) == 1
    assert sorted(p.name for p in (root / "imgs").rglob("*") if p.is_file()) == \
        sorted(f"{i:04d}.png" for i in list(range(4)) * 2 + list(range(2)) * 2)  # nothing written there

    calls.clear()
    second = load_dataset("folder:imgs", root, cache, progress=False)
    assert calls == []
    for a, b in ((first.train_images, second.train_images), (first.test_labels, second.test_labels)):
        assert torch.equal(a, b)
    assert second.mean == pytest.approx(first.mean) and second.classes == first.classes

    # a new modification time invalidates the cache
    f = root / "imgs" / "train" / "y" / "0002.png"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    calls.clear()
    load_dataset("folder:imgs", root, cache, progress=False)
    assert f in calls

    # so does new content (new size) even with the old modification time put back
    st = f.stat()
    Image.new("RGB", (32, 32), (7, 8, 9)).save(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_size != st.st_size
    calls.clear()
    changed = load_dataset("folder:imgs", root, cache, progress=False)
    assert f in calls
    assert changed.train_images[4 + 2].tolist() == [[[7] * 32] * 32, [[8] * 32] * 32, [[9] * 32] * 32]
    calls.clear()
    load_dataset("folder:imgs", root, cache, progress=False)
    assert calls == []


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "imgs", {"x": 2, "y": 2}, {"x": 1, "y": 1})
    cache = tmp_path / "cache"
    good = load_dataset("folder:imgs", tmp_path, cache, progress=False)
    (cache_file,) = cache.glob("*.pt")
    cache_file.write_bytes(b"not a torch file")
    calls = _counting_decode(monkeypatch)
    again = load_dataset("folder:imgs", tmp_path, cache, progress=False)
    assert len(calls) == 6
    assert torch.equal(again.train_images, good.train_images)


def test_folder_errors_name_the_problem(tmp_path, make_image_folder):
    with pytest.raises(LandscapeError, match="does not exist"):
        load_dataset("folder:nowhere", tmp_path, tmp_path / "cache")
    root = make_image_folder("mismatch", classes=("a", "b"), test_classes=("a", "c"))
    with pytest.raises(LandscapeError, match=r"only in train: \['b'\]; only in test: \['c'\]"):
        load_dataset(f"folder:{root}", None, tmp_path / "cache")
    write_image_folder(tmp_path / "notest", {"a": 1}, {})
    with pytest.raises(LandscapeError, match="no test/ subfolder"):
        load_dataset("folder:notest", tmp_path, tmp_path / "cache")
    big = make_image_folder("big", classes=("a",), train_per_class=1, test_per_class=1)
    Image.new("RGB", (64, 48)).save(big / "train" / "a" / "0000.png")
    with pytest.raises(LandscapeError, match="64x48, expected 32x32"):
        load_dataset(f"folder:{big}", None, tmp_path / "cache", progress=False)
    broken = make_image_folder("broken", classes=("a",), train_per_class=1, test_per_class=1)
    (broken / "test" / "a" / "0000.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(LandscapeError, match="cannot decode image"):
        load_dataset(f"folder:{broken}", None, tmp_path / "cache", progress=False)
    with pytest.raises(LandscapeError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet", tmp_path)


# ----------------------------------------------------------------------------- official CIFAR pickles
def _py2_pickle(obj) -> bytes:
    """Pickle ``obj`` the way the official (Python 2 cPickle, protocol 2) CIFAR files are written.

    Strings become Python 2 ``str`` (read back as ``str`` with encoding='latin1', as ``bytes``
    with encoding='bytes'); other values are pickled normally and spliced in.
    """
    def body(o) -> bytes:
        if isinstance(o, str):
            b = o.encode("latin1")
            return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b
        if isinstance(o, dict):
            return b"}(" + b"".join(body(k) + body(v) for k, v in o.items()) + b"u"
        if isinstance(o, list) and all(isinstance(v, str) for v in o):
            return b"](" + b"".join(body(v) for v in o) + b"e"
        p = pickle.dumps(o, protocol=2)
        assert p[:2] == b"\x80\x02" and p[-1:] == b"."
        return p[2:-1]

    return b"\x80\x02" + body(obj) + b"."


def _cifar_rows(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _write_fake_cifar100(root, n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine = [f"class_{i:02d}" for i in range(100)]
    blobs = {}
    for name, n in (("train", n_train), ("test", n_test)):
        blob = {"filenames": [f"img_{i}.png" for i in range(n)], "batch_label": f"{name} batch",
                "fine_labels": rng.integers(0, 100, n).tolist(),
                "coarse_labels": rng.integers(0, 20, n).tolist(), "data": _cifar_rows(rng, n)}
        (folder / name).write_bytes(_py2_pickle(blob))
        blobs[name] = blob
    (folder / "meta").write_bytes(_py2_pickle({"fine_label_names": fine,
                                               "coarse_label_names": [f"super_{i}" for i in range(20)]}))
    return blobs, fine


def _write_fake_cifar10(root, per_batch=6, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    blobs = {}
    for name in names:
        blob = {"batch_label": name, "labels": rng.integers(0, 10, per_batch).tolist(),
                "data": _cifar_rows(rng, per_batch), "filenames": [f"f{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(_py2_pickle(blob))
        blobs[name] = blob
    (folder / "batches.meta").write_bytes(_py2_pickle({"label_names": CIFAR10_CLASSES,
                                                       "num_cases_per_batch": per_batch, "num_vis": 3072}))
    return blobs


def _expected_images(rows: np.ndarray) -> torch.Tensor:
    # official layout: each row is 1024 red, 1024 green, 1024 blue values, row-major 32x32
    n = rows.shape[0]
    out = torch.empty(n, 3, 32, 32, dtype=torch.uint8)
    for k in range(n):
        for c in range(3):
            for y in (0, 5, 31):
                out[k, c, y] = torch.from_numpy(rows[k, c * 1024 + y * 32: c * 1024 + (y + 1) * 32])
    return out


@pytest.fixture
def skip_torchvision_md5(monkeypatch):
    """torchvision checks every official CIFAR file's md5, which files written here cannot match."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)


def test_fake_files_follow_the_official_pickle_format(tmp_path):
    _write_fake_cifar100(tmp_path)
    with open(tmp_path / "cifar-100-python" / "train", "rb") as fh:
        as_bytes = pickle.load(fh, encoding="bytes")
    assert {b"data", b"fine_labels", b"coarse_labels", b"filenames", b"batch_label"} == set(as_bytes)
    assert as_bytes[b"data"].shape == (20, 3072) and as_bytes[b"data"].dtype == np.uint8
    with open(tmp_path / "cifar-100-python" / "meta", "rb") as fh:
        meta = pickle.load(fh, encoding="bytes")
    assert meta[b"fine_label_names"][3] == b"class_03"


def test_cifar100_official_format_loads(tmp_path, skip_torchvision_md5):
    blobs, fine = _write_fake_cifar100(tmp_path, n_train=20, n_test=10)
    ds = load_dataset("cifar100", tmp_path)
    assert ds.name == "cifar100" and ds.classes == fine and ds.num_classes == 100
    assert ds.train_images.shape == (20, 3, 32, 32) and ds.train_images.dtype == torch.uint8
    assert ds.test_images.shape == (10, 3, 32, 32)
    assert ds.train_labels.dtype == torch.int64
    assert ds.train_labels.tolist() == blobs["train"]["fine_labels"]
    assert ds.test_labels.tolist() == blobs["test"]["fine_labels"]
    rows = (0, 5, 31)
    assert torch.equal(ds.train_images[:, :, rows], _expected_images(blobs["train"]["data"])[:, :, rows])
    assert torch.equal(ds.test_images[:, :, rows], _expected_images(blobs["test"]["data"])[:, :, rows])
    expected_mean = blobs["train"]["data"].reshape(20, 3, 1024).astype(np.float64).mean(axis=(0, 2)) / 255
    assert ds.mean == pytest.approx(expected_mean.tolist(), abs=1e-12)


def test_cifar10_official_format_loads(tmp_path, skip_torchvision_md5):
    blobs = _write_fake_cifar10(tmp_path, per_batch=6)
    ds = load_dataset("cifar10", str(tmp_path))
    assert ds.classes == CIFAR10_CLASSES
    assert ds.train_images.shape == (30, 3, 32, 32) and ds.test_images.shape == (6, 3, 32, 32)
    train_rows = np.concatenate([blobs[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    assert ds.train_labels.tolist() == sum((blobs[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert ds.test_labels.tolist() == blobs["test_batch"]["labels"]
    rows = (0, 5, 31)
    assert torch.equal(ds.train_images[:, :, rows], _expected_images(train_rows)[:, :, rows])


def test_missing_or_corrupt_official_cifar_is_a_clear_error(tmp_path):
    with pytest.raises(LandscapeError) as err:
        load_dataset("cifar10", tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(err.value) and "--download" in str(err.value)
    with pytest.raises(LandscapeError) as err:
        load_dataset("cifar100", tmp_path)
    assert str(tmp_path / "cifar-100-python") in str(err.value) and "--download" in str(err.value)
    # files that are not the official ones fail torchvision's checksum: reported, not raised raw
    _write_fake_cifar100(tmp_path)
    with pytest.raises(LandscapeError, match=f"could not read CIFAR-100 under {tmp_path}"):
        load_dataset("cifar100", tmp_path)


# ----------------------------------------------------------------------------- subsets
@pytest.mark.slow
def test_balanced_subset_is_balanced_repeatable_and_seeded(cifar10):
    labels = cifar10.train_labels
    idx = balanced_subset(labels, 1003, seed=3)
    assert len(idx) == 1003 and len(torch.unique(idx)) == 1003
    assert torch.equal(idx, torch.sort(idx).values)
    counts = torch.bincount(labels[idx], minlength=10)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 1003
    assert torch.equal(idx, balanced_subset(labels, 1003, seed=3))
    other = balanced_subset(labels, 1003, seed=4)
    assert not torch.equal(idx, other)
    assert torch.equal(balanced_subset(labels, None, 0), torch.arange(len(labels)))
    for size in (0, len(labels) + 1):
        with pytest.raises(LandscapeError, match="outside"):
            balanced_subset(labels, size, 0)


def test_balanced_subset_refuses_when_a_class_is_too_small():
    labels = torch.tensor([0] * 10 + [1] * 2)
    assert torch.bincount(labels[balanced_subset(labels, 4, 0)]).tolist() == [2, 2]
    with pytest.raises(LandscapeError, match="class 1 has 2 examples"):
        balanced_subset(labels, 8, 0)


# ----------------------------------------------------------------------------- label noise
@pytest.mark.slow
@pytest.mark.parametrize("n,p", [(1000, 0.1), (1000, 0.37), (999, 0.25), (1003, 0.8), (1000, 0.0)])
def test_label_noise_changes_exactly_round_pn_labels_to_other_classes(cifar10, n, p):
    labels = cifar10.train_labels[balanced_subset(cifar10.train_labels, n, 0)]
    noisy = add_label_noise(labels, p, 10, seed=1)
    changed = noisy != labels
    assert int(changed.sum()) == round(p * n)
    assert noisy.dtype == labels.dtype and noisy.min() >= 0 and noisy.max() <= 9
    assert torch.equal(noisy, add_label_noise(labels, p, 10, seed=1))
    assert torch.equal(labels, cifar10.train_labels[balanced_subset(cifar10.train_labels, n, 0)])
    if p >= 0.3:
        assert not torch.equal(noisy, add_label_noise(labels, p, 10, seed=2))
        # every other class is reachable: all nine shifts occur
        shifts = ((noisy - labels) % 10)[changed]
        assert set(shifts.tolist()) == set(range(1, 10))


def test_label_noise_outside_unit_interval_is_refused():
    labels = torch.zeros(10, dtype=torch.int64)
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(LandscapeError, match=r"label noise must be in \[0, 1\)"):
            add_label_noise(labels, p, 10, seed=0)


# ----------------------------------------------------------------------------- augmentation
def _find_windows(out: torch.Tensor, padded: torch.Tensor) -> list[list[tuple[int, int, bool]]]:
    """Per image, all (dy, dx, flipped) with out == the (dy, dx) window of padded (mirrored if flipped)."""
    windows = padded.unfold(2, 32, 1).unfold(3, 32, 1)  # b x c x 9 x 9 x 32 x 32
    hits: list[list[tuple[int, int, bool]]] = [[] for _ in range(len(out))]
    for flipped, target in ((False, out), (True, out.flip(-1))):
        match = (windows == target[:, :, None, None]).flatten(-2).all(-1).all(1)  # b x 9 x 9
        for k, dy, dx in torch.nonzero(match).tolist():
            hits[k].append((dy, dx, flipped))
    return hits


def test_augment_is_a_random_shifted_window_of_the_zero_padded_image_maybe_mirrored():
    images = torch.randint(1, 256, (128, 3, 32, 32), dtype=torch.uint8)  # no zeros: padding is visible
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    draws = []
    for k, hits in enumerate(_find_windows(out, padded)):
        assert len(hits) == 1, f"image {k}: output is not a unique window of the padded image"
        draws.append(hits[0])
    dys, dxs, flips = zip(*draws)
    assert set(dys) == set(range(9)) and set(dxs) == set(range(9))
    assert 0.3 < sum(flips) / len(flips) < 0.7
    # zero padding shows up exactly where the window leaves the image
    dy, dx, flipped = draws[0]
    ref = padded[0, :, dy:dy + 32, dx:dx + 32]
    assert torch.equal(out[0], ref.flip(-1) if flipped else ref)
    assert int((out[0] == 0).all(dim=0).sum()) == 32 * 32 - (32 - abs(dy - 4)) * (32 - abs(dx - 4))


def test_augment_is_reproducible_from_its_generator():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    a = augment(images, torch.Generator().manual_seed(5))
    b = augment(images, torch.Generator().manual_seed(5))
    c = augment(images, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(images, images.clone())  # input untouched


def test_flip_mirrors_columns():
    # an image whose columns are all distinct: a flipped output reads them right to left
    row = torch.arange(1, 33, dtype=torch.uint8)
    images = row.view(1, 1, 1, 32).expand(64, 3, 32, 32).contiguous()
    out = augment(images, torch.Generator().manual_seed(1))
    n_flipped = 0
    for k in range(64):
        middle = out[k, 0, 16]  # a row inside the image whatever the vertical shift
        nonzero = middle[middle > 0]
        diffs = nonzero[1:].to(torch.int64) - nonzero[:-1].to(torch.int64)
        assert diffs.abs().eq(1).all() and (diffs.eq(1).all() or diffs.eq(-1).all())
        n_flipped += bool(diffs.eq(-1).all())
    assert 10 < n_flipped < 54


def test_disjoint_balanced_subsets_are_disjoint_balanced_and_start_with_balanced_subset():
    from landscape.data import balanced_subset, disjoint_balanced_subsets

    labels = torch.arange(10).repeat_interleave(30)[torch.randperm(300, generator=torch.Generator().manual_seed(1))]
    sets = disjoint_balanced_subsets(labels, 64, 3, seed=5)
    assert len(sets) == 3
    assert torch.equal(sets[0], balanced_subset(labels, 64, 5))
    union = torch.cat(sets)
    assert len(union) == 3 * 64 and len(torch.unique(union)) == 3 * 64
    for s in sets:
        counts = torch.bincount(labels[s], minlength=10)
        assert int(counts.max() - counts.min()) <= 1 and int(counts.sum()) == 64
    assert disjoint_balanced_subsets(labels, 64, 3, seed=5)[2].tolist() == sets[2].tolist()  # seeded
    # too few examples to split (in total, or in one class), or no subset size: None
    assert disjoint_balanced_subsets(labels, 120, 3, seed=5) is None
    assert len(disjoint_balanced_subsets(labels, 100, 3, seed=5)) == 3    # 10 per class x 3 = 30 fit
    assert disjoint_balanced_subsets(labels, 110, 3, seed=5) is None       # 11 per class x 3 > 30
    assert disjoint_balanced_subsets(labels, None, 3, seed=5) is None


# ----------------------------------------------------------------------------- synthetic: the theorem's data
from landscape.synthetic import min_pairwise_distance, parse_synthetic_name, separation_bound  # noqa: E402


def _exact_min_distance(x: torch.Tensor) -> float:
    """Independent check: every pair, by a plain loop over rows, in float64."""
    x = x.double()
    return min(float((x[i] - x[j]).norm()) for i in range(len(x)) for j in range(i + 1, len(x)))


def test_separated_inputs_are_unit_norm_and_delta_apart_on_the_stored_data():
    ds = load_dataset("synthetic:separated?n=40&d=6&delta=0.7&classes=3&seed=1")
    x = ds.train_images
    assert x.dtype == torch.float32 and x.shape == (40, 6)
    assert torch.allclose(x.double().norm(dim=1), torch.ones(40, dtype=torch.float64), atol=1e-6)
    measured = _exact_min_distance(x)
    assert measured >= 0.7
    assert ds.provenance["min_distance_train"] == pytest.approx(measured, rel=1e-12)
    assert ds.provenance["min_distance_test"] == pytest.approx(_exact_min_distance(ds.test_images), rel=1e-12)
    assert ds.provenance["delta"] == 0.7 and ds.provenance["n"] == 40 and ds.provenance["d"] == 6
    assert ds.train_labels.dtype == torch.int64 and ds.num_classes == 3
    assert sorted(torch.bincount(ds.train_labels).tolist()) == [13, 13, 14]  # balanced
    assert ds.name == "synthetic:separated?n=40&d=6&delta=0.7&test=40&seed=1&targets=classes&classes=3"
    again = load_dataset(ds.name)  # the canonical name rebuilds the same data
    assert torch.equal(again.train_images, x) and torch.equal(again.train_labels, ds.train_labels)
    assert not torch.equal(ds.test_images, x)  # the test split has its own seed stream
    other = load_dataset("synthetic:separated?n=40&d=6&delta=0.7&classes=3&seed=2")
    assert not torch.equal(other.train_images, x)


def test_separated_regression_targets_and_identity_normalization():
    ds = load_dataset("synthetic:separated?n=16&d=4&delta=0.3&targets=regression&outputs=2&test=8")
    assert ds.train_labels.dtype == torch.float32 and ds.train_labels.shape == (16, 2)
    assert ds.test_images.shape == (8, 4) and ds.num_classes == 2
    assert (ds.mean, ds.std) == ((0.0,), (1.0,))
    assert torch.equal(normalize(ds.train_images, ds.mean, ds.std), ds.train_images)  # float inputs pass unchanged


def test_infeasible_or_malformed_separation_is_a_clear_error():
    assert separation_bound(2, 5) == pytest.approx(2.0) and separation_bound(3, 1) == 0.0
    with pytest.raises(LandscapeError, match="infeasible.*at most 1.49"):  # √(2·10/9) ≈ 1.49
        load_dataset("synthetic:separated?n=10&d=3&delta=1.5")
    with pytest.raises(LandscapeError, match="infeasible"):
        load_dataset("synthetic:separated?n=3&d=1&delta=0.1")
    with pytest.raises(LandscapeError, match="could not place 200 unit vectors"):  # below the bound, too crowded for S^1
        load_dataset("synthetic:separated?n=200&d=2&delta=0.5")
    for name, phrase in [("synthetic:separated?n=4&width=3", "bad option 'width=3'"),
                         ("synthetic:separated?n=four", "not a whole number"),
                         ("synthetic:separated?delta=-1", "delta must be"),
                         ("synthetic:separated?targets=regression&classes=3", "'classes' does not apply"),
                         ("synthetic:spiral", "unknown synthetic dataset 'spiral'")]:
        with pytest.raises(LandscapeError, match=phrase):
            load_dataset(name)
    assert parse_synthetic_name("synthetic:separated")[1]["test"] == 64


def test_min_pairwise_distance_of_known_points():
    square = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    assert min_pairwise_distance(square) == pytest.approx(math.sqrt(2), rel=1e-15)


def test_missing_data_names_what_is_absent_without_reading_anything(tmp_path):
    from landscape.data import missing_data

    assert "CIFAR-100 not found" in missing_data("cifar100", tmp_path)
    assert missing_data("cifar100", tmp_path, download=True) is None  # torchvision will fetch it
    (tmp_path / "cifar-100-python").mkdir()
    assert missing_data("cifar100", tmp_path) is None
    assert "does not exist" in missing_data("folder:nothing", tmp_path)
    (tmp_path / "imgs").mkdir()
    assert missing_data("folder:imgs", tmp_path) is None
    assert missing_data("synthetic:separated?n=8&d=4&delta=0.5", tmp_path) is None
