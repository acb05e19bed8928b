"""Typed records of a run's stored results: what the figures, the verdicts and the report read.

Files are read through ``results`` (the only module that touches them); here each result file
becomes a plain record with its numbers checked. A missing file is absent from the records; a
damaged one (unreadable, truncated, lacking a key, a number that is not one) raises
``LandscapeError`` naming the file. Loaders that take ``repeats`` return every repeat of a
checkpoint (repeat 0 in ``analysis/epoch_XXXX/``, repeat r in ``repeat_r/`` below it).
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import re
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import LandscapeError
from .measure import fit_envelope, fit_resolution
from .measurements import REGISTRY
from .results import RunDir, read_json, read_jsonl, read_npz, run_lock

_EPOCH_DIR = re.compile(r"^epoch_(\d+)$")
DIRECTION_ORDER = ("neg_gradient", "gaussian", "filter_normalized", "hessian_top", "hessian_most_negative")


def _damaged(path: Path, why: str) -> LandscapeError:
    return LandscapeError(f"damaged result file {path}: {why}")


def _get(obj: Any, dotted: str, path: Path) -> Any:
    """``obj['a']['b']`` for 'a.b', or a LandscapeError naming the file and the key."""
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise _damaged(path, f"no key '{dotted}'")
        cur = cur[part]
    return cur


@dataclass(frozen=True)
class Domain:
    """Where a stored number may lie: [low, high] (low excluded if ``strict``), and whether NaN
    (an undefined or unresolved value, stored as 'nan' or null) or ±inf may stand for it."""

    text: str
    low: float = -math.inf
    high: float = math.inf
    strict: bool = False
    nan: bool = False
    inf: bool = False

    def reject(self, v: float) -> str | None:
        """Why ``v`` is outside the domain, or None."""
        if math.isnan(v):
            return None if self.nan else "NaN where a number is required"
        if math.isinf(v) and not self.inf:
            return f"{v} where a finite number is required"
        if v < self.low or v > self.high or (self.strict and v == self.low):
            return f"{v:g}, outside its domain ({self.text})"
        return None


_SQUARE = Domain("≥ 0: a squared norm", 0.0)
_LOSS = Domain("≥ 0: a loss", 0.0)
_SHARE = Domain("a fraction in [0, 1]", 0.0, 1.0, nan=True)  # NaN: accuracy of regression targets
_SIZE = Domain("≥ 0: a norm, bound or count", 0.0, nan=True, inf=True)
_REAL = Domain("a real number", nan=True)

# Every number the readers take from a result file, by its field (the last part of its key),
# with its domain; a field not listed may be any real number or NaN.
FIELD_DOMAINS: dict[str, Domain] = {
    "F": _LOSS, "train_loss": _LOSS, "grad_sq": _SQUARE, "grad_sq_hidden": _SQUARE,
    "ratio": Domain("≥ 0, or undefined at 0/0", 0.0, nan=True, inf=True),
    "ratio_hidden": Domain("≥ 0, or undefined at 0/0", 0.0, nan=True, inf=True),
    "test_loss": Domain("≥ 0: a loss (NaN: diverged)", 0.0, nan=True),
    "F_checkpoint_stats": Domain("≥ 0: a loss (NaN: unusable statistics)", 0.0, nan=True),
    "F_recomputed_stats": Domain("≥ 0: a loss (NaN: unusable statistics)", 0.0, nan=True),
    "train_acc": _SHARE, "test_acc": _SHARE, "negative_mass": _SHARE,
    "grad_norm": Domain("≥ 0: a norm", 0.0), "theta_norm": Domain("≥ 0: a norm", 0.0),
    "noise_floor": _SIZE, "rel_rms": _SIZE, "residual": _SIZE, "error_bound": _SIZE,
    "outliers_above": _SIZE, "width": _SIZE,
    # standard errors over probes: None (null) where one probe leaves no spread to estimate (``stderr_num``)
    "negative_mass_stderr": _SIZE, "outliers_above_stderr": _SIZE,
    "epoch": Domain("≥ 0: an epoch", 0.0), "step": Domain("≥ 0: a count of steps", 0.0),
    "lr": Domain("> 0: a learning rate", 0.0, strict=True),
    "limit_gd": Domain("> 0: 2/lr", 0.0, strict=True), "limit_momentum": Domain("> 0: (2+2β)/lr", 0.0, strict=True),
    "half_width": Domain("> 0: a surface half-width", 0.0, strict=True),
    "a": _SIZE, "b": _SIZE, "envelope": _SIZE, "a_over_sqrt_F": _SIZE, "a_over_grad_norm": _SIZE, "a_resolution": _SIZE,
    "fit_ceiling": _SIZE,
    "size": Domain("≥ 1: a number of examples", 1.0), "lambda_max_bound": _SIZE, "lambda_min_bound": _SIZE,
}


def _field(what: str) -> str:
    """'eigenvalue' of 'result.top[0].eigenvalue', 'F' of 'line 3: F'."""
    return re.split(r"[.: ]", re.sub(r"\[\d+\]", "", what))[-1]


def checked_number(value: Any, path: Path, what: str) -> float:
    """A stored number (non-finite ones are stored as the strings 'nan', 'inf'; null is NaN, undefined),
    checked against its field's domain (``FIELD_DOMAINS``)."""
    if isinstance(value, bool):
        raise _damaged(path, f"'{what}' is not a number")
    try:
        number = float("nan") if value is None else float(value)
    except (TypeError, ValueError):
        raise _damaged(path, f"'{what}' is not a number: {value!r}") from None
    why = FIELD_DOMAINS.get(_field(what), _REAL).reject(number)
    if why:
        raise _damaged(path, f"'{what}' is {why}")
    return number


