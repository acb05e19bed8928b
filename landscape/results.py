"""The run directory and its files, all written atomically (write to a temp file, then rename).

Layout of a run directory::

    config.json            the run's full configuration (dataset, recipe, seed, ...)
    labels.pt              the training labels actually used (after subset and label noise)
    log.jsonl              one line per epoch: losses, accuracies, lr, seconds
    track.jsonl            dense (F, ||grad F||^2) along training, if --track-every was given
    sharpness.jsonl        λ_max on the tracked examples beside 2/η, if --track-sharpness-every was given
    checkpoints/epoch_XXXX.pt, checkpoints/last.pt
    analysis/epoch_XXXX/<measurement>.json (+ .npz for arrays)
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import LandscapeError


_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder and rename: readers see old or new, never half."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise LandscapeError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        # torch.save reports a full disk as a RuntimeError ("unexpected pos ..."), numpy as OSError
        if isinstance(exc, (OSError, RuntimeError)):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[0][:200]
            raise LandscapeError(f"could not write {path} ({reason}); a previous version of it, if any, "
                                 f"is unchanged") from None
        raise


def atomic_copy(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` atomically."""
    with open(source, "rb") as src:
        _atomic(path, lambda fh: _copy_stream(src, fh))


def _copy_stream(src, dst) -> None:
    while chunk := src.read(1 << 20):
        dst.write(chunk)


