"""The over-parameterization sweep: does the geometry become 'almost convex' as the network widens?

Each cell (depth × width × sample size × seed) trains one network to a common target training
loss, saving log-spaced checkpoints (``log_epochs``) and a dense F/‖∇F‖² track; it is analyzed at
every checkpoint (gradient dominance, semi-smoothness probes, the trajectory and the init → final
interpolation; curvature at the end) and its mechanism measured along training (mechanism.py:
ReLU sign flips, spectral movement, NTK drift and λ_min). ``cell_values`` reads one value per
quantity and the cell's path; ``sweep_fits.fit_summary`` fits every quantity against width with
``scaling.fit_slope`` and judges it against ``scaling.predictions`` (and the sample-size and depth
axes, and the values at a common loss level); sweep_report.py draws and writes it.

The learning rate is ``lr`` at every width, or η ∝ 1/width from ``lr`` at the smallest width
(``lr_scaling='theorem'``, ``scaling.theorem_lr``). Every cell runs, resumes and is checked
against its stored settings by ``cells.run_cell``, as ``reproduce``'s are.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cells import CellPlan, check_cell, differences, record_timings, refuse_other_settings, run_cell
from .errors import LandscapeError
from .results import RunDir, atomic_write_json, read_json
from .runtime import Runtime
from .settings import AnalysisSettings
from .scaling import theorem_lr
from .sweep_fits import compare_sweeps, fit_summary
from .sweep_report import write_sweep_report
from .train import TrainConfig


@dataclass
class SweepConfig:
    """One sweep: the architecture family, the grid of depths × widths × sample sizes × seeds, training and analysis."""

    arch: str                            # resnetD or mlpL[_dD]; --depths replaces D or L
    dataset: str
    widths: list[float]                  # width multipliers (an mlp's m = MLP_BASE_WIDTH × width)
    depths: list[int] | None = None      # None: the depth of ``arch``
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    sizes: list[int] | None = None       # None: the dataset's own n; else the sample-size axis (synthetic n=...)
    target_loss: float = 0.01            # every cell trains until its epoch training loss is at most this
    max_epochs: int = 100
    lr: float = 0.1                      # at the smallest width (see lr_scaling)
    lr_scaling: str = "constant"         # constant | theorem (η ∝ 1/width, scaling.theorem_lr)
    momentum: float = 0.9
    batch_size: int = 128
    full_batch: bool = False             # batch = the cell's whole training set (gradient descent)
    weight_decay: float = 0.0            # none: the theorem has no regularizer, and targets stay comparable
    train_subset: int | None = None
    test_subset: int | None = 256
    loss: str = "cross_entropy"
    train_params: str = "all"
    augment: bool = False
    checkpoints: int = 12                # log-spaced checkpoint epochs over 1..max_epochs (plus 0 and the stop)
    track_every: int = 1                 # the dense F/‖∇F‖² track, every this many steps (0: none)
    mechanism_examples: int = 32         # NTK points of the mechanism (0: no kernel; see mechanism.py)
    final_curvature: bool = True         # the Hessian's extreme eigenvalues at the last checkpoint
    analysis: AnalysisSettings = field(default_factory=lambda: AnalysisSettings(
        measurements=["dominance", "probes", "trajectory", "interpolation"], subset=64, test_subset=64,
        probe_gaussian=1, probe_filter=0, probe_steps=6, interpolation_points=11,
        interpolation_pairs="init-final", curvature_subset=64, curvature_max_matvecs=40, curvature_tol=1e-3,
        ntk_examples=0))

    def cells(self) -> list[tuple[str, int, float, int, int | None]]:
        """(architecture, depth, width, seed, sample size or None) of every cell, depth-major."""
        out = []
        for depth in self.depths or [None]:
            arch = arch_at_depth(self.arch, depth)
            for n in self.sizes or [None]:
                for width in self.widths:
                    for seed in self.seeds:
                        out.append((arch, _depth_of(arch), width, seed, n))
        return out

    def lr_at(self, width: float) -> float:
        """The step size of a cell: ``lr`` at every width, or η ∝ 1/width from ``lr`` at the smallest width."""
        if self.lr_scaling == "theorem":
            return theorem_lr(self.lr, width, min(self.widths))
        if self.lr_scaling != "constant":
            raise LandscapeError(f"unknown --lr-scaling {self.lr_scaling!r}: use constant or theorem")
        return self.lr

    def dataset_at(self, n: int | None) -> str:
        """The dataset with its sample size n replaced (synthetic specs only)."""
        if n is None:
            return self.dataset
        if not (self.dataset.startswith("synthetic:") and re.search(r"[?&]n=\d+", self.dataset)):
            raise LandscapeError(f"--sizes needs a synthetic dataset with n=..., not {self.dataset!r}")
        return re.sub(r"([?&])n=\d+", rf"\g<1>n={n}", self.dataset)

    def train_config(self, arch: str, width: float, seed: int, n: int | None = None) -> TrainConfig:
        batch = n if (self.full_batch and n) else self.batch_size
        if self.full_batch and not n:
            batch = self.train_subset or _dataset_n(self.dataset) or self.batch_size
        return TrainConfig(arch=arch, dataset=self.dataset_at(n), width=width, epochs=self.max_epochs,
                           lr=self.lr_at(width), momentum=self.momentum, milestones=[],
                           weight_decay=self.weight_decay, batch_size=batch, seed=seed,
                           train_subset=self.train_subset, augment=self.augment,
                           test_subset=min(self.test_subset, n) if (n and self.test_subset) else self.test_subset,
                           train_params=self.train_params, save_at=log_epochs(self.max_epochs, self.checkpoints),
                           track_every=self.track_every, loss=self.loss, stop_at_loss=self.target_loss)


def log_epochs(last: int, count: int) -> list[int]:
    """Epoch 0 and at least min(count, last) distinct epochs log-spaced over 1..last (rounded).

    A cell stops at the first epoch reaching the target loss (that epoch is saved too), so its
    checkpoints are the log-spaced ones before the stop: dense early, where F changes fastest.
    """
    k = count
    while True:
        epochs = sorted({int(round(x)) for x in np.geomspace(1, last, max(k, 1))})
        if len(epochs) >= min(count, last) or k > 10 * count + last:
            return [0] + epochs
        k += 1


def _dataset_n(dataset: str) -> int | None:
    found = re.search(r"[?&]n=(\d+)", dataset) if dataset.startswith("synthetic:") else None
    return int(found.group(1)) if found else None


def arch_at_depth(arch: str, depth: int | None) -> str:
    """``arch`` with its depth replaced: resnet20 → resnet{depth}, mlp3_d16 → mlp{depth}_d16."""
    if depth is None:
        return arch
    if re.fullmatch(r"resnet\d+", arch):
        return f"resnet{depth}"
    if re.fullmatch(r"mlp\d+(_d\d+)?", arch):
        return re.sub(r"^mlp\d+", f"mlp{depth}", arch)
    raise LandscapeError(f"--depths applies to resnetD and mlpL architectures, not {arch!r}")


def _depth_of(arch: str) -> int:
    return int(re.match(r"(?:resnet|mlp)(\d+)", arch).group(1)) if re.match(r"(?:resnet|mlp)\d+", arch) else 0


def cell_folder(arch: str, width: float, seed: int, n: int | None = None) -> str:
    return f"{arch}_w{width:g}_s{seed}" + (f"_n{n}" if n is not None else "")


# ---------------------------------------------------------------------------------------------- presets
THEOREM_DATA = "synthetic:separated?n=64&d=16&delta=0.5&classes=2&seed=0"


def _theorem_analysis(measurements: list[str]) -> AnalysisSettings:
    return AnalysisSettings(measurements=measurements, subset=None, test_subset=64, params="hidden",
                            probe_gaussian=1, probe_filter=0, probe_steps=6, interpolation_points=11,
                            interpolation_pairs="init-final", curvature_subset=None, curvature_max_matvecs=60,
                            curvature_tol=1e-4, ntk_examples=0)


def _theorem() -> SweepConfig:
    """The theorem's own setting: bias-free ReLU MLPs with L = 2 hidden m×m layers (paper initialization)
    trained in their hidden layers by full-batch gradient descent on the ℓ2 loss, on 64 unit vectors in
    R^16 at least δ = 0.5 apart; m = 16 … 512 (6 widths, 1.5 decades) × 5 seeds, η ∝ 1/m (theorem_lr)
    from 0.2 at m = 16. Measured cost on the 2-core CPU: see README (16 min at one thread)."""
    return SweepConfig(arch="mlp2_d16", dataset=THEOREM_DATA, widths=[0.25, 0.5, 1, 2, 4, 8],
                       seeds=[0, 1, 2, 3, 4], target_loss=0.02, max_epochs=2000, lr=0.2, lr_scaling="theorem",
                       momentum=0.0, batch_size=64, full_batch=True, test_subset=64, loss="mse",
                       train_params="hidden", checkpoints=22, track_every=1, mechanism_examples=32,
                       analysis=_theorem_analysis(["dominance", "probes", "trajectory", "interpolation"]))


def _theorem_n() -> SweepConfig:
    """The sample-size axis: n = 16 … 256 δ-separated points (δ = 0.5, d = 16) at one width (m = 128),
    L = 2, full-batch gradient descent at a constant step η = 0.1, 3 seeds (c against the lemma's δ/n²;
    steps to the target against n)."""
    return dataclasses.replace(_theorem(), widths=[2], seeds=[0, 1, 2], sizes=[16, 32, 64, 128, 256],
                               lr=0.1, lr_scaling="constant", max_epochs=3000, track_every=0, mechanism_examples=0,
                               analysis=_theorem_analysis(["dominance", "trajectory"]), final_curvature=False)


def _theorem_depth() -> SweepConfig:
    """The depth axis: L = 1, 2, 4, 6, 8 hidden layers at m = 64 on the theorem's 64 points, constant
    step, 3 seeds (‖∇F(θ_0)‖ and steps to the target against L: polynomial or exponential)."""
    return dataclasses.replace(_theorem(), widths=[1], depths=[1, 2, 4, 6, 8], seeds=[0, 1, 2], lr=0.05,
                               lr_scaling="constant", max_epochs=3000, track_every=0, mechanism_examples=0,
                               analysis=_theorem_analysis(["dominance", "trajectory"]), final_curvature=False)


def _resnet20() -> SweepConfig:
    """ResNet-20 at widths ¼, ½, 1, 2 (4 … 32 base channels) × 3 seeds fitted to a common cross-entropy
    on 64 balanced CIFAR-10 images (CPU-sized)."""
    return SweepConfig(arch="resnet20", dataset="folder:cifar10-jpeg", widths=[0.25, 0.5, 1, 2], seeds=[0, 1, 2],
                       target_loss=0.05, max_epochs=60, lr=0.05, momentum=0.9, batch_size=32, train_subset=64,
                       test_subset=128, checkpoints=20, track_every=2, mechanism_examples=16,
                       analysis=AnalysisSettings(
                           measurements=["dominance", "probes", "trajectory", "interpolation"], subset=64,
                           test_subset=128, probe_gaussian=1, probe_filter=0, probe_steps=5, interpolation_points=9,
                           interpolation_pairs="init-final", curvature_subset=32, curvature_max_matvecs=30,
                           curvature_tol=1e-3, ntk_examples=0))


def _smoke() -> SweepConfig:
    """A seconds-long sweep for the tests."""
    return SweepConfig(arch="mlp1_d8", dataset="synthetic:separated?n=16&d=8&delta=0.5&classes=2&seed=0",
                       widths=[1, 2], depths=[1, 2], seeds=[0, 1], target_loss=0.05, max_epochs=60, lr=0.1,
                       momentum=0.0, batch_size=16, test_subset=16, loss="mse", train_params="hidden",
                       checkpoints=10, track_every=1, mechanism_examples=8, analysis=AnalysisSettings(
                           measurements=["dominance", "probes", "trajectory", "interpolation"], subset=16,
                           test_subset=16, params="hidden", probe_gaussian=1, probe_filter=0, probe_steps=4,
                           interpolation_points=5, interpolation_pairs="init-final", curvature_max_matvecs=30,
                           ntk_examples=0))


SWEEP_PRESETS = {"theorem": _theorem, "theorem-n": _theorem_n, "theorem-depth": _theorem_depth,
                 "resnet20": _resnet20, "smoke": _smoke}


def sweep_preset(name: str) -> SweepConfig:
    if name not in SWEEP_PRESETS:
        raise LandscapeError(f"unknown sweep preset {name!r}: use {', '.join(SWEEP_PRESETS)}")
    return SWEEP_PRESETS[name]()


# ---------------------------------------------------------------------------------------------- running
def sweep_cell_plan(config: SweepConfig, arch: str, width: float, seed: int, out: Path,
                    n: int | None = None) -> CellPlan:
    """One cell of the sweep: trained to the common target, analyzed with the sweep's settings at every
    checkpoint, and (``final_curvature``) its curvature at the last one."""
    settings = dataclasses.replace(config.analysis, seed=seed)
    if n is not None and settings.test_subset:  # the sample-size axis: a synthetic test set has n points too
        settings = dataclasses.replace(settings, test_subset=min(settings.test_subset, n))

    def analyses(run: RunDir) -> list[AnalysisSettings]:
        final = max(run.checkpoint_epochs())
        curvature = [dataclasses.replace(settings, measurements=["curvature"], epochs=[final])]
        return [settings] + (curvature if config.final_curvature else [])

    name = cell_folder(arch, width, seed, n)
    return CellPlan(name, out / name, config.train_config(arch, width, seed, n), analyses)


def stored_sweep_config(path: Path) -> dict:
    """The sweep a sweep_config.json describes, as ``dataclasses.asdict`` gives it (defaults for the
    settings it predates); a one-line error when it describes none."""
    stored = read_json(path)
    sweep = stored.get("sweep") if isinstance(stored, dict) else None
    try:
        fields = {f.name for f in dataclasses.fields(SweepConfig)}
        analysis = {f.name for f in dataclasses.fields(AnalysisSettings)}
        given = {k: v for k, v in sweep.items() if k in fields}
        given["analysis"] = AnalysisSettings(**{k: v for k, v in (sweep.get("analysis") or {}).items()
                                                if k in analysis})
        return dataclasses.asdict(SweepConfig(**given))
    except (AttributeError, TypeError):
        raise LandscapeError(f"{path} is not a sweep configuration; choose another --out") from None


def check_sweep_folder(config: SweepConfig, out: Path) -> None:
    """Refuse (one line) a folder whose sweep_config.json describes another sweep."""
    path = out / "sweep_config.json"
    if path.is_file():
        refuse_other_settings(out, "a sweep", differences(stored_sweep_config(path), dataclasses.asdict(config)))


def run_sweep(config: SweepConfig, out: str | Path, runtime: Runtime | None = None,
              compare: str | Path | None = None) -> dict:
    """Train and analyze every cell into ``out``/<cell> through ``cells.run_cell`` (resuming), measure its
    mechanism (mechanism.py), then write sweep.json, the figures and the report. Returns the summary
    (see ``summarize``).

    A folder holding another sweep, or a cell folder holding a run of other settings, is refused
    before anything is written (``check_sweep_folder``, ``cells.check_cell``). ``compare``: another
    sweep's folder (e.g. the same grid at the other ``lr_scaling``): the report lists which verdicts
    change against it.
    """
    import time

    from tqdm import tqdm

    from .mechanism import measure_mechanism

    runtime = runtime or Runtime()
    out = Path(out)
    other = _other_sweep(compare)
    config.lr_at(min(config.widths))  # an unknown lr scaling is refused before anything is written
    plans = [sweep_cell_plan(config, arch, width, seed, out, n) for arch, _, width, seed, n in config.cells()]
    check_sweep_folder(config, out)
    for plan in plans:
        check_cell(plan)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json({"sweep": dataclasses.asdict(config)}, out / "sweep_config.json")
    with tqdm(total=len(plans), desc="sweep", unit="cell", disable=not runtime.progress, dynamic_ncols=True) as bar:
        for plan in plans:
            times = run_cell(plan, runtime.quiet())
            started = time.perf_counter()
            measure_mechanism(plan.run_dir, dataclasses.replace(config.analysis, seed=plan.train.seed),
                              config.mechanism_examples, runtime.quiet())
            mechanism_s = time.perf_counter() - started
            times["analysis_s"] += mechanism_s  # the mechanism is part of the cell's analysis stage
            record_timings(out / "timings.json", plan.name, times)
            bar.update(1)
            bar.set_postfix_str(plan.name)
            trained = f"trained in {times['train_s']:.0f} s" if "train_s" in times else "already trained"
            runtime.echo(f"{plan.name}: {trained}, analyzed in {times['analysis_s']:.0f} s "
                         f"(mechanism {mechanism_s:.0f} s)")
    summary = summarize(config, out)
    if other is not None:
        summary["compare"] = compare_sweeps(summary, other, str(compare))
    atomic_write_json(summary, out / "sweep.json")
    write_sweep_report(out, summary)
    return summary


def _other_sweep(folder) -> dict | None:
    """The sweep.json of ``folder`` (None without one asked); a one-line error when it has none."""
    return None if folder is None else read_sweep_summary(folder, "--compare ")


def read_sweep_summary(folder, what: str = "") -> dict:
    """The summary a sweep wrote to ``folder``/sweep.json; a one-line error when there is none."""
    path = Path(folder) / "sweep.json"
    if not path.is_file():
        raise LandscapeError(f"{what}{folder}: no sweep.json there (run that sweep first)")
    summary = read_json(path)
    if not isinstance(summary, dict) or not isinstance(summary.get("quantities"), dict):
        raise LandscapeError(f"{what}{folder}: {path} is not a sweep summary")
    return summary


# ---------------------------------------------------------------------------------------------- numbers
def cell_values(run_dir: Path) -> dict:
    """The sweep's quantities for one analyzed cell, read from its result files (NaN when absent)."""
    from .readers import load_curvature, load_dominance, load_log, read_config
    from .verdicts import run_verdicts

    run = RunDir(run_dir)
    numbers = {c.id: c.numbers for c in run_verdicts(run).claims}
    log = load_log(run)
    reached = [r for r in log if r.get("reached_target")]
    curvature = load_curvature(run)
    final_curv = max(curvature, key=lambda c: c["epoch"]) if curvature else None
    dominance = load_dominance(run)
    init = next((p for p in dominance if p["epoch"] == 0), None)
    interp = numbers.get("interpolation", {})
    bump = interp.get("largest_bump", float("nan")) / interp["F_init"] if interp.get("F_init") else float("nan")
    star = numbers.get("star_convexity", {})
    config = read_config(run)
    train = config.get("train") or {}
    provenance = config.get("data", {}).get("provenance") or {}
    mechanism = _mechanism(run)
    drift = star.get("ntk_drift", {}).get("mean", float("nan")) if star.get("ntk_drift", {}).get("n") else float("nan")
    return {
        "c": numbers.get("gradient_dominance", {}).get("c", float("nan")),
        "a_over_sqrt_F": numbers.get("semi_smoothness", {}).get("max_a_over_sqrt_F", float("nan")),
        "lambda_ratio": _negative_curvature_ratio(final_curv),
        "travelled": star.get("travelled", {}).get("mean", float("nan")),
        "ntk_drift": mechanism.pop("ntk_drift_mechanism", float("nan")) if mechanism else drift,
        "interpolation_bump": bump,
        "steps": float(reached[0]["step"]) if reached else float("nan"),
        **mechanism,
        "lr": train.get("lr"), "n": int(provenance["n"]) if provenance.get("n") else None,
        "reached_target": bool(reached),
        "final_train_loss": float(log[-1]["train_loss"]) if log else float("nan"),
        "grad_norm_init": math.sqrt(init["grad_sq"]) if init else float("nan"),
        "F_init": init["F"] if init else float("nan"),
        "star_holds_fraction": star.get("holds_fraction", float("nan")),
        "parameters": (init or {}).get("context", {}).get("num_params"),
        "provenance": provenance or None,
        "lemma": _lemma(config, dominance, provenance),
        "path": cell_path(run, dominance, train.get("train_params") == "hidden"),
    }