def stderr_num(value: Any, path: Path, what: str) -> float | None:
    """A standard error over probes, or None where there is none (one probe: stored as null; older
    files wrote NaN), so that no reader shows 'nan' for it."""
    number = None if value is None else checked_number(value, path, what)
    return None if number is None or math.isnan(number) else number


def load_json(path: Path, required: Iterable[str] = ()) -> dict:
    """A result JSON whose ``required`` dotted keys all exist."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise _damaged(path, "not a JSON object")
    for key in required:
        _get(data, key, path)
    return data


def load_npz(path: Path, required: Iterable[str] = ()) -> dict[str, np.ndarray]:
    path = Path(path)
    arrays = read_npz(path)
    missing = [k for k in required if k not in arrays]
    if missing:
        raise _damaged(path, f"no array(s) {', '.join(missing)}")
    return arrays


def read_rows(path: Path, required: Iterable[str] = ()) -> list[dict]:
    """The rows of a JSON-lines file (``results.read_jsonl``), each holding the ``required`` keys."""
    path = Path(path)
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        for key in required:
            if key not in row:
                raise _damaged(path, f"line {i + 1} has no key '{key}'")
    return rows


LOG_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr")
TRACK_KEYS = ("step", "epoch", "F", "grad_sq", "grad_sq_hidden")


def analyzed_epochs(run: RunDir) -> list[int]:
    """Checkpoint epochs that have an ``analysis/epoch_XXXX`` folder."""
    if not run.analysis.is_dir():
        return []
    return sorted(int(m.group(1)) for p in run.analysis.iterdir()
                  if p.is_dir() and (m := _EPOCH_DIR.match(p.name)))


def as_run(run_dir) -> RunDir:
    """A RunDir for a path or a RunDir."""
    return run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)


def read_config(run: RunDir) -> dict:
    if not run.path.is_dir():
        raise LandscapeError(f"{run.path} is not a directory")
    if not run.is_run():
        raise LandscapeError(f"{run.path} is not a run directory (no config.json)")
    return load_json(run.config, ["data.dataset"])


_REPEAT_DIR = re.compile(r"^repeat_(\d+)$")


def repeat_folders(run: RunDir, epoch: int, repeats: bool = True) -> list[tuple[int, Path]]:
    """(repeat, folder) of one checkpoint: repeat 0 is the epoch folder, repeat R its ``repeat_R/``."""
    base = run.analysis_dir(epoch)
    if not base.is_dir():
        return []
    out = [(0, base)]
    if repeats:
        out += sorted((int(m.group(1)), p) for p in base.iterdir() if p.is_dir() and (m := _REPEAT_DIR.match(p.name)))
    return out


def _result_files(run: RunDir, epochs: Iterable[int] | None, name: str, repeats: bool):
    """(epoch, repeat, path) of every existing result file ``name`` of the given checkpoints."""
    for epoch in (analyzed_epochs(run) if epochs is None else epochs):
        for repeat, folder in repeat_folders(run, epoch, repeats):
            if (folder / name).is_file():
                yield epoch, repeat, folder / name


def load_dominance(run: RunDir, epochs: Iterable[int] | None = None, repeats: bool = False) -> list[dict]:
    """One record per analyzed checkpoint with a dominance result (and per repeat with ``repeats``)."""
    out = []
    for epoch, repeat, path in _result_files(run, epochs, REGISTRY["dominance"].file, repeats):
        d = load_json(path, ["context", "result.F", "result.grad_sq", "result.grad_sq_hidden",
                             "result.ratio", "result.ratio_hidden"])
        r = d["result"]
        rec = {"epoch": epoch, "repeat": repeat, "path": path, "context": d["context"],
               "settings": d.get("settings", {}), "bn_stats": r.get("bn_stats", "checkpoint")}
        for k in ("F", "grad_sq", "grad_sq_hidden", "ratio", "ratio_hidden"):
            rec[k] = checked_number(r[k], path, f"result.{k}")
        for k in ("train_acc", "test_loss", "test_acc", "grad_norm", "theta_norm", "F_checkpoint_stats",
                  "F_recomputed_stats"):
            if k in r:
                rec[k] = checked_number(r[k], path, f"result.{k}")
        out.append(rec)
    return out


def _numeric_rows(path, keys) -> list[dict]:
    rows = read_rows(path, keys)
    for i, row in enumerate(rows):
        for k in keys:
            row[k] = checked_number(row[k], path, f"line {i + 1}: {k}")
    return rows


def load_track(run: RunDir) -> list[dict]:
    return _numeric_rows(run.track, TRACK_KEYS)


def load_log(run: RunDir) -> list[dict]:
    return _numeric_rows(run.log, LOG_KEYS)


SHARPNESS_KEYS = ("step", "epoch", "lr", "lambda_max", "residual", "limit_gd", "limit_momentum")


def load_sharpness(run: RunDir) -> list[dict]:
    """λ_max along training (train --track-sharpness-every), beside 2/η and (2+2β)/η."""
    return _numeric_rows(run.sharpness, SHARPNESS_KEYS)


TRAJECTORY_ARRAYS = ("epoch", "F", "grad_sq", "star_epoch", "star_inner", "star_gap", "star_ratio", "star_holds",
                     "pl_zero", "pl_min", "travelled", "distance_to_final")


def load_trajectory(run: RunDir) -> list[dict]:
    """The trajectory measurement of each repeat: its summary, context and arrays (ntk_drift if measured)."""
    folder = run.run_piece_dir("trajectory")
    out = []
    for path in sorted(folder.glob(REGISTRY["trajectory"].file_glob())) if folder.is_dir() else []:
        m = REGISTRY["trajectory"].file_fields(path.name)
        if not m:
            continue
        d = load_json(path, ["context", "settings", "result.target_epoch", "result.star_holds_fraction"])
        arrays = load_npz(path.with_suffix(".npz"), TRAJECTORY_ARRAYS)
        out.append({"repeat": int(m["repeat"]), "path": path, "context": d["context"], "settings": d["settings"],
                    "result": d["result"], **{k: np.asarray(v, float) for k, v in arrays.items()}})
    return out


def load_probes(run: RunDir, epoch: int, repeats: bool = False) -> list[dict]:
    """The semi-smoothness probes of one checkpoint (of every repeat with ``repeats``), the gradient first."""
    out = []
    for repeat, folder in repeat_folders(run, epoch, repeats):
        out += _load_probe_folder(folder, epoch, repeat)
    order = list(DIRECTION_ORDER)
    out.sort(key=lambda p: (p["repeat"], order.index(p["kind"]) if p["kind"] in order else len(order), p["name"]))
    return out


def _load_probe_folder(folder: Path, epoch: int, repeat: int) -> list[dict]:
    """The probe records of one repeat folder; ‖∇F‖ of files that predate it from the −∇F probe's slope."""
    out = [_probe_record(path, epoch, repeat) for path in sorted(folder.glob(REGISTRY["probes"].file_glob()))
           if not is_undefined(path)]
    neg = [p for p in out if p["kind"] == "neg_gradient" and math.isfinite(p["slope"])]
    for p in out:
        if not math.isfinite(p["grad_norm"]) and neg:  # slope along −∇F/‖∇F‖ is −‖∇F‖
            p["grad_norm"] = abs(neg[0]["slope"])
            p["a_over_grad_norm"] = p["a"] / p["grad_norm"] if p["grad_norm"] > 0 else float("nan")
            _resolution_ratios(p)
    return out


