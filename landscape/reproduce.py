"""One-command reproduction: train, analyze, draw and report every cell of a preset.

Presets:

* ``paper``: VGG19-BN, ResNet-32, ResNet-110 x CIFAR-10, CIFAR-100, CIFAR-10 with 20 %
  noisy labels; the full recipe (164 epochs) and the analysis on the full training set (the
  Hessian on a balanced subset of 2,048): about 23 hours of one H100 (``reproduce --plan``).
  Meant for a GPU; any cell runs alone (``--only resnet32/cifar10``), and ``--shard i/k`` gives
  machine i of k its share of the cells (``shard_cells``) without any coordination.
* ``quick``: the same pipeline at CPU scale: ResNet-32 fitted exactly on a balanced 200 CIFAR-10
  images with a shortened schedule of the same shape; F is the loss over all of its training
  images; trained and analyzed with three seeds (the later two measure only what the verdicts need).
* ``smoke``: a tiny version of ``quick`` for the tests (under 2 min).

A preset trains every cell once per seed of ``Preset.seeds`` (cells 'resnet32/cifar10', 'resnet32/cifar10/seed1',
…); the combined report judges each claim across them (``report.across_seeds``). Every stage resumes: rerunning the command skips finished checkpoints and results (each cell runs
through ``cells.run_cell``; a cell folder holding a run of other settings is refused, not reused).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .cells import CellPlan, check_cell, record_timings, run_cell
from .data import missing_data
from .errors import LandscapeError
from .recipe import PRESET_HELP, PAPER_EPOCHS, PAPER_FIGURE_EPOCHS, PAPER_SAVE_AT, scaled_figure_epochs
from .results import RunDir
from .runtime import Runtime
from .settings import AnalysisSettings
from .train import TrainConfig


@dataclass
class Cell:
    arch: str
    dataset: str          # 'cifar10' or 'cifar100' (mapped to the user's data source)
    label_noise: float = 0.0
    width: float = 1      # channel multiplier (the tiny test presets use ¼)
    seed: int = 0         # training and direction seed; 0 keeps the unseeded name and folder

    @property
    def name(self) -> str:
        """'resnet32/cifar10', 'resnet32/cifar10/seed1' for seed 1 (its folder: resnet32_cifar10_seed1)."""
        noise = f"_noisy{round(self.label_noise * 100)}" if self.label_noise else ""
        width = f"_w{self.width:g}" if self.width != 1 else ""
        seed = f"/seed{self.seed}" if self.seed else ""
        return f"{self.arch}{width}/{self.dataset}{noise}{seed}"

    @property
    def folder(self) -> str:
        return self.name.replace("/", "_")


@dataclass
class Preset:
    cells: list[Cell]
    train: dict
    analysis: AnalysisSettings
    description: str
    figure_epochs: list[int] | None = None
    analysis_by_arch: dict[str, dict] = dataclasses.field(default_factory=dict)  # overrides per network
    train_by_arch: dict[str, dict] = dataclasses.field(default_factory=dict)
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])  # every cell is trained once per seed
    seed_measurements: list[str] | None = None  # what seeds after the first measure (None: the full list)

    def seeded_cells(self) -> list[Cell]:
        """Every base cell once per seed, seed-major within a base cell: what reproduce, --plan, --shard,
        timings and the combined report see."""
        return [dataclasses.replace(c, seed=s) for c in self.cells for s in self.seeds]

    def train_for(self, cell: Cell) -> dict:
        """The training settings of one cell: the preset's, with its network's overrides (the seed apart:
        ``cell.seed``)."""
        return {**self.train, **self.train_by_arch.get(cell.arch, {})}

    def analysis_for(self, cell: Cell) -> AnalysisSettings:
        """The analysis settings of one cell: the preset's, with its network's overrides, seeded by the cell's
        seed; a seed after the first measures only ``seed_measurements`` (what the verdicts need)."""
        settings = dataclasses.replace(self.analysis, **self.analysis_by_arch.get(cell.arch, {}), seed=cell.seed)
        if cell.seed != self.seeds[0] and self.seed_measurements is not None:
            settings.measurements = list(self.seed_measurements)
        return settings


PAPER_ARCHS = ("vgg19_bn", "resnet32", "resnet110")
PAPER_DATASETS = (("cifar10", 0.0), ("cifar100", 0.0), ("cifar10", 0.2))  # (dataset, label noise)


def paper_cells(width: float = 1) -> list[Cell]:
    """The paper's networks × datasets (CIFAR-10, CIFAR-100, CIFAR-10 with 20 % noisy labels)."""
    return [Cell(a, d, n, width) for a in PAPER_ARCHS for d, n in PAPER_DATASETS]


