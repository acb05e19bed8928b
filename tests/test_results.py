"""landscape.results: atomic writes that fail cleanly, the run-folder lock, partial files with keys,
and the readers that refuse foreign or damaged files in one line."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from landscape import measure
from landscape.errors import LandscapeError
from landscape.results import (LOCK_NAME, Partial, RunDir, atomic_torch_save, atomic_write_json, read_labels,
                               read_run_config, remove_temporaries, run_lock, user_entries)

from cases import dead_pid


# ----------------------------------------------------------------------------- the lock
def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    messages = []
    with run_lock(tmp_path, messages.append, "landscape analyze") as lock:
        assert lock == tmp_path / LOCK_NAME
        held = json.loads(lock.read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        with pytest.raises(LandscapeError) as err:
            with run_lock(tmp_path, messages.append):
                pass
        text = str(err.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in text and "landscape analyze" in text
        assert str(tmp_path) in text and "\n" not in text
    assert not (tmp_path / LOCK_NAME).exists() and messages == []
    with run_lock(tmp_path, messages.append):  # free again
        pass


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    messages = []
    with run_lock(tmp_path, messages.append):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(messages) == 1 and "taking over the stale lock" in messages[0] and "no longer running" in messages[0]


def test_a_killed_holder_in_another_process_leaves_a_lock_that_is_taken_over(tmp_path):
    code = ("import sys, time\nfrom landscape.results import run_lock\n"
            "with run_lock(sys.argv[1], print, 'holder'):\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LandscapeError, match=f"in use by pid {holder.pid} on host .*holder"):
            with run_lock(tmp_path, print):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (tmp_path / LOCK_NAME).exists()  # a killed holder cannot clean up
    messages = []
    with run_lock(tmp_path, messages.append):
        pass
    assert any(f"pid {holder.pid}" in m and "stale" in m for m in messages)


def test_taking_the_lock_removes_temporaries_of_interrupted_writes(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    leftovers = [tmp_path / "checkpoints" / ".last.pt.k3j2h1.tmp", tmp_path / ".config.json.x8y7.tmp"]
    for p in leftovers:
        p.write_bytes(b"half")
    keep = [tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for p in keep:
        p.write_text("user")
    messages = []
    with run_lock(tmp_path, messages.append):
        assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in keep)
    assert messages and "2 temporary file(s)" in messages[0]
    assert user_entries(tmp_path) == sorted([tmp_path / "checkpoints", *keep])
    assert remove_temporaries(tmp_path) == []


# ----------------------------------------------------------------------------- atomic writes
def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"w": torch.ones(3)}, path)
    before = path.read_bytes()

    def full_disk(obj, fh, *a, **k):
        fh.write(b"partial bytes")
        raise RuntimeError("[enforce fail at inline_container.cc:595] . unexpected pos 6784 vs 6672")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(LandscapeError) as err:
        atomic_torch_save({"w": torch.zeros(3)}, path)
    assert str(path) in str(err.value) and "unexpected pos" in str(err.value) and "unchanged" in str(err.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_an_unwritable_folder_is_one_line_naming_the_file(tmp_path, monkeypatch):
    import tempfile

    def denied(*a, dir=None, **k):
        raise PermissionError(13, "Permission denied", dir)

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(LandscapeError, match=f"cannot write {tmp_path / 'r.json'}: Permission denied"):
        atomic_write_json({"a": 1}, tmp_path / "r.json")


# ----------------------------------------------------------------------------- readers
def test_a_foreign_config_json_is_refused_in_one_line(tmp_path):
    run = RunDir(tmp_path)
    assert not run.is_run()
    run.config.write_text(json.dumps({"name": "my project", "version": 3}))
    with pytest.raises(LandscapeError, match="not the config.json of a landscape run"):
        run.is_run()
    run.config.write_text(json.dumps({"train": {"arch": "resnet8"}, "data": {"dataset": "cifar10"}}))
    assert run.is_run() and read_run_config(run.config)["data"]["dataset"] == "cifar10"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_labels_file_that_is_unsafe_truncated_or_foreign(tmp_path):
    path = tmp_path / "labels.pt"
    good = {"indices": torch.arange(4), "labels": torch.tensor([0, 1, 2, 0])}
    torch.save(good, path)
    assert torch.equal(read_labels(path)["labels"], good["labels"])
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(LandscapeError, match=f"{path} is corrupt or truncated"):
        read_labels(path)
    with open(path, "wb") as fh:
        pickle.dump({"indices": _Evil(), "labels": torch.zeros(2)}, fh, protocol=2)
    with pytest.raises(LandscapeError, match="refusing to unpickle"):
        read_labels(path)
    torch.save({"labels": torch.zeros(3)}, path)
    with pytest.raises(LandscapeError, match="not a run's labels file"):
        read_labels(path)
    with pytest.raises(LandscapeError, match="missing"):
        read_labels(tmp_path / "nothing.pt")


# ----------------------------------------------------------------------------- partial files
class _Counting:
    """An objective whose F at coordinate c is a fixed function of c times ``scale``."""

    def __init__(self, scale=1.0):
        self.scale, self.calls = scale, 0

    points_per_pass = 1

    def evaluate(self, theta, buffers=None):
        self.calls += 1
        return float(theta.sum()) * self.scale, 0.5

    def values(self, thetas, buffers=None):
        return tuple(map(list, zip(*(self.evaluate(t) for t in thetas))))


def _points(obj, coords, partial, stop_after=None):
    def make_point(c):
        if stop_after is not None and obj.calls >= stop_after:
            raise KeyboardInterrupt
        return torch.tensor(c, dtype=torch.float64), None

    return measure.evaluate_points(obj, coords, make_point, partial)


def test_saved_points_are_reused_only_under_the_same_key(tmp_path):
    coords = np.arange(12, dtype=float).reshape(6, 2)
    path = tmp_path / "surface.partial.npz"
    key = {"context": {"examples": 128, "loss": "cross_entropy"}, "settings": {"points": 3}}
    first = _Counting()
    with pytest.raises(KeyboardInterrupt):
        _points(first, coords, Partial(path, key), stop_after=4)
    assert path.is_file() and str(np.load(path)["key"]) == Partial(path, key).key

    same = _Counting()
    loss, _ = _points(same, coords, Partial(path, key))
    assert same.calls == 2  # the 4 saved points are reused
    np.testing.assert_array_equal(loss, coords.sum(1))

    # interrupted again, then resumed under other settings: every point is computed anew
    path.unlink()  # (the analysis removes it once the finished result is written)
    with pytest.raises(KeyboardInterrupt):
        _points(_Counting(), coords, Partial(path, key), stop_after=4)
    messages = []
    other = {"context": {"examples": 64, "loss": "mse"}, "settings": {"points": 3}}
    mse = _Counting(scale=2.0)
    loss, _ = _points(mse, coords, Partial(path, other, messages.append))
    assert mse.calls == 6
    np.testing.assert_array_equal(loss, 2.0 * coords.sum(1))
    assert len(messages) == 1
    assert "discarding 4 saved point(s)" in messages[0] and str(path) in messages[0]
    assert "context.examples: 128 -> 64" in messages[0] and "context.loss: cross_entropy -> mse" in messages[0]


def test_a_partial_file_without_a_key_is_not_trusted_by_a_keyed_caller(tmp_path):
    coords = np.arange(4, dtype=float)[:, None]
    path = tmp_path / "p.partial.npz"
    with pytest.raises(KeyboardInterrupt):
        _points(_Counting(), coords, Partial(path), stop_after=2)  # an old-style file: no key
    messages = []
    obj = _Counting()
    _points(obj, coords, Partial(path, "k", messages.append))
    assert obj.calls == 4 and "predates settings keys" in messages[0]