def _probe_record(path: Path, epoch: int, repeat: int) -> dict:
    """One probe: its numbers, arrays and fit. A fit that is not resolved (``measure.fit_resolution``;
    files that predate the check are judged by it from their arrays) has a, b, a/√F, a/‖∇F‖ NaN,
    ``resolved`` False and its ``reason``: not measured, never 0. A resolved fit also carries
    ``a_resolution`` (``measure.kink_resolution``), its ratios to ‖∇F‖ and √F, and ``a_resolved`` (False: a
    is only bounded by a_resolution). A resolved fit stored without ``sides`` (before the per-side envelope,
    before ``a_resolution``, or a least-squares curve) is refitted from the arrays (``_refit``): every
    stored run is judged by the current fit, a pure function of t, r, the floor and the ceiling."""
    d = load_json(path, ["context", "result.F", "result.noise_floor", "result.fit.a", "result.fit.b",
                         "result.direction.kind", "result.a_over_sqrt_F"])
    arrays = load_npz(path.with_suffix(".npz"), ["t", "f", "r"])
    r, fit = d["result"], d["result"]["fit"]
    rec = {"epoch": epoch, "repeat": repeat, "path": path, "name": REGISTRY["probes"].file_fields(path.name)["name"],
           "context": d["context"], "kind": str(r["direction"]["kind"]), "direction": r["direction"],
           "F": checked_number(r["F"], path, "result.F"), "noise_floor": checked_number(r["noise_floor"], path, "result.noise_floor"),
           "slope": checked_number(r.get("slope"), path, "result.slope"),
           "grad_norm": checked_number(r["grad_norm"], path, "result.grad_norm") if "grad_norm" in r else float("nan"),
           "descent": r.get("descent"), "window": r.get("window"),
           "t": np.asarray(arrays["t"], float), "f": np.asarray(arrays["f"], float),
           "r": np.asarray(arrays["r"], float)}
    if not (len(rec["t"]) == len(rec["f"]) == len(rec["r"])):
        raise _damaged(path.with_suffix(".npz"), "arrays t, f, r differ in length")
    ceiling = checked_number(r.get("fit_ceiling", max(rec["F"], rec["noise_floor"])), path, "result.fit_ceiling")
    gate = fit_resolution(rec["t"], rec["r"], rec["noise_floor"], ceiling)
    resolved = bool(fit["resolved"]) if "resolved" in fit else gate["resolved"]
    rec.update(resolved=resolved, reason=None if resolved else (fit.get("reason") or gate["reason"]),
               points=fit.get("points", gate["points"]), distinct_t=fit.get("distinct_t", gate["distinct_t"]),
               t_range=fit.get("t_range", gate["t_range"]), decades=fit.get("decades", gate["decades"]))
    for key, what in (("a", "result.fit.a"), ("b", "result.fit.b"), ("rel_rms", "result.fit.rel_rms"),
                      ("envelope", "result.fit.envelope"), ("a_over_sqrt_F", "result.a_over_sqrt_F"),
                      ("a_over_grad_norm", "result.a_over_grad_norm"), ("a_resolution", "result.fit.a_resolution")):
        source = fit if what.startswith("result.fit.") else r
        rec[key] = checked_number(source.get(key), path, what) if resolved else float("nan")
    rec["a_resolved"] = resolved and bool(fit.get("a_resolved"))
    if resolved and "sides" not in fit:  # stored before the per-side envelope: refit from the arrays
        _refit(rec, ceiling)
    if resolved and not math.isfinite(rec["a_over_grad_norm"]) and rec["grad_norm"] > 0:
        rec["a_over_grad_norm"] = rec["a"] / rec["grad_norm"]
    _resolution_ratios(rec)
    return rec