# The paper preset's Hessian: a balanced subset of 2,048 of the 50,000 training images (204–205 per class on
# CIFAR-10, 20–21 on CIFAR-100). Its products are 25 times cheaper than on all 50,000, which is what brings the
# whole run under a day of one GPU (`reproduce --preset paper --plan`). 2,048 keeps ≥ 20 images per class on
# CIFAR-100 and the products at batch sizes a GPU fills; whether the subset decides the eigenvalues is for the
# report's Hessian-subset check (eigenvalues on nested subsets; issue 21, not part of this preset).
PAPER_CURVATURE_SUBSET = 2048


def _paper() -> Preset:
    """The paper's nine cells, trained with the full recipe (164 epochs) and analyzed at the paper's sizes.

    F, ∇F, probes, surfaces and interpolations on all 50,000 training images (points evaluated several per
    pass, ``Objective.values``); 21×21 surfaces, 41-point interpolations over [-0.5, 1.5], 21 of them in
    [0, 1] (from initialization to the end and between consecutive checkpoints); the Hessian on ``PAPER_CURVATURE_SUBSET`` images, unsmoothed (σ = 0:
    smoothing multiplies every product by its samples; ask for it with ``analyze --curvature-sigma``).
    ``reproduce --preset paper --plan`` prints the estimated cost: under 24 hours of one H100.
    """
    cells = paper_cells()
    analysis = AnalysisSettings(
        measurements=["dominance", "probes", "curvature", "second_order", "surface", "interpolation"],
        epochs=sorted({*PAPER_SAVE_AT, PAPER_EPOCHS}), subset=None, test_subset=None, repeats=3,
        probe_gaussian=1, probe_filter=1, probe_steps=10, curvature_top=2, curvature_sigma=0.0,
        curvature_subset=PAPER_CURVATURE_SUBSET, curvature_max_matvecs=200, surface_points=21,
        interpolation_points=21, interpolation_pairs="init-final,consecutive", trace_samples=32)
    return Preset(cells, {"track_every": 100, "track_subset": 2048}, analysis,
                  f"the paper's networks and recipe on full data, the Hessian on {PAPER_CURVATURE_SUBSET:,} "
                  f"images (GPU)", list(PAPER_FIGURE_EPOCHS))


QUICK_EPOCHS = PAPER_EPOCHS  # 164: the paper's schedule and checkpoints as they are; 60 epochs left ResNet-32 at 52 % training accuracy on 200 images
QUICK_TRAIN_SUBSET = 100  # 10 a class: 200 took 28 min with these measurements, over the 20 the preset is for
QUICK_SEEDS = [0, 1, 2]
# What seeds 1 and 2 measure: every judged claim but the interpolation (the figures stay seed 0's).
QUICK_SEED_MEASUREMENTS = ["dominance", "probes", "curvature", "second_order", "trajectory"]


def _quick() -> Preset:
    """ResNet-32 fitted exactly on a balanced 100 CIFAR-10 images with the paper's schedule, with 3 seeds.

    No augmentation (with crop+flip a CPU-sized budget stops far from the global minimum the theory is
    about); the paper's 164 epochs at batch 16 (lr drops at 81 and 122; checkpoints 5, 40, 90, 120, 130, 160).
    F, ∇F and every F-based measurement use all 100 training images (the theory's F), once per seed; probes
    take 8 ladder steps a side along −∇F, one Gaussian and both Hessian ends; the Hessian is on 16 of them
    (24 products for both ends of its spectrum, 5 probes × 30 steps for its density); ``hessian_subsets`` shows
    at the last checkpoint how λ_max and λ_min move from 16 to all 100 images; the interpolation is init → final.
    Seeds 1 and 2 (training and directions) measure only what the verdicts need (``QUICK_SEED_MEASUREMENTS``),
    so every judged verdict but the interpolation's is seen on 3 seeds. Sized to finish within 20 minutes on
    2 CPU cores from a fresh clone (README); 200 images with consecutive interpolations took 28 minutes.
    """
    figure_epochs = scaled_figure_epochs(QUICK_EPOCHS)
    analysis = AnalysisSettings(
        measurements=["dominance", "probes", "curvature", "spectrum", "second_order", "surface", "interpolation",
                      "trajectory", "hessian_subsets"],
        epochs=figure_epochs, subset=None, test_subset=100, repeats=1, probe_gaussian=1, probe_filter=0,
        probe_steps=8, curvature_top=1, curvature_subset=16, curvature_tol=3e-2, curvature_max_matvecs=24,
        spectrum_probes=5, spectrum_steps=30, surface_points=9, interpolation_points=15,
        interpolation_pairs="init-final", hessian_subsets_smallest=16, hessian_subsets_largest=None)
    train_cfg = {"epochs": QUICK_EPOCHS, "train_subset": QUICK_TRAIN_SUBSET, "batch_size": 16, "test_subset": 100,
                 "augment": False, "track_every": 32, "track_subset": QUICK_TRAIN_SUBSET}
    return Preset([Cell("resnet32", "cifar10")], train_cfg, analysis,
                  f"ResNet-32 fitted on {QUICK_TRAIN_SUBSET} CIFAR-10 images (no augmentation), {QUICK_EPOCHS} "
                  f"epochs, F on all of them, probes of 8 ladder steps a side, the Hessian on 16, seeds "
                  f"{', '.join(map(str, QUICK_SEEDS))} (CPU, under 20 min)", figure_epochs,
                  seeds=list(QUICK_SEEDS), seed_measurements=list(QUICK_SEED_MEASUREMENTS))