def _mechanism(run: RunDir) -> dict:
    """The mechanism's per-cell numbers (mechanism.mechanism_summary) when measured, else {}."""
    from .mechanism import mechanism_path, mechanism_summary

    path = mechanism_path(run.path)
    return mechanism_summary(read_json(path)) if path.is_file() else {}


def _lemma(config: dict, dominance: list[dict], provenance: dict) -> dict | None:
    """c against the gradient lemma's δ/n² (theory.dominance_against_lemma) for δ-separated data."""
    if not (provenance.get("delta") and dominance):
        return None
    from .models import MLP_BASE_WIDTH
    from .theory import dominance_against_lemma

    train = config.get("train") or {}
    m = round(MLP_BASE_WIDTH * float(train.get("width", 1))) if str(train.get("arch", "")).startswith("mlp") else None
    comparison = dominance_against_lemma([p["F"] for p in dominance], [p["grad_sq_hidden"] for p in dominance],
                                         int(provenance["n"]), float(provenance["delta"]), m,
                                         int(config.get("data", {}).get("num_classes", 1)))
    return dataclasses.asdict(comparison)


def cell_path(run: RunDir, dominance: list[dict], hidden: bool) -> dict:
    """The cell along training, per analyzed checkpoint (epoch, step, F, c_t = ‖∇F‖²/F over the trained
    parameters (``hidden``: the hidden layers), star-convexity toward θ_T, a/√F of the probes, the mechanism's largest flip fraction and
    relative movement, ‖θ_t − θ_0‖/‖θ_0‖), and the dense track (step, F, ‖∇F‖²) when training kept one."""
    from .mechanism import mechanism_path, mechanism_paths
    from .readers import load_log, load_probes, load_track, load_trajectory

    epochs = sorted({p["epoch"] for p in dominance})
    steps = {int(r["epoch"]): r["step"] for r in load_log(run)}
    dom = {p["epoch"]: p for p in dominance}
    nan = float("nan")
    path = {"epoch": epochs, "step": [float(steps.get(e, 0 if e == 0 else nan)) for e in epochs],
            "F": [dom[e]["F"] for e in epochs],
            "c": [dom[e]["ratio_hidden" if hidden else "ratio"] for e in epochs]}
    probes = {e: [p["a_over_sqrt_F"] if p.get("a_resolved") else p.get("a_resolution_over_sqrt_F", nan)
                  for p in load_probes(run, e)] for e in epochs}  # an unresolved kink: its bound, never 0
    path["a_over_sqrt_F"] = [max(probes[e], default=nan) for e in epochs]
    trajectory = load_trajectory(run)
    if trajectory:
        t = trajectory[0]
        at = {int(e): i for i, e in enumerate(t["epoch"])}
        star = {int(e): float(h) for e, h in zip(t["star_epoch"], t["star_holds"])}
        path["travelled"] = [float(t["travelled"][at[e]]) if e in at else nan for e in epochs]
        path["star_holds"] = [star.get(e, nan) for e in epochs]
    if mechanism_path(run.path).is_file():
        mech = mechanism_paths(read_json(mechanism_path(run.path)))
        index = {e: i for i, e in enumerate(mech["epoch"])}
        for k in ("activation_flips", "spectral_movement"):
            path[k] = [mech[k][index[e]] if e in index else nan for e in epochs]
    track = load_track(run) if run.track.is_file() else []
    if track:
        key = "grad_sq_hidden" if hidden else "grad_sq"
        path["track"] = {"step": [r["step"] for r in track], "F": [r["F"] for r in track],
                         "grad_sq": [r[key] for r in track]}
    return path


def _negative_curvature_ratio(curv: dict | None) -> float:
    """|λ_min|/λ_max, with a λ_min within its residual bound of zero (or positive) counted as 0."""
    if not curv or not curv["top"] > 0:
        return float("nan")
    lam, bound = curv["most_negative"], curv["most_negative_residual"]
    resolved = lam < 0 and (not math.isfinite(bound) or -lam > bound)
    return -lam / curv["top"] if resolved else 0.0


def summarize(config: SweepConfig, out: Path) -> dict:
    """Per cell values and paths; per quantity and group the slope against width (scaling.fit_slope)
    judged against scaling.predictions; the sample-size and depth axes; the common-loss comparison
    (sweep_fits.fit_summary)."""
    rows = []
    for arch, depth, width, seed, n in config.cells():
        folder = out / cell_folder(arch, width, seed, n)
        if (folder / "analysis").is_dir():
            values = cell_values(folder)
            values["n"] = n if n is not None else values.get("n")
            rows.append({"arch": arch, "depth": depth, "width": width, "seed": seed, "folder": folder.name,
                         **values})
    return fit_summary(dataclasses.asdict(config), rows)