def _resolution_ratios(rec: dict) -> None:
    """a_resolution/‖∇F‖ and a_resolution/√F of a record (NaN where a_resolution or the scale is missing)."""
    res, g, F = rec["a_resolution"], rec["grad_norm"], rec["F"]
    rec["a_resolution_over_grad_norm"] = res / g if math.isfinite(g) and g > 0 else float("nan")
    rec["a_resolution_over_sqrt_F"] = res / math.sqrt(F) if F > 0 else float("nan")


def _refit(rec: dict, ceiling: float) -> None:
    """Replace a stored fit by the envelope (``measure.fit_envelope``) of the stored t and r, with its
    a_resolution and a_resolved (a fit stored before the per-side envelope, or a least-squares curve before it)."""
    fit = fit_envelope(rec["t"], rec["r"], rec["noise_floor"], ceiling)
    if not fit.resolved:  # the stored gate said resolved: keep its verdict, but the numbers come from the arrays
        rec.update(a_resolution=float("nan"), a_resolved=False)
        return
    rec.update(a=fit.a, b=fit.b, rel_rms=fit.rel_rms, envelope=fit.envelope, a_resolution=fit.a_resolution,
               a_resolved=fit.a_resolved,
               a_over_sqrt_F=fit.a / math.sqrt(rec["F"]) if rec["F"] > 0 else float("nan"),
               a_over_grad_norm=fit.a / rec["grad_norm"] if rec["grad_norm"] > 0 else float("nan"))