def _smoke() -> Preset:
    analysis = AnalysisSettings(
        measurements=["dominance", "probes", "curvature", "second_order", "surface", "interpolation"],
        subset=None, test_subset=32, repeats=2, probe_gaussian=1, probe_filter=1, probe_steps=3,
        curvature_top=1, curvature_subset=8, curvature_tol=1e-1, curvature_max_matvecs=8,
        surface_points=5, interpolation_points=5, interpolation_pairs="init-final")
    train_cfg = {"epochs": 2, "save_at": [0, 1, 2], "train_subset": 200, "test_subset": 50,
                 "track_every": 2, "track_subset": 32}
    return Preset([Cell("resnet8", "cifar10")], train_cfg, analysis, "a tiny end-to-end check", [1, 2])


PAPER_CPU_EPOCHS = 100
PAPER_CPU_TRAIN_SUBSET = 250
PAPER_CPU_BATCH_SIZE = 32  # 8 steps an epoch, 800 in all: enough to memorize the noisy labels
# Measured on 250–500 noisy-label images at batch 32 (see the README): lr 0.1 from the first step blows VGG19-BN
# and ResNet-110 up (loss 2.3 → 4–8 in the first epochs) and leaves them at chance for the rest of the run; so
# do 0.02–0.03 for ResNet-110, and He et al.'s warm-up (0.01 for a few epochs, then 0.1) only delays the blow-up.
# At 0.01 both train and fit; ResNet-32 keeps the paper's 0.1. The schedule's shape is the paper's for all.
PAPER_CPU_LR = {"vgg19_bn": 0.01, "resnet110": 0.01}
# VGG19-BN has 20 M parameters: every Lanczos vector is 160 MB in float64, so its basis is capped lower, and
# reorthogonalizing against it (memory-bound) costs about as much as the product itself on this CPU: measured
# 2.5 s per Lanczos step against 1.2 s per product on 32 images, so VGG gets fewer steps.
VGG_CURVATURE = {"curvature_max_basis": 12, "curvature_max_matvecs": 14, "spectrum_steps": 10}


TINY_CELLS = {("vgg19_bn", "cifar10", 0.0), ("resnet32", "cifar100", 0.0), ("resnet32", "cifar10", 0.2),
              ("resnet110", "cifar10", 0.0)}


