"""The over-parameterization sweep: does the geometry become 'almost convex' as the network widens?

Each cell (depth × width × seed) trains one network to a common target training loss, is
analyzed (gradient dominance, probes, the trajectory and init → final interpolation along the
way; curvature at the end), and gives one value per quantity. Every quantity is then drawn
against width on log-log axes, with a fitted slope per depth and seed, and judged against the
direction the theory (Allen-Zhu, Li & Song 2019) predicts for wider networks:

========================  =============================================  ===========
quantity                  what it is                                     theory says
========================  =============================================  ===========
c                         min ‖∇F‖²/F along training (dominance)          increases
a_over_sqrt_F             max a/√F of the probes (non-smooth part)        decreases
lambda_ratio              |λ_min/λ_max| at the end of training            decreases
travelled                 ‖θ_T − θ_0‖/‖θ_0‖                               decreases
ntk_drift                 ‖K_T − K_0‖_F/‖K_0‖_F                           decreases
interpolation_bump        largest bump of init → final / F(init)          decreases
steps                     SGD steps to the target loss                    not increase
========================  =============================================  ===========

A slope agrees when its sign is the predicted one for every seed, disagrees when it is the
opposite for every seed, and is inconclusive otherwise. Across depths, the gradient norm at
initialization is fitted as a power and as an exponential of the depth (polynomial is what
the theory allows). Every cell runs, resumes and is checked against its stored settings by
``cells.run_cell``, as ``reproduce``'s are.
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
from .sweep_report import write_sweep_report
from .train import TrainConfig

QUANTITIES = {  # name: (label, predicted direction)
    "c": ("c = min ‖∇F‖²/F along training", "increases"),
    "a_over_sqrt_F": ("max a/√F (semi-smoothness probes)", "decreases"),
    "lambda_ratio": ("|λ_min/λ_max| at the end of training", "decreases"),
    "travelled": ("‖θ_T − θ_0‖/‖θ_0‖", "decreases"),
    "ntk_drift": ("NTK drift ‖K_T − K_0‖_F/‖K_0‖_F", "decreases"),
    "interpolation_bump": ("largest bump init → final / F(init)", "decreases"),
    "steps": ("SGD steps to the target loss", "does not increase"),
}
FLAT_SLOPE = 0.1  # |slope| below this on log-log axes counts as flat (for 'does not increase')


@dataclass
class SweepConfig:
    """One sweep: the architecture family, the grid of depths × widths × seeds, training and analysis."""

    arch: str                            # resnetD or mlpL[_dD]; --depths replaces D or L
    dataset: str
    widths: list[int]
    depths: list[int] | None = None      # None: the depth of ``arch``
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    target_loss: float = 0.01            # every cell trains until its epoch training loss is at most this
    max_epochs: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    batch_size: int = 128
    weight_decay: float = 0.0            # none: the theorem has no regularizer, and targets stay comparable
    train_subset: int | None = None
    test_subset: int | None = 256
    loss: str = "cross_entropy"
    train_params: str = "all"
    augment: bool = False
    checkpoints: int = 6                 # evenly spaced checkpoints along max_epochs (plus 0 and the stop)
    track_every: int = 0
    analysis: AnalysisSettings = field(default_factory=lambda: AnalysisSettings(
        measurements=["dominance", "probes", "trajectory", "interpolation"], subset=64, test_subset=64,
        probe_gaussian=1, probe_filter=0, probe_steps=6, interpolation_points=11,
        interpolation_pairs="init-final", curvature_subset=64, curvature_max_matvecs=40, curvature_tol=1e-3,
        ntk_examples=32))

    def cells(self) -> list[tuple[str, int, int, int]]:
        """(architecture, depth, width, seed) of every cell, depth-major."""
        out = []
        for depth in self.depths or [None]:
            arch = arch_at_depth(self.arch, depth)
            for width in self.widths:
                for seed in self.seeds:
                    out.append((arch, _depth_of(arch), width, seed))
        return out

    def train_config(self, arch: str, width: int, seed: int) -> TrainConfig:
        save_at = sorted({0} | {max(1, round(self.max_epochs * (k + 1) / self.checkpoints))
                                for k in range(self.checkpoints)})
        return TrainConfig(arch=arch, dataset=self.dataset, width=width, epochs=self.max_epochs, lr=self.lr,
                           momentum=self.momentum, milestones=[], weight_decay=self.weight_decay,
                           batch_size=self.batch_size, seed=seed, train_subset=self.train_subset,
                           test_subset=self.test_subset, augment=self.augment, train_params=self.train_params,
                           save_at=save_at, track_every=self.track_every, loss=self.loss,
                           stop_at_loss=self.target_loss)


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


def cell_folder(arch: str, width: int, seed: int) -> str:
    return f"{arch}_w{width}_s{seed}"


# ---------------------------------------------------------------------------------------------- presets
def _theorem() -> SweepConfig:
    """The theorem's own setting: bias-free ReLU MLPs (paper initialization) trained in their hidden
    layers by full-batch gradient descent on the ℓ2 loss, on 64 unit vectors in R^16 at least δ apart."""
    return SweepConfig(arch="mlp2_d16", dataset="synthetic:separated?n=64&d=16&delta=0.5&classes=2&seed=0",
                       widths=[1, 2, 4, 8], depths=[1, 2, 3], seeds=[0, 1], target_loss=0.02, max_epochs=1500,
                       lr=0.05, momentum=0.0, batch_size=64, test_subset=64, loss="mse", train_params="hidden",
                       checkpoints=6, analysis=AnalysisSettings(
                           measurements=["dominance", "probes", "trajectory", "interpolation"], subset=64,
                           test_subset=64, params="hidden", probe_gaussian=1, probe_filter=0, probe_steps=6,
                           interpolation_points=11, interpolation_pairs="init-final", curvature_max_matvecs=60,
                           curvature_tol=1e-4, ntk_examples=64))


def _resnet20() -> SweepConfig:
    """ResNet-20 at widths 1, 2, 4 fitted to a common cross-entropy on 64 balanced CIFAR-10 images
    (CPU-sized: width 4 has 16× the work of width 1)."""
    return SweepConfig(arch="resnet20", dataset="folder:cifar10-jpeg", widths=[1, 2, 4], seeds=[0, 1],
                       target_loss=0.05, max_epochs=60, lr=0.05, momentum=0.9, batch_size=32, train_subset=64,
                       test_subset=128, checkpoints=3, analysis=AnalysisSettings(
                           measurements=["dominance", "probes", "trajectory", "interpolation"], subset=64,
                           test_subset=128, probe_gaussian=1, probe_filter=0, probe_steps=5, interpolation_points=9,
                           interpolation_pairs="init-final", curvature_subset=32, curvature_max_matvecs=30,
                           curvature_tol=1e-3, ntk_examples=16))


def _smoke() -> SweepConfig:
    """A seconds-long sweep for the tests."""
    return SweepConfig(arch="mlp1_d8", dataset="synthetic:separated?n=16&d=8&delta=0.5&classes=2&seed=0",
                       widths=[1, 2], depths=[1, 2], seeds=[0, 1], target_loss=0.05, max_epochs=60, lr=0.1,
                       momentum=0.0, batch_size=16, test_subset=16, loss="mse", train_params="hidden",
                       checkpoints=3, analysis=AnalysisSettings(
                           measurements=["dominance", "probes", "trajectory", "interpolation"], subset=16,
                           test_subset=16, params="hidden", probe_gaussian=1, probe_filter=0, probe_steps=4,
                           interpolation_points=5, interpolation_pairs="init-final", curvature_max_matvecs=30,
                           ntk_examples=16))


SWEEP_PRESETS = {"theorem": _theorem, "resnet20": _resnet20, "smoke": _smoke}


def sweep_preset(name: str) -> SweepConfig:
    if name not in SWEEP_PRESETS:
        raise LandscapeError(f"unknown sweep preset {name!r}: use {', '.join(SWEEP_PRESETS)}")
    return SWEEP_PRESETS[name]()


# ---------------------------------------------------------------------------------------------- running
def sweep_cell_plan(config: SweepConfig, arch: str, width: int, seed: int, out: Path) -> CellPlan:
    """One cell of the sweep: trained to the common target, analyzed with the sweep's settings at every
    checkpoint, and its curvature at the last one."""
    settings = dataclasses.replace(config.analysis, seed=seed)

    def analyses(run: RunDir) -> list[AnalysisSettings]:
        final = max(run.checkpoint_epochs())
        return [settings, dataclasses.replace(settings, measurements=["curvature"], epochs=[final])]

    name = cell_folder(arch, width, seed)
    return CellPlan(name, out / name, config.train_config(arch, width, seed), analyses)


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


def run_sweep(config: SweepConfig, out: str | Path, runtime: Runtime | None = None) -> dict:
    """Train and analyze every cell into ``out``/<cell> through ``cells.run_cell`` (resuming), then write
    sweep.json, the figures and the report. Returns the summary (see ``summarize``).

    A folder holding another sweep, or a cell folder holding a run of other settings, is refused
    before anything is written (``check_sweep_folder``, ``cells.check_cell``).
    """
    from tqdm import tqdm

    runtime = runtime or Runtime()
    out = Path(out)
    plans = [sweep_cell_plan(config, arch, width, seed, out) for arch, _, width, seed in config.cells()]
    check_sweep_folder(config, out)
    for plan in plans:
        check_cell(plan)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json({"sweep": dataclasses.asdict(config)}, out / "sweep_config.json")
    with tqdm(total=len(plans), desc="sweep", unit="cell", disable=not runtime.progress, dynamic_ncols=True) as bar:
        for plan in plans:
            times = run_cell(plan, runtime.quiet())
            record_timings(out / "timings.json", plan.name, times)
            bar.update(1)
            bar.set_postfix_str(plan.name)
            trained = f"trained in {times['train_s']:.0f} s" if "train_s" in times else "already trained"
            runtime.echo(f"{plan.name}: {trained}, analyzed in {times['analysis_s']:.0f} s")
    summary = summarize(config, out)
    atomic_write_json(summary, out / "sweep.json")
    write_sweep_report(out, summary)
    return summary


# ---------------------------------------------------------------------------------------------- numbers
def cell_values(run_dir: Path) -> dict:
    """The sweep's quantities for one analyzed cell, read from its result files (NaN when absent)."""
    from .readers import load_curvature, load_dominance, load_log, read_config
    from .verdicts import run_verdicts

    run = RunDir(run_dir)
    verdicts = run_verdicts(run)
    numbers = {c.id: c.numbers for c in verdicts.claims}
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
    provenance = config.get("data", {}).get("provenance") or {}
    lemma = None
    if provenance.get("delta") and dominance:
        from .models import MLP_BASE_WIDTH
        from .theory import dominance_against_lemma

        train = config.get("train") or {}
        m = MLP_BASE_WIDTH * int(train.get("width", 1)) if str(train.get("arch", "")).startswith("mlp") else None
        comparison = dominance_against_lemma([p["F"] for p in dominance], [p["grad_sq_hidden"] for p in dominance],
                                             int(provenance["n"]), float(provenance["delta"]), m,
                                             int(config.get("data", {}).get("num_classes", 1)))
        lemma = dataclasses.asdict(comparison)
    return {
        "c": numbers.get("gradient_dominance", {}).get("c", float("nan")),
        "a_over_sqrt_F": numbers.get("semi_smoothness", {}).get("max_a_over_sqrt_F", float("nan")),
        "lambda_ratio": _negative_curvature_ratio(final_curv),
        "travelled": star.get("travelled", {}).get("mean", float("nan")),
        "ntk_drift": star.get("ntk_drift", {}).get("mean", float("nan")) if star.get("ntk_drift", {}).get("n") else float("nan"),
        "interpolation_bump": bump,
        "steps": float(reached[0]["step"]) if reached else float("nan"),
        "reached_target": bool(reached),
        "final_train_loss": float(log[-1]["train_loss"]) if log else float("nan"),
        "grad_norm_init": math.sqrt(init["grad_sq"]) if init else float("nan"),
        "F_init": init["F"] if init else float("nan"),
        "star_holds_fraction": star.get("holds_fraction", float("nan")),
        "parameters": (init or {}).get("context", {}).get("num_params"),
        "provenance": provenance or None,
        "lemma": lemma,
    }