def is_undefined(path: Path) -> bool:
    """A piece the analysis recorded as undefined (its direction does not exist, e.g. ∇F = 0)."""
    result = load_json(path).get("result")
    return isinstance(result, dict) and "undefined" in result


def load_surface(run: RunDir, epoch: int, name: str = "surface") -> dict | None:
    """The surface (paper plane, or ``name='random_surface'``) of one checkpoint, or None."""
    path = run.analysis_dir(epoch) / REGISTRY[name].file
    if not path.is_file() or is_undefined(path):
        return None
    required = ["context", "settings", "result.F", "result.anywhere.decrease", "result.anywhere.at"]
    if name == "surface":
        required += ["result.along_x.decrease", "result.along_x.at", "result.along_y.decrease", "result.along_y.at"]
    d = load_json(path, required)
    arrays = load_npz(path.with_suffix(".npz"), ["xs", "ys", "loss"])
    xs, ys, loss = (np.asarray(arrays[k], float) for k in ("xs", "ys", "loss"))
    if loss.shape != (len(ys), len(xs)):
        raise _damaged(path.with_suffix(".npz"), f"loss has shape {loss.shape}, expected {(len(ys), len(xs))}")
    res, settings = d["result"], d["settings"]

    def direction(axis: str) -> dict:
        """The axis' direction description: result.<axis> (current layout) or settings.<axis>."""
        for where in (res, settings):
            if isinstance(where.get(axis), dict):
                return where[axis]
        return {"kind": str(settings.get(axis, "?"))}

    half = res.get("half_width", settings.get("half_width"))
    return {"epoch": epoch, "path": path, "context": d["context"], "settings": settings, "result": res,
            "x": direction("x"), "y": direction("y"), "sigma": settings.get("sigma"),
            "half_width": checked_number(half, path, "result.half_width") if half is not None else float(np.abs(xs).max()),
            "xs": xs, "ys": ys, "loss": loss, "acc": arrays.get("acc")}