def _paper_cpu(tiny: bool = False) -> Preset:
    """Every network of the paper on CIFAR-10 and its 20 %-noisy version (CIFAR-100 where present), at CPU scale.

    Each network is fitted exactly (≥ 99 % training accuracy, noisy labels memorized) on a
    balanced subset without augmentation, with the paper's recipe on a shortened schedule of the
    same shape (``recipe.scaled_epoch``; batch 32, and lr 0.01 where 0.1 does not train: ``PAPER_CPU_LR``); F is
    the loss over all the cell's training images, the Hessian on 16 of them (a smaller test subset and grids than
    ``quick``'s; fewer Lanczos steps for VGG19-BN) at the six figure checkpoints, repeated with two direction
    seeds. ``tiny``: every network at width ¼ on a few
    images for 2 epochs, one cell each (``TINY_CELLS``) and one repeat: the same pipeline in about a
    minute (the tests run it).
    """
    epochs = 2 if tiny else PAPER_CPU_EPOCHS
    figure_epochs = scaled_figure_epochs(epochs)
    analysis = AnalysisSettings(
        measurements=["dominance", "probes", "curvature", "spectrum", "second_order", "surface", "interpolation",
                      "trajectory"],
        epochs=figure_epochs, subset=None, test_subset=20 if tiny else 128, repeats=1 if tiny else 2,
        probe_gaussian=1, probe_filter=1, probe_steps=3 if tiny else 10, curvature_top=1,
        curvature_subset=8 if tiny else 16, curvature_tol=3e-2, curvature_max_matvecs=8 if tiny else 24,
        spectrum_probes=2 if tiny else 5, spectrum_steps=6 if tiny else 80, surface_points=5 if tiny else 9,
        interpolation_points=5 if tiny else 15, interpolation_pairs="init-final,consecutive,to-final")
    train_cfg = {"epochs": epochs, "train_subset": 80 if tiny else PAPER_CPU_TRAIN_SUBSET,
                 "batch_size": 16 if tiny else PAPER_CPU_BATCH_SIZE, "test_subset": 40 if tiny else 500,
                 "augment": False, "track_every": 2 if tiny else 40, "track_subset": 20 if tiny else 128}
    if tiny:
        train_cfg["save_at"] = [0, 1, 2]
    size = "width ¼, 80 images, 2 epochs (a test)" if tiny else \
        f"{PAPER_CPU_TRAIN_SUBSET} images each, {epochs} epochs, no augmentation"
    cells = paper_cells(0.25) if tiny else paper_cells()
    if tiny:  # one cell per network (each dataset kind once; CIFAR-100's is skipped where absent), for time
        cells = [c for c in cells if (c.arch, c.dataset, c.label_noise) in TINY_CELLS]
    return Preset(cells, train_cfg, analysis,
                  f"the paper's networks on CIFAR-10 (clean and 20 % noisy labels) fitted on {size}; "
                  f"F on all of them, analysis at the figure checkpoints with {analysis.repeats} direction seed(s) "
                  f"(CPU)", figure_epochs,
                  analysis_by_arch={"vgg19_bn": VGG_CURVATURE},
                  train_by_arch={arch: {"lr": lr} for arch, lr in PAPER_CPU_LR.items()})


PRESETS = {"paper": _paper, "paper-cpu": _paper_cpu, "paper-cpu-tiny": lambda: _paper_cpu(tiny=True),
           "quick": _quick, "smoke": _smoke}
assert list(PRESETS) == list(PRESET_HELP), "recipe.PRESET_HELP names the presets defined here"


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise LandscapeError(f"unknown preset {name!r}: use {', '.join(PRESETS)}")
    return PRESETS[name]()


# Forward GFLOPs per 32×32 image (torch.utils.flop_counter, width 1, 10 classes): the relative cost of a
# cell, train and analysis alike. Fixed numbers, so every machine computes the same shares.
ARCH_GFLOPS = {"vgg19_bn": 0.796, "resnet110": 0.506, "resnet32": 0.138}


def parse_shard(text: str) -> tuple[int, int]:
    """(i, k) of 'i/k', 1 ≤ i ≤ k."""
    try:
        i, k = (int(part) for part in text.split("/"))
    except ValueError:
        raise LandscapeError(f"--shard takes i/k (machine i of k, e.g. 2/3), got {text!r}") from None
    if not 1 <= i <= k:
        raise LandscapeError(f"--shard {text}: need 1 <= i <= k")
    return i, k