def _jsonable(obj: Any) -> Any:
    """``obj`` with numpy/torch scalars, arrays, paths and non-finite floats made JSON-safe."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)  # JSON has no NaN/inf: keep them readable
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_json(obj: Any, path: Path) -> None:
    data = json.dumps(_jsonable(obj), indent=2, sort_keys=True).encode()
    _atomic(path, lambda fh: fh.write(data + b"\n"))


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _atomic(Path(path), lambda fh: fh.write(text.encode("utf-8")))


def atomic_torch_save(obj: Any, path: Path) -> None:
    _atomic(path, lambda fh: torch.save(obj, fh))


def atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    _atomic(path, lambda fh: np.savez(fh, **arrays))


def atomic_write_jsonl(rows: list, path: Path) -> None:
    """Rewrite a .jsonl file (one JSON object a line) atomically."""
    data = "".join(json.dumps(_jsonable(r), sort_keys=True) + "\n" for r in rows).encode()
    _atomic(Path(path), lambda fh: fh.write(data))


def atomic_save_figure(fig, path: Path, fmt: str, **savefig) -> None:
    """Save a matplotlib figure as ``fmt`` to ``path`` atomically."""
    _atomic(Path(path), lambda fh: fig.savefig(fh, format=fmt, **savefig))


def read_json(path: Path) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise LandscapeError(f"missing result file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LandscapeError(f"damaged result file {path}: {exc}") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise LandscapeError(f"missing result file {path}") from None
    except Exception as exc:
        raise LandscapeError(f"damaged result file {path}: {exc}") from None


def append_jsonl(obj: Any, path: Path) -> None:
    """Append one JSON line and fsync it (a line is either fully there or absent on resume)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(_jsonable(obj), sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file ([] if absent). A torn last line (a crash while appending) is
    dropped; any other unreadable line, or a line that is not an object, is a one-line error."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LandscapeError(f"damaged result file {path}: {exc}") from None
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1 and i > 0:
                break  # torn last line
            raise LandscapeError(f"damaged result file {path}: line {i + 1}: {exc}") from None
        if not isinstance(row, dict):
            raise LandscapeError(f"damaged result file {path}: line {i + 1} is not a JSON object")
        rows.append(row)
    return rows


class RunDir:
    """Paths inside one run directory."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    labels = property(lambda self: self.path / "labels.pt")
    log = property(lambda self: self.path / "log.jsonl")
    track = property(lambda self: self.path / "track.jsonl")
    sharpness = property(lambda self: self.path / "sharpness.jsonl")
    checkpoints = property(lambda self: self.path / "checkpoints")
    analysis = property(lambda self: self.path / "analysis")
    figures = property(lambda self: self.path / "figures")

    def checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:04d}.pt"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    def checkpoint_epochs(self) -> list[int]:
        if not self.checkpoints.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in self.checkpoints.glob("epoch_*.pt"))

    def analysis_dir(self, epoch: int | str) -> Path:
        name = f"epoch_{epoch:04d}" if isinstance(epoch, int) else str(epoch)
        return self.analysis / name

    def repeat_dir(self, epoch: int, repeat: int) -> Path:
        """Where repeat ``repeat`` of ``epoch`` is stored: the epoch folder for 0, repeat_R/ below it otherwise."""
        out = self.analysis_dir(epoch)
        return out if repeat == 0 else out / f"repeat_{repeat}"

    def run_piece_dir(self, measurement: str) -> Path:
        """The folder of a measurement made once per run (interpolation, trajectory)."""
        return self.analysis / measurement

    budget = property(lambda self: self.analysis / "budget.json")

    def is_run(self) -> bool:
        """True if the folder holds a landscape run; raises LandscapeError if its config.json is not ours."""
        if not self.config.is_file():
            return False
        read_run_config(self.config)
        return True


def read_run_config(path: Path) -> dict:
    """A run's config.json, checked to be one landscape wrote ('train' and 'data' sections)."""
    config = read_json(path)
    data = config.get("data") if isinstance(config, dict) else None
    train = config.get("train", ...) if isinstance(config, dict) else ...
    if not isinstance(data, dict) or not isinstance(data.get("dataset"), str) or not (train is None or isinstance(train, dict)):
        raise LandscapeError(f"{path} is not the config.json of a landscape run (no 'train' and 'data' "
                             f"sections); move it away or choose another folder")
    return config


def safe_torch_load(path: Path, what: str):
    """torch.load(weights_only=True) of ``path``; one line naming ``what`` and the file when it fails."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" in str(exc).lower():
            raise LandscapeError(f"{what} {path} holds Python objects besides tensors and plain values; "
                                 f"refusing to unpickle it (torch.load weights_only)") from None
        raise LandscapeError(f"{what} {path} is corrupt or truncated ({_first_line(exc)})") from None
    except Exception as exc:  # a damaged or foreign file fails in many ways (KeyError, struct.error, ...)
        raise LandscapeError(f"{what} {path} is corrupt or truncated ({_first_line(exc)})") from None


def read_labels(path: Path) -> dict[str, torch.Tensor]:
    """A run's labels.pt ({'indices', 'labels'}), loaded without unpickling code; one line if damaged."""
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"missing {path}: the run's training labels")
    blob = safe_torch_load(path, "labels file")
    ok = (isinstance(blob, dict) and all(isinstance(blob.get(k), torch.Tensor) for k in ("indices", "labels"))
          and blob["labels"].dim() == 1 and blob["indices"].shape == blob["labels"].shape
          and not blob["labels"].is_floating_point() and not blob["indices"].is_floating_point())
    if not ok:
        raise LandscapeError(f"{path} is not a run's labels file (expected equal-length integer tensors "
                             f"'indices' and 'labels')")
    return blob


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ----------------------------------------------------------------------------- ownership and leftovers
LOCK_NAME = ".landscape.lock"
_TEMP_GLOB = ".*.tmp"  # what _atomic's mkstemp names look like