def load_curvature(run: RunDir, epochs: Iterable[int] | None = None, repeats: bool = False) -> list[dict]:
    """The extreme eigenvalues of each analyzed checkpoint (and repeat, with ``repeats``)."""
    out = []
    for epoch, repeat, path in _result_files(run, epochs, REGISTRY["curvature"].file, repeats):
        d = load_json(path, ["context", "result.top", "result.most_negative.eigenvalue"])
        top = d["result"]["top"]
        if not isinstance(top, list) or not top or not isinstance(top[0], dict) or "eigenvalue" not in top[0]:
            raise _damaged(path, "'result.top' holds no eigenpair")
        neg = d["result"]["most_negative"]
        out.append({"epoch": epoch, "repeat": repeat, "path": path, "context": d["context"],
                    "settings": d.get("settings", {}),
                    "top": checked_number(top[0]["eigenvalue"], path, "result.top[0].eigenvalue"),
                    "top_converged": bool(top[0].get("converged", True)),
                    "most_negative_converged": bool(neg.get("converged", True)),
                    "top_residual": checked_number(top[0].get("residual", "nan"), path, "result.top[0].residual"),
                    "most_negative": checked_number(neg["eigenvalue"], path, "result.most_negative.eigenvalue"),
                    "most_negative_residual": checked_number(neg.get("residual", "nan"), path,
                                                   "result.most_negative.residual"),
                    "trace": d["result"].get("trace"),
                    "most_negative_bound": checked_number(neg.get("error_bound", neg.get("residual", "nan")), path,
                                                "result.most_negative.error_bound"),
                    "alignment": (d["result"].get("gradient_alignment") or {}).get("fraction"),
                    "alignment_k": (d["result"].get("gradient_alignment") or {}).get("k")})
    return out


SPECTRUM_KEYS = ("negative_mass", "outliers_above", "width")
SPECTRUM_STDERRS = ("negative_mass_stderr", "outliers_above_stderr")  # None with one probe


def load_spectrum(run: RunDir, epochs: Iterable[int] | None = None, repeats: bool = True) -> list[dict]:
    """The eigenvalue density (stochastic Lanczos quadrature) of each analyzed checkpoint and repeat."""
    out = []
    for epoch, repeat, path in _result_files(run, epochs, REGISTRY["spectrum"].file, repeats):
        d = load_json(path, ["context", "settings"] + [f"result.{k}" for k in SPECTRUM_KEYS + SPECTRUM_STDERRS[:1]])
        arrays = load_npz(path.with_suffix(".npz"), ["nodes", "weights"])
        rec = {"epoch": epoch, "repeat": repeat, "path": path, "context": d["context"], "settings": d["settings"],
               "result": d["result"], "nodes": np.asarray(arrays["nodes"], float),
               "weights": np.asarray(arrays["weights"], float)}
        rec.update({k: checked_number(d["result"][k], path, f"result.{k}") for k in SPECTRUM_KEYS})
        rec.update({k: stderr_num(d["result"].get(k), path, f"result.{k}") for k in SPECTRUM_STDERRS})
        out.append(rec)
    return out