def _negative_curvature_ratio(curv: dict | None) -> float:
    """|λ_min|/λ_max, with a λ_min within its residual bound of zero (or positive) counted as 0."""
    if not curv or not curv["top"] > 0:
        return float("nan")
    lam, bound = curv["most_negative"], curv["most_negative_residual"]
    resolved = lam < 0 and (not math.isfinite(bound) or -lam > bound)
    return -lam / curv["top"] if resolved else 0.0


def fit_slope(widths, values) -> float:
    """Least-squares slope of log(value) on log(width) over the positive finite values (NaN below two)."""
    w, v = np.asarray(widths, float), np.asarray(values, float)
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 2 or len(np.unique(w[ok])) < 2:
        return float("nan")
    return float(np.polyfit(np.log(w[ok]), np.log(v[ok]), 1)[0])


def fit_means(widths, values) -> dict:
    """The seeds' mean at each width and the log-log least-squares line through the means (what the
    sweep's figures draw): widths, means, slope and intercept (NaN where undefined)."""
    w, v = np.asarray(widths, float), np.asarray(values, float)
    uniq = np.array(sorted(set(w.tolist())), float)
    means = np.array([np.nanmean(v[w == x]) if np.isfinite(v[w == x]).any() else np.nan for x in uniq])
    slope = fit_slope(uniq, means)
    ok = np.isfinite(means) & (means > 0)
    intercept = float(np.mean(np.log(means[ok]) - slope * np.log(uniq[ok]))) if math.isfinite(slope) else math.nan
    return {"widths": uniq.tolist(), "means": means.tolist(), "slope": slope, "intercept": intercept}


