"""Shared fixtures: the real JPEG CIFAR-10 copy, a per-session cache, tiny image folders.

The real data lives in ``shared/data`` next to the repository (``LANDSCAPE_DATA_ROOT``
overrides it). Caches always go to a temporary folder (``LANDSCAPE_TEST_CACHE_DIR``
reuses one across sessions), never into the read-only data folder or ~/.cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import cases
from cases import REAL_FOLDER, write_image_folder

# Tiny models on a small, possibly shared machine: one intra-op thread is as fast as two when the
# cores are free and many times faster when other processes hold them (OpenMP spin-waits).
torch.set_num_threads(int(os.environ.get("LANDSCAPE_TEST_THREADS", "1")))

# A test that reads the real images or runs a whole pipeline is `slow` (`pytest -m "not slow"` leaves it out):
# it asks for one of these fixtures, directly or through another fixture.
SLOW_FIXTURES = {"data_root", "tiny_sweep"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def real_data_root() -> Path:
    env = os.environ.get("LANDSCAPE_DATA_ROOT")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = real_data_root()
    if not (root / REAL_FOLDER / "train").is_dir():
        raise RuntimeError(f"the real CIFAR-10 JPEG copy is missing: expected {root / REAL_FOLDER}/train; "
                           f"set LANDSCAPE_DATA_ROOT to the folder that holds {REAL_FOLDER}/")
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    env = os.environ.get("LANDSCAPE_TEST_CACHE_DIR")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    return tmp_path_factory.mktemp("landscape-cache")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache_env(cache_dir):
    """Library calls that are not given a cache dir must not write to the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LANDSCAPE_CACHE_DIR", str(cache_dir))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def cifar10(data_root, cache_dir):
    """The whole real JPEG CIFAR-10 copy, decoded once per session (then served from the cache)."""
    from landscape.data import load_dataset

    return load_dataset(f"folder:{REAL_FOLDER}", data_root, cache_dir, progress=False)


@pytest.fixture
def make_image_folder(tmp_path):
    """Factory: ``make_image_folder(name, classes, train_per_class, test_per_class)`` -> Path."""

    def make(name: str = "tiny", classes=("a", "b", "c"), train_per_class: int = 8,
             test_per_class: int = 4, test_classes=None, seed: int = 0) -> Path:
        root = tmp_path / name
        write_image_folder(root, {c: train_per_class for c in classes},
                           {c: test_per_class for c in (test_classes or classes)}, seed=seed)
        return root

    return make


@pytest.fixture(scope="session")
def analyzed_run(tmp_path_factory, data_root, cache_dir) -> Path:
    return cases.build_analyzed_run(tmp_path_factory, data_root, cache_dir)

@pytest.fixture(scope="session")
def figured_run(tmp_path_factory, data_root, cache_dir):
    return cases.build_figured_run(tmp_path_factory, data_root, cache_dir)