SECOND_ORDER_KEYS = ("F", "d_grad", "d_curv", "d_plane", "extra", "extra_fraction")
SECOND_ORDER_CONTROL_KEYS = ("d_dir", "d_plane", "extra", "extra_fraction")


def _maybe_num(value: Any, path: Path, what: str) -> tuple[float, dict | None]:
    """A stored number, or an unresolved one ({'resolved': false, 'bound': ..., 'side': ...}) as
    (NaN, that record with its bound checked): never a value where the search resolved none."""
    if isinstance(value, dict):
        if value.get("resolved") is not False or value.get("side") not in ("below", "above"):
            raise _damaged(path, f"'{what}' is neither a number nor an unresolved bound")
        bound = value.get("bound")
        return float("nan"), {**value, "bound": None if bound is None else checked_number(bound, path, f"{what}.bound")}
    return checked_number(value, path, what), None


def _second_order_numbers(r: dict, keys, path: Path, prefix: str) -> dict:
    """The numbers ``keys`` of one direction: NaN where unresolved, the bounds under 'unresolved'."""
    out, bounds = {}, {}
    for k in keys:
        out[k], bound = _maybe_num(_get(r, k, path), path, f"{prefix}{k}")
        if bound is not None:
            bounds[k] = bound
    out["unresolved"] = bounds
    out["stored"] = {k: r[k] for k in keys}
    return out


def load_second_order(run: RunDir, epochs: Iterable[int] | None = None, repeats: bool = True) -> list[dict]:
    """The grid-free second-order test of each analyzed checkpoint and repeat, with its controls.

    Unresolved numbers read as NaN with their bound in ``unresolved``; ``stored`` keeps them as written;
    ``controls`` maps each control's name to the same fields (empty for results made before controls)."""
    out = []
    for epoch, repeat, path in _result_files(run, epochs, REGISTRY["second_order"].file, repeats):
        if is_undefined(path):
            continue
        d = load_json(path, ["context"] + [f"result.{k}" for k in SECOND_ORDER_KEYS])
        r = d["result"]
        rec = {"epoch": epoch, "repeat": repeat, "path": path, "context": d["context"], "result": r}
        rec.update(_second_order_numbers(r, SECOND_ORDER_KEYS, path, "result."))
        rec["lambda_min"] = checked_number(r.get("lambda_min", "nan"), path, "result.lambda_min")
        rec["lambda_min_converged"] = bool(r.get("lambda_min_converged", True))
        rec["bracketed"] = bool(r.get("bracketed", True))
        rec["evaluations"] = int(r.get("evaluations", 0))
        controls = r.get("controls", {})
        if not isinstance(controls, dict):
            raise _damaged(path, "'result.controls' is not an object")
        rec["controls"] = {name: {"kind": "top" if name == "top" else "random", **_second_order_numbers(
            c, SECOND_ORDER_CONTROL_KEYS, path, f"result.controls.{name}.")} for name, c in controls.items()}
        out.append(rec)
    return out


def load_interpolations(run: RunDir) -> list[dict]:
    """Every interpolation: init → final (the widest span) first, then by start epoch."""
    folder = run.run_piece_dir("interpolation")
    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob(REGISTRY["interpolation"].file_glob()):
        m = REGISTRY["interpolation"].file_fields(path.name)
        if not m:
            continue
        d = load_json(path, ["context", "settings", "result.train.monotone", "result.train.largest_bump"])
        arrays = load_npz(path.with_suffix(".npz"), ["alpha", "train_loss", "train_acc", "test_loss", "test_acc"])
        alpha = np.asarray(arrays["alpha"], float)
        for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
            if len(arrays[k]) != len(alpha):
                raise _damaged(path.with_suffix(".npz"), f"'{k}' and 'alpha' differ in length")
        a, b = int(m["a"]), int(m["b"])
        s = d["settings"]
        out.append({"from": a, "to": b, "path": path, "context": d["context"], "settings": s,
                    "result": d["result"], "bn": s.get("bn_interpolation", "?"), "alpha": alpha,
                    **{k: np.asarray(arrays[k], float) for k in ("train_loss", "train_acc", "test_loss", "test_acc")}})
    if out:
        lo, hi = min(r["from"] for r in out), max(r["to"] for r in out)
        out.sort(key=lambda r: (not (r["from"] == lo and r["to"] == hi), r["from"], r["to"]))
    return out


