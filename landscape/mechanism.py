"""The convergence proof's mechanism along one trained cell: what changes from θ_0 as training proceeds.

At every checkpoint θ_t of a run (batch-norm statistics re-estimated at θ_t over the analyzed
examples, as the analysis does, so a ResNet's ReLU signs are those of the network at θ_t):

* ``flips``: per activation layer, the fraction of ReLU signs over the analyzed training inputs
  that differ from θ_0 (``theory.activation_flips``);
* ``movement``: per hidden weight matrix, ‖W_l(t) − W_l(0)‖₂ (``absolute``) and its ratio to
  ‖W_l(0)‖₂ (``relative``) (``theory.spectral_movement``);
* ``ntk_drift`` and ``ntk_min_eigenvalue``: ‖K_t − K_0‖_F/‖K_0‖_F and λ_min(K_t) of the empirical
  NTK on the first ``examples`` analyzed training points, at the first and last checkpoint only
  (``ntk_epochs``; the sweep reads the drift at the end and λ_min at both ends, and a kernel costs
  examples × outputs backward passes, most of a ResNet cell's mechanism time), over the analysis' parameter subset
  (every output's Jacobian when it fits in ``NTK_MAX_ENTRIES`` numbers, else one seeded random
  unit direction of the outputs, said in ``ntk_layout``).

Written once per cell to analysis/mechanism.json (``MECHANISM_FILE``) through results.py, and
recomputed only when its key (checkpoints, examples, parameter subset, seed) changes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .analysis import Analysis
from .data import normalize
from .measurements.trajectory import NTK_MAX_ENTRIES
from .results import RunDir, atomic_write_json, read_json
from .runtime import Runtime
from .settings import AnalysisSettings
from .theory import activation_flips, ntk, ntk_drift, ntk_min_eigenvalue, spectral_movement

MECHANISM_FILE = "mechanism.json"  # in the run's analysis/ folder


def mechanism_path(run_dir) -> Path:
    return RunDir(run_dir).analysis / MECHANISM_FILE


def _kernel(obj, model, examples: int, seed: int):
    """The NTK on the first ``examples`` points and its layout (every output, or one random output direction)."""
    n = min(examples, obj.num_examples)
    first = next(model.parameters())
    with torch.no_grad():
        k = int(model(obj.images[:1].to(first.device, first.dtype)).reshape(-1).numel())
    projection = None
    if n * k * obj.dim > NTK_MAX_ENTRIES:
        gen = torch.Generator().manual_seed(seed)
        projection = torch.randn(k, generator=gen, dtype=torch.float64)
        projection /= projection.norm()
    layout = {"examples": n, "outputs": k if projection is None else 1, "parameters": obj.dim,
              "rows": "every output" if projection is None else "one random unit direction of the outputs"}
    return ntk(obj, chunk=8, projection=projection, examples=n), layout


def measure_mechanism(run_dir, settings: AnalysisSettings, examples: int, runtime: Runtime | None = None) -> dict:
    """The mechanism of one run at every checkpoint (see the module doc), written to analysis/mechanism.json.

    ``examples``: points of the NTK (0: no kernel). Returns the stored record; an up-to-date
    file (same key) is read back instead of recomputed.
    """
    a = Analysis(run_dir, settings, runtime or Runtime(progress=False, echo=lambda *_: None))
    epochs = sorted(a.source.checkpoints)
    key = {"checkpoints": [a.checkpoint_name(e) for e in epochs], "examples": examples, "params": settings.params,
           "subset": settings.subset, "seed": settings.seed}
    path = mechanism_path(run_dir)
    if path.is_file():
        stored = read_json(path)
        if isinstance(stored, dict) and stored.get("key") == key:
            return stored
    idx = a.train_idx
    inputs = normalize(a.source.images[idx], a.source.mean, a.source.std, torch.float32)
    model0 = a.model_at(epochs[0], idx)[0]
    record = {"key": key, "epoch": epochs, "flips": {}, "movement": {}, "ntk_drift": [], "ntk_min_eigenvalue": [],
              "ntk_epochs": sorted({epochs[0], epochs[-1]}) if examples else []}
    kernel0 = None
    for e in epochs:
        model = model0 if e == epochs[0] else a.model_at(e, idx)[0]
        for layer, frac in activation_flips(model0, model, inputs).items():
            record["flips"].setdefault(layer, []).append(frac)
        for name, move in spectral_movement(model0, model).items():
            row = record["movement"].setdefault(name, {"absolute": [], "initial": [], "relative": []})
            for field in row:
                row[field].append(getattr(move, field))
        if examples and e in (epochs[0], epochs[-1]):  # the kernel's drift and λ_min are read at the ends only
            obj = a.objective(model, bn="frozen", indices=idx)
            kernel, record["ntk_layout"] = _kernel(obj, model, examples, settings.seed)
            kernel0 = kernel if kernel0 is None else kernel0
            record["ntk_drift"].append(ntk_drift(kernel, kernel0))
            record["ntk_min_eigenvalue"].append(ntk_min_eigenvalue(kernel))
    atomic_write_json(record, path)
    return record


def mechanism_summary(record: dict) -> dict:
    """The per-cell numbers a sweep fits against width, at the last checkpoint: the largest flip
    fraction over activation layers, the largest relative spectral movement over hidden layers,
    the NTK drift, and λ_min(K_0) (and λ_min(K_T))."""
    nan = float("nan")
    flips = [v[-1] for v in record.get("flips", {}).values()]
    moves = [v["relative"][-1] for v in record.get("movement", {}).values()]
    drift, lam = record.get("ntk_drift") or [], record.get("ntk_min_eigenvalue") or []
    return {"activation_flips": max(flips, default=nan), "spectral_movement": max(moves, default=nan),
            "ntk_drift_mechanism": drift[-1] if drift else nan,
            "ntk_min_eigenvalue": lam[0] if lam else nan, "ntk_min_eigenvalue_final": lam[-1] if lam else nan}


def mechanism_paths(record: dict) -> dict[str, list[float]]:
    """Along training: the largest flip fraction and relative movement at every checkpoint."""
    epochs = record.get("epoch", [])
    flips = record.get("flips", {}).values()
    moves = [v["relative"] for v in record.get("movement", {}).values()]
    return {"epoch": list(epochs),
            "activation_flips": [max(v[i] for v in flips) if flips else float("nan") for i in range(len(epochs))],
            "spectral_movement": [max(v[i] for v in moves) if moves else float("nan") for i in range(len(epochs))]}