def shard_cells(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """The cells of shard ``index`` (1-based) of ``count``: longest first, each to the least loaded shard.

    Deterministic (costs from ``ARCH_GFLOPS``, ties to the lower shard, then preset order), so k
    machines given i = 1..k take disjoint shares that together are every cell, in preset order.
    """
    loads, owner = [0.0] * count, {}
    for pos in sorted(range(len(cells)), key=lambda p: -ARCH_GFLOPS.get(cells[p].arch, 1.0)):
        target = min(range(count), key=lambda j: (loads[j], j))
        loads[target] += ARCH_GFLOPS.get(cells[pos].arch, 1.0)
        owner[pos] = target
    return [c for p, c in enumerate(cells) if owner[p] == index - 1]


def select_cells(preset: Preset, only: list[str] | None) -> list[Cell]:
    """The preset's cells, one per base cell and seed (``Preset.seeded_cells``), or those named in ``only``
    ('resnet32/cifar10' is seed 0, 'resnet32/cifar10/seed1' seed 1)."""
    cells = preset.seeded_cells()
    if not only:
        return cells
    names = {c.name: c for c in cells}
    unknown = [o for o in only if o not in names]
    if unknown:
        raise LandscapeError(f"no cell {unknown} in this preset; cells: {', '.join(names)}")
    return [names[o] for o in only]


@dataclass
class Reproduced:
    """What a ``reproduce`` command did: the cell folders it worked on, and the combined report it wrote
    (None when it wrote none: no cell on this shard, or none with data)."""

    folders: list[Path]
    report: Path | None


def cell_plan(preset: Preset, cell: Cell, out: Path, dataset: str, seed: int) -> CellPlan:
    """One cell of a preset: its training configuration, its analysis at the checkpoints the run holds,
    and its figures and report. Training and direction seeds are ``seed`` (reproduce --seed) + ``cell.seed``."""
    from .plots import make_figures
    from .report import write_report

    def analyses(run: RunDir) -> list[AnalysisSettings]:
        settings = dataclasses.replace(preset.analysis_for(cell), seed=seed + cell.seed)
        if settings.epochs is not None:
            have = set(run.checkpoint_epochs())
            settings.epochs = [e for e in settings.epochs if e in have]
        return [settings]

    def draw(run_dir: Path) -> None:
        make_figures(run_dir, epochs=preset.figure_epochs)
        write_report(run_dir)

    config = TrainConfig(arch=cell.arch, dataset=dataset, label_noise=cell.label_noise, width=cell.width,
                         seed=seed + cell.seed, **preset.train_for(cell))
    return CellPlan(cell.name, out / cell.folder, config, analyses, draw)


def reproduce(preset_name: str, out: str | Path, runtime: Runtime | None = None, *, only: list[str] | None = None,
              shard: str | None = None, cifar10: str = "cifar10", cifar100: str = "cifar100",
              seed: int = 0) -> Reproduced:
    """Run every stage of every selected cell into ``out``/<cell> through ``cells.run_cell``.

    Every cell folder is checked against its configuration before any is trained (``cells.check_cell``).
    ``shard`` 'i/k' keeps shard i of the selected cells (``shard_cells``); its timings go to
    ``timings.shard-i-of-k.json``, so the machines' output folders can be copied into one.
    """
    from .report import write_combined_report

    runtime = runtime or Runtime()
    preset, out = get_preset(preset_name), Path(out)
    sources = {"cifar10": cifar10, "cifar100": cifar100}
    cells, timings_path = select_cells(preset, only), out / "timings.json"
    if shard is not None:
        index, count = parse_shard(shard)
        selected, cells = len(cells), shard_cells(cells, index, count)
        if not cells:
            runtime.echo(f"shard {index}/{count}: no cell (the {selected} selected fall to other shards); "
                         f"nothing to do")
            return Reproduced([], None)
        runtime.echo(f"shard {index}/{count}: " + ", ".join(c.name for c in cells))
        timings_path = out / f"timings.shard-{index}-of-{count}.json"
    plans, skipped = [], {}
    for cell in cells:
        reason = missing_data(sources[cell.dataset], runtime.data_root, runtime.download)
        if reason is None:
            plans.append(cell_plan(preset, cell, out, sources[cell.dataset], seed))
        elif only:  # asked for by name: an error, not a skip
            raise LandscapeError(f"{cell.name}: {reason}")
        else:
            runtime.echo(f"== {cell.name}: skipped, {reason}")
            skipped[cell.name] = reason
    for plan in plans:  # every folder checked before any is trained
        check_cell(plan)
    for plan in plans:
        runtime.echo(f"== {plan.name}: {preset.description}")
        record_timings(timings_path, plan.name, run_cell(plan, runtime))
    ran = [out / c.folder for c in preset.seeded_cells() if (out / c.folder).is_dir()]
    report = write_combined_report(out, ran, skipped=skipped)["markdown"] if ran else None
    return Reproduced([p.run_dir for p in plans], report)


def plan_reproduction(preset_name: str, *, only: list[str] | None = None, shard: str | None = None,
                      calibrate: bool = False, device: str = "cpu") -> str:
    """The plan of a preset's selected cells (``only``, then ``shard``) as text (``planning``): training and
    analysis time per cell and the total, FLOP-based on the reference device, or with ``calibrate`` timed on
    ``device``. Trains, analyzes and writes nothing."""
    from .planning import format_plan, plan_cells

    preset = get_preset(preset_name)
    cells = select_cells(preset, only)
    if shard is not None:
        cells = shard_cells(cells, *parse_shard(shard))
        if not cells:
            return f"shard {shard}: no cell of preset {preset_name!r} falls to this shard; nothing to plan"
    result = plan_cells(cells, preset.train_for, preset.analysis_for, calibrate_on=device if calibrate else None)
    return format_plan(result, f"plan of preset {preset_name!r} ({len(cells)} cell{'s' if len(cells) != 1 else ''})")