HESSIAN_SUBSET_KEYS = ("size", "lambda_max", "lambda_max_bound", "lambda_min", "lambda_min_bound")


def load_hessian_subsets(run: RunDir) -> dict | None:
    """The Hessian-subset convergence of a run (one row per curvature subset size, ascending), or None."""
    path = REGISTRY["hessian_subsets"].path(run)
    if not path.is_file() or is_undefined(path):
        return None
    d = load_json(path, ["context", "settings", "result.epoch", "result.rows"])
    rows = d["result"]["rows"]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise _damaged(path, "'result.rows' holds no subset")
    out = []
    for i, r in enumerate(rows):
        missing = [k for k in HESSIAN_SUBSET_KEYS if k not in r]
        if missing:
            raise _damaged(path, f"row {i} has no {', '.join(missing)}")
        alignment = r.get("alignment") or {}
        out.append({**{k: checked_number(r[k], path, f"result.rows[{i}].{k}") for k in HESSIAN_SUBSET_KEYS},
                    "lambda_max_converged": bool(r.get("lambda_max_converged", True)),
                    "lambda_min_converged": bool(r.get("lambda_min_converged", True)),
                    "alignment": alignment.get("fraction"), "alignment_k": alignment.get("k")})
    return {"path": path, "context": d["context"], "settings": d["settings"],
            "epoch": int(checked_number(d["result"]["epoch"], path, "result.epoch")),
            "rows": sorted(out, key=lambda r: r["size"])}


_HELD: set[Path] = set()  # run folders whose lock this process holds for figures or a report


def _silent(*args, **kwargs) -> None:
    """No message for a stale lock taken over: the command's own output says what it did."""


@contextmanager
def holding_runs(run_dirs: Iterable, command: str):
    """Hold each run folder's lock (``results.run_lock``) while figures or a report read its results
    and write beside them: while an ``analyze`` holds it this refuses in one line naming it (results
    half written are never drawn or judged), and no analysis starts meanwhile. Re-entrant within
    the process (a report draws its figures under its own hold); a folder that is not there, or
    where no lock file can be made (read-only: nobody writes there), is read without one."""
    with ExitStack() as stack:
        for run_dir in run_dirs:
            folder = as_run(run_dir).path
            key = folder.resolve()
            if key in _HELD or not folder.is_dir():
                continue
            try:
                stack.enter_context(run_lock(folder, _silent, command))
            except OSError:
                continue
            _HELD.add(key)
            stack.callback(_HELD.discard, key)
        yield


def holds_runs(command: str, arg: int = 0):
    """Decorate an entry point whose positional argument ``arg`` names one run folder or several:
    it runs under ``holding_runs``."""
    def wrap(function):
        signature = inspect.signature(function)
        name = list(signature.parameters)[arg]

        @functools.wraps(function)
        def held(*args, **kwargs):
            runs = signature.bind_partial(*args, **kwargs).arguments.get(name, ())
            runs = [runs] if isinstance(runs, (str, os.PathLike, RunDir)) else list(runs)
            with holding_runs(runs, command):
                return function(*args, **kwargs)
        return held
    return wrap


def track_uses_statistics_of_theta(track: list[dict]) -> bool:
    """Tracks written since the statistics of θ are recomputed at every point say so in bn_policy."""
    from .train import TRACK_BN_POLICY

    return bool(track) and all(r.get("bn_policy") == TRACK_BN_POLICY for r in track)