def judge(direction: str, slopes: list[float], all_zero: bool = False) -> str:
    """'agrees', 'disagrees' or 'inconclusive' for per-seed slopes against the predicted direction.

    A quantity that is 0 at every width and seed (no bump, no resolved negative curvature) is as
    small as it can be: it agrees with 'decreases' and 'does not increase'.
    """
    if all_zero:
        return "disagrees" if direction == "increases" else "agrees"
    s = np.asarray([x for x in slopes if np.isfinite(x)], float)
    if len(s) == 0:
        return "inconclusive"
    if direction == "increases":
        good, bad = s > 0, s < 0
    elif direction == "decreases":
        good, bad = s < 0, s > 0
    else:  # does not increase
        good, bad = s <= FLAT_SLOPE, s > FLAT_SLOPE
    return "agrees" if good.all() else "disagrees" if bad.all() else "inconclusive"


def summarize(config: SweepConfig, out: Path) -> dict:
    """Per cell values; per quantity and depth, the per-seed slopes against width and the judgement;
    across depths, the polynomial-vs-exponential fit of the gradient norm at initialization."""
    from .theory import depth_scaling_fit

    rows = []
    for arch, depth, width, seed in config.cells():
        folder = out / cell_folder(arch, width, seed)
        if (folder / "analysis").is_dir():
            rows.append({"arch": arch, "depth": depth, "width": width, "seed": seed, "folder": folder.name,
                         **cell_values(folder)})
    quantities = {}
    for q, (label, direction) in QUANTITIES.items():
        per_depth = {}
        for depth in sorted({r["depth"] for r in rows}):
            slopes = {}
            for seed in config.seeds:
                sel = [r for r in rows if r["depth"] == depth and r["seed"] == seed]
                slopes[seed] = fit_slope([r["width"] for r in sel], [r[q] for r in sel])
            finite = [s for s in slopes.values() if np.isfinite(s)]
            at_depth = [r for r in rows if r["depth"] == depth]
            values = np.array([r[q] for r in at_depth], float)
            all_zero = bool(len(values)) and bool(np.all(values == 0))
            per_depth[str(depth)] = {"slopes": slopes, "mean_slope": float(np.mean(finite)) if finite else float("nan"),
                                     "min_slope": min(finite, default=float("nan")),
                                     "max_slope": max(finite, default=float("nan")),
                                     "all_zero": all_zero,
                                     "means": fit_means([r["width"] for r in at_depth], values),
                                     "judgement": judge(direction, list(slopes.values()), all_zero)}
        judgements = [d["judgement"] for d in per_depth.values()]
        overall = ("agrees" if judgements and all(j == "agrees" for j in judgements) else
                   "disagrees" if judgements and all(j == "disagrees" for j in judgements) else "inconclusive")
        quantities[q] = {"label": label, "predicted": direction, "per_depth": per_depth, "judgement": overall}
    depth_fits = {}
    depths = sorted({r["depth"] for r in rows})
    if len(depths) >= 3:
        for width in config.widths:
            g = [float(np.nanmean([r["grad_norm_init"] for r in rows if r["depth"] == d and r["width"] == width]))
                 for d in depths]
            try:
                fit = depth_scaling_fit(depths, g)
                depth_fits[str(width)] = {"depths": depths, "grad_norm_init": g, "better": fit.better,
                                          "power": fit.power, "rate": fit.rate,
                                          "polynomial_rms": fit.polynomial.rms, "exponential_rms": fit.exponential.rms}
            except LandscapeError as exc:
                depth_fits[str(width)] = {"error": str(exc)}
    return {"config": dataclasses.asdict(config), "cells": rows, "quantities": quantities, "depth_fits": depth_fits,
            "flat_slope": FLAT_SLOPE}