def is_temporary(path: Path) -> bool:
    """A leftover of an interrupted atomic write (``.NAME.XXXXXXXX.tmp``)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files interrupted atomic writes left under ``folder``; returns them."""
    removed = []
    for path in Path(folder).rglob(_TEMP_GLOB):
        if path.is_file() and is_temporary(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def user_entries(folder: Path) -> list[Path]:
    """What ``folder`` holds besides landscape's own lock and temporary files."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name != LOCK_NAME and not is_temporary(p))


def _holder_text(info: dict) -> str:
    if not info:
        return "another landscape process"
    text = f"pid {info.get('pid')} on host {info.get('host')}"
    if info.get("command"):
        text += f" ({info['command']})"
    if info.get("started"):
        text += f", since {info['started']}"
    return text


def _read_lock(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        info = json.loads(raw.decode()) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {"pid": "?", "host": "?"}
    return info if isinstance(info, dict) else {"pid": "?", "host": "?"}


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True
    return True


@contextmanager
def run_lock(folder: str | os.PathLike, echo=print, command: str = ""):
    """Hold ``folder`` for one writer: ``FOLDER/.landscape.lock`` names the holder (pid, host).

    The file carries an exclusive ``flock``, which the system drops when its holder dies, so a
    lock left by a killed process is recognised as stale and taken over (with a message); a live
    holder makes this raise LandscapeError naming it. Where the file system has no flock, the
    holder's pid is checked instead (on the same host). Once held, the temporary files of
    interrupted atomic writes in ``folder`` are removed. The lock file goes on exit.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    host = socket.gethostname()
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            holder = _read_lock(fd)
            os.close(fd)
            raise LandscapeError(f"{folder} is in use by {_holder_text(holder)} (lock {path}); "
                                 f"wait for it to finish: one writer per run folder") from None
        except OSError:
            locked = False  # no flock here (some network file systems): judge by the pid
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the previous holder removed the file between our open and our lock
            os.close(fd)
            continue
        previous = _read_lock(fd)
        if previous and not locked and (previous.get("host") != host or _pid_alive(previous.get("pid"))) \
                and previous.get("pid") != os.getpid():
            os.close(fd)
            raise LandscapeError(f"{folder} is in use by {_holder_text(previous)} (lock {path}); wait for it "
                                 f"to finish, or delete {path} if that process is gone")
        break
    else:
        raise LandscapeError(f"could not take the lock {path}: it keeps changing hands")
    try:
        if previous:
            echo(f"taking over the stale lock {path} of {_holder_text(previous)}, which is no longer running")
        mine = json.dumps({"pid": os.getpid(), "host": host, "command": command,
                           "started": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, mine)
        os.fsync(fd)
        removed = remove_temporaries(folder)
        if removed:
            echo(f"removed {len(removed)} temporary file(s) left by an interrupted write in {folder}")
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


# ----------------------------------------------------------------------------- partial results
class Partial:
    """Where a many-point measurement keeps its finished points, and the key they belong to.

    ``key`` names everything the points depend on (settings, data, checkpoint: a string, or
    data made into canonical JSON); ``load`` returns saved points only under the same key and
    the same coordinates, reporting through ``echo`` when it discards points computed with other
    settings. ``measure.evaluate_points`` uses it through ``load``/``save`` and never touches files.
    """

    def __init__(self, path: str | os.PathLike, key: Any = None, echo=print):
        """Points at ``path`` (an .npz), valid under ``key`` (None: a file written without a key)."""
        self.path = Path(path)
        self.key = key if key is None or isinstance(key, str) else json.dumps(_jsonable(key), sort_keys=True)
        self.echo = echo

    def __fspath__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Partial({str(self.path)!r})"

    def load(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(loss, acc, done) saved for exactly ``coords`` under this key, or None."""
        if not self.path.is_file():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                stored = str(z["key"][()]) if "key" in z.files else None
                if stored != self.key:
                    self.discarded(stored, int(z["done"].sum()))
                    return None
                if z["coords"].shape == coords.shape and np.array_equal(z["coords"], coords):
                    return z["loss"].copy(), z["acc"].copy(), z["done"].copy()
        except Exception:
            pass  # a damaged partial file only costs its points
        return None

    def save(self, coords: np.ndarray, loss: np.ndarray, acc: np.ndarray, done: np.ndarray) -> None:
        """Write the points atomically, with the key."""
        keyed = {"key": np.array(self.key)} if self.key is not None else {}
        atomic_savez(self.path, coords=coords, loss=loss, acc=acc, done=done, **keyed)

    def discarded(self, stored_key: str | None, points: int) -> None:
        """Say that ``points`` saved points were dropped because their key differs."""
        self.echo(f"discarding {points} saved point(s) in {self.path}: they were computed with other settings"
                  f"{_key_difference(stored_key, self.key)}")


def _flat(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, obj


def _key_difference(old: str | None, new: str) -> str:
    """' (a: 1 -> 2, ...)' for the first few fields two JSON keys differ in; '' if unknown."""
    if old is None:
        return " (the file predates settings keys)"
    try:
        before, after = dict(_flat(json.loads(old))), dict(_flat(json.loads(new)))
    except (json.JSONDecodeError, TypeError):
        return ""
    diffs = [f"{k}: {before.get(k, '-')} -> {after.get(k, '-')}" for k in sorted(before.keys() | after.keys())
             if before.get(k) != after.get(k)]
    if not diffs:
        return ""
    return " (" + ", ".join(diffs[:4]) + (f", and {len(diffs) - 4} more" if len(diffs) > 4 else "") + ")"


# ----------------------------------------------------------------------------- the piece store
def normalized_key(obj) -> Any:
    """The JSON round-trip of ``obj``, so stored and fresh keys compare equal."""
    return json.loads(json.dumps(_jsonable(obj), sort_keys=True))


class PieceStore:
    """The resumable results of an analysis: one piece (a JSON summary, optional arrays) per file.

    A piece whose stored key equals the fresh key is finished and skipped; otherwise ``compute``
    runs and its result is written atomically, after which its finished-points files go. Under
    torchrun rank 0 decides freshness, reads and writes (``group``: a distributed.Group).
    """

    def __init__(self, group, echo=print):
        self.group, self.echo = group, echo

    @staticmethod
    def fresh(path: Path, key: dict) -> bool:
        """True if ``path`` holds a finished result computed with exactly ``key``."""
        if not path.is_file():
            return False
        try:
            return read_json(path).get("key") == normalized_key(key)
        except LandscapeError:
            return False

    def save(self, path: Path, key: dict, summary: dict, arrays: dict | None = None) -> None:
        if not self.group.is_writer:
            return
        if self.group.distributed:
            summary = {**summary, "parallel": self.group.describe()}
        if arrays is not None:
            atomic_savez(path.with_suffix(".npz"), **arrays)
        atomic_write_json({"key": key, **key, "result": summary}, path)
        # the finished points go only once the result holding them is written
        for partial in [path.with_suffix(".partial.npz"), *path.parent.glob(f"{path.stem}.*.partial.npz")]:
            partial.unlink(missing_ok=True)

    def piece(self, path: Path, key: dict, what: str, compute, undefined=()) -> bool:
        """key → fresh? → compute → save → say. Returns True when something was computed.

        ``compute()`` returns (summary, arrays or None, a line to print). An exception of a type in
        ``undefined`` (a direction that does not exist, e.g. ∇F = 0) stores the piece as undefined.
        """
        if self.group.from_rank0(lambda: self.fresh(path, key), f"checking {path.name}"):
            return False
        try:
            summary, arrays, message = compute()
        except tuple(undefined) as exc:
            self.save(path, key, {"undefined": str(exc)})
            self.echo(f"{what}: undefined ({exc})")
            return True
        self.save(path, key, summary, arrays)
        if message:
            self.echo(message)
        return True

    def partial(self, path: Path, key: dict, part: str = "") -> "Partial":
        """The finished-points file of the piece ``path`` (``part``: one of several), keyed by ``key``."""
        return self.group.store(Partial(path.with_name(f"{path.stem}{part}.partial.npz"),
                                        json.dumps({"key": normalized_key(key), "part": part}, sort_keys=True),
                                        self.echo))

    def read(self, path: Path, what: str) -> dict:
        """A stored piece's result and arrays (rank 0 reads, every rank gets them)."""
        def load():
            arrays = path.with_suffix(".npz")
            return {**read_json(path)["result"], "vectors": read_npz(arrays) if arrays.is_file() else {}}
        return self.group.from_rank0(load, what)
