"""What a reproduction will cost before it runs: each cell's training and analysis time, from FLOPs or measured.

``reproduce --plan`` prints, without training or analyzing anything, every cell's training time
(epochs × training examples × one gradient per example), the analysis' numbers of F evaluations,
gradients and Hessian-vector products (``budget.plan`` summing each measurement's declared cost)
and the hours on a stated device. Unit costs come either from FLOPs on a reference device (the
forward FLOPs of one example counted by ``torch.utils.flop_counter`` on the cell's own network, a
gradient = ``gradient_forwards`` forward passes, a Hessian-vector product = ``hvp_gradients``
gradients, at an assumed achieved rate), or, with ``calibrate``, from timing F, ∇F and Hv on this
machine's device (``budget.measure_unit_costs`` on the network with random weights and images).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from .budget import Sizes, UnitCosts, measure_unit_costs, plan
from .errors import LandscapeError
from .measurements import interpolation_pairs
from .settings import AnalysisSettings

# The CIFAR splits' sizes: the presets' cells analyze these unless their training settings take subsets.
CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000
CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}
SMALL_BATCH = 1024  # analyzed examples below which FLOP-based GPU times are latency-bound, not FLOP-bound


@dataclass(frozen=True)
class FlopAssumptions:
    """How FLOPs become seconds on the reference device (stated with every FLOP-based plan)."""

    device: str = "one NVIDIA H100 SXM 80 GB"
    # fixed examples forwarded in batches of 1,024 at several points per pass (Objective.values), fp32 with the
    # TF32 convolutions PyTorch uses by default: 8 % of the TF32 tensor peak (495 TFLOP/s dense), 60 % of fp32's 67
    analysis_tflops: float = 40.0
    # SGD at batch 128 (bf16 autocast): CIFAR-sized convolutions keep an H100 far below peak (launch-bound)
    training_tflops: float = 10.0
    gradient_forwards: float = 3.0   # a gradient: one forward and a backward of twice its FLOPs
    hvp_gradients: float = 3.3       # a Hessian-vector product: 3.33 gradients, measured (README "Speed")

    def describe(self) -> str:
        return (f"FLOP-based, on {self.device}: forward FLOPs per example counted by torch.utils.flop_counter on "
                f"the cell's network (multiply-adds of convolutions and matrix products × 2); a gradient = "
                f"{self.gradient_forwards:g} forward passes, a Hessian-vector product = {self.hvp_gradients:g} "
                f"gradients (measured 3.33 on the CPU, README \"Speed\"); analysis at {self.analysis_tflops:g} "
                f"TFLOP/s achieved (fixed examples in batches of 1,024, surface, probe and interpolation points "
                f"several per pass with Objective.values), training (batch 128) at {self.training_tflops:g} TFLOP/s "
                f"achieved")


REFERENCE = FlopAssumptions()


def forward_flops(model, example) -> int:
    """FLOPs of one forward pass of ``model`` (eval mode) on the single example ``example`` (no batch axis)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example.unsqueeze(0))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def example_input(arch: str):
    """A zero input of one example for ``arch``: a 3×32×32 image, or an mlp's flat input."""
    import torch

    from .models import check_architecture

    family, settings = check_architecture(arch)
    return torch.zeros(settings["in_features"]) if family == "mlp" else torch.zeros(3, 32, 32)


@functools.lru_cache(maxsize=None)
def arch_forward_flops(arch: str, num_classes: int = 10, width: float = 1) -> int:
    """Forward FLOPs per example of the built-in network ``arch``, counted on the meta device (shapes only: FLOPs
    depend on no weight, and nothing is computed)."""
    import torch

    from .models import build_model

    with torch.device("meta"):
        return forward_flops(build_model(arch, num_classes, width), example_input(arch))


def flop_unit_costs(flops: float, tflops: float, a: FlopAssumptions = REFERENCE) -> UnitCosts:
    """Seconds per example of F, ∇F and Hv for a network of ``flops`` forward FLOPs at ``tflops`` achieved."""
    forward = flops / (tflops * 1e12)
    gradient = a.gradient_forwards * forward
    return UnitCosts(forward, gradient, a.hvp_gradients * gradient)


def calibrated_unit_costs(arch: str, num_classes: int, width: float, device: str, examples: int) -> UnitCosts:
    """F, ∇F and Hv timed on ``device`` (best of 2 after a warm-up) on ``examples`` random images, random weights."""
    import torch

    from .models import build_model
    from .objective import Objective

    gen = torch.Generator().manual_seed(0)
    shape = tuple(example_input(arch).shape)
    if len(shape) == 3:
        data = torch.randint(0, 256, (examples, *shape), dtype=torch.uint8, generator=gen)
        scale = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    else:
        data, scale = torch.randn(examples, *shape, generator=gen), {}
    labels = torch.randint(0, num_classes, (examples,), generator=gen)
    # timing only: the running statistics of random weights are as good as any (bn='frozen', no warning)
    obj = Objective(build_model(arch, num_classes, width), data, labels, device=device, bn="frozen", **scale)
    return measure_unit_costs(obj, repeats=2)


def check_device(device: str) -> None:
    """A one-line error when ``device`` cannot be timed here."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise LandscapeError("--calibrate --device cuda: no CUDA device on this machine (--device cpu times the CPU)")


def device_name(device: str) -> str:
    """The device in words, for the plan's header."""
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (cuda)"
    import platform

    return f"this machine's CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@dataclass
class CellCost:
    """One cell's plan: its sizes, training seconds, analysis seconds per measurement and pass counts
    (``forwards``, ``gradients``, ``hvps``: examples through each, summed over the whole analysis)."""

    name: str
    arch: str
    sizes: Sizes
    epochs: int
    train_examples: int
    training_s: float
    analysis_s: dict[str, float]
    forwards: float
    gradients: float
    hvps: float

    @property
    def analysis_total_s(self) -> float:
        return sum(self.analysis_s.values())

    @property
    def total_s(self) -> float:
        return self.training_s + self.analysis_total_s


def cell_sizes(cell, train: dict, s: AnalysisSettings) -> tuple[Sizes, int, int]:
    """(analysis sizes, training examples, epochs) of ``cell`` trained with ``train`` and analyzed with ``s``,
    as ``reproduce`` would run it: the checkpoints the run saves, the analyzed ones among them."""
    from .train import TrainConfig

    config = TrainConfig(arch=cell.arch, dataset=cell.dataset, width=cell.width,
                         label_noise=cell.label_noise, **train).resolved()
    train_examples = min(config.train_subset or CIFAR_TRAIN, CIFAR_TRAIN)
    test_examples = min(config.test_subset or CIFAR_TEST, CIFAR_TEST)
    analyzed = min(s.subset or train_examples, train_examples)
    saved = config.save_at
    epochs = [e for e in (s.epochs if s.epochs is not None else saved) if e in saved]
    pairs = (len(interpolation_pairs(s.interpolation_pairs, saved))
             if "interpolation" in s.measurements and len(saved) >= 2 else 0)
    sizes = Sizes(train=analyzed, test=min(s.test_subset or test_examples, test_examples),
                  curvature=min(s.curvature_subset or analyzed, analyzed), checkpoints=len(epochs),
                  all_checkpoints=len(saved), interpolation_pairs=pairs,
                  outputs=CIFAR_CLASSES.get(cell.dataset, 10))
    return sizes, train_examples, config.epochs


def cell_cost(cell, train: dict, s: AnalysisSettings, costs: UnitCosts, training_gradient: float) -> CellCost:
    """The plan of one cell: ``budget.plan`` for the analysis (its pass counts from the same model, with
    unit costs of one), and epochs × training examples × ``training_gradient`` seconds for training."""
    sizes, train_examples, epochs = cell_sizes(cell, train, s)

    def count(**unit) -> float:
        return sum(plan(s, sizes, UnitCosts(**{"forward": 0.0, "gradient": 0.0, "hvp": 0.0, **unit})).values())

    return CellCost(cell.name, cell.arch, sizes, epochs, train_examples,
                    epochs * train_examples * training_gradient, plan(s, sizes, costs),
                    count(forward=1.0), count(gradient=1.0), count(hvp=1.0))


@dataclass
class PresetPlan:
    """Every cell's plan, the unit costs per network and what they rest on."""

    cells: list[CellCost]
    units: dict[tuple[str, int, float], tuple[int, UnitCosts]]  # (arch, classes, width) → (forward FLOPs, costs)
    basis: str
    device: str
    gpu: bool  # whether the hours are a GPU's
    flop_based: bool = True

    @property
    def total_s(self) -> float:
        return sum(c.total_s for c in self.cells)


def plan_cells(cells, train_for, analysis_for, calibrate_on: str | None = None, examples: int | None = None,
               assumptions: FlopAssumptions = REFERENCE) -> PresetPlan:
    """The plan of ``cells`` (``train_for(cell)``: training settings, ``analysis_for(cell)``: analysis settings),
    with FLOP-based unit costs on the reference device, or, with ``calibrate_on`` ('cpu'/'cuda'), unit
    costs timed there on ``examples`` random images (default 256 on CUDA, 16 on the CPU)."""
    if calibrate_on is not None:
        check_device(calibrate_on)
        examples = examples or (256 if calibrate_on == "cuda" else 16)
    units, planned = {}, []
    for cell in cells:
        key = (cell.arch, CIFAR_CLASSES.get(cell.dataset, 10), cell.width)
        if key not in units:
            flops = arch_forward_flops(*key)
            units[key] = (flops, flop_unit_costs(flops, assumptions.analysis_tflops, assumptions)
                          if calibrate_on is None else
                          calibrated_unit_costs(*key, calibrate_on, examples))
        flops, costs = units[key]
        training = (flop_unit_costs(flops, assumptions.training_tflops, assumptions).gradient
                    if calibrate_on is None else costs.gradient)
        planned.append(cell_cost(cell, train_for(cell), analysis_for(cell), costs, training))
    if calibrate_on is None:
        return PresetPlan(planned, units, assumptions.describe(), assumptions.device, True)
    device = device_name(calibrate_on)
    basis = (f"measured on {device} by --calibrate: F, ∇F and one Hessian-vector product timed on each network with "
             f"random weights on {examples} random images (best of 2 "
             f"after a warm-up); training counted at the measured fp32 gradient cost per example")
    return PresetPlan(planned, units, basis, device, calibrate_on == "cuda", flop_based=False)


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.2f}" if hours >= 0.01 or hours == 0 else f"{hours:.1e}"


def _sizes_text(n: Sizes, epochs: int, train_examples: int) -> str:
    return (f"training {epochs} epochs × {train_examples:,} examples; analysis on {n.train:,} training and "
            f"{n.test:,} test examples, the Hessian on {n.curvature:,}, {n.checkpoints} of {n.all_checkpoints} "
            f"checkpoints, {n.interpolation_pairs} interpolation(s)")


def format_plan(p: PresetPlan, title: str) -> str:
    """The plan as text: what the unit costs rest on, the unit costs per network, a table of the cells
    (Markdown, so it can be pasted into a report) and the total."""
    lines = [f"{title}: nothing is trained or analyzed", f"unit costs: {p.basis}", "",
             "| network | classes | width | forward GFLOP/example | forward µs/example | gradient µs/example "
             "| HVP µs/example |", "|---|---|---|---|---|---|---|"]
    for (arch, classes, width), (flops, c) in p.units.items():
        lines.append(f"| {arch} | {classes} | {width:g} | {flops / 1e9:.3f} | {c.forward * 1e6:.3g} | "
                     f"{c.gradient * 1e6:.3g} | {c.hvp * 1e6:.3g} |")
    lines += ["", f"| cell | training h | F evaluations | gradients | Hessian-vector products | analysis h "
                  f"| largest part | total h |", "|---|---|---|---|---|---|---|---|"]
    for c in p.cells:
        part, seconds = max(c.analysis_s.items(), key=lambda kv: kv[1]) if c.analysis_s else ("-", 0.0)
        share = f"{part} {100 * seconds / c.analysis_total_s:.0f} %" if c.analysis_total_s else "-"
        lines.append(f"| {c.name} | {_hours(c.training_s)} | {c.forwards / c.sizes.train:,.0f} | "
                     f"{c.gradients / c.sizes.train:,.0f} | {c.hvps / c.sizes.curvature:,.0f} | "
                     f"{_hours(c.analysis_total_s)} | {share} | {_hours(c.total_s)} |")
    lines.append(f"| **total** | {_hours(sum(c.training_s for c in p.cells))} | | | | "
                 f"{_hours(sum(c.analysis_total_s for c in p.cells))} | | **{_hours(p.total_s)}** |")
    shapes = {}
    for c in p.cells:
        shapes.setdefault(_sizes_text(c.sizes, c.epochs, c.train_examples), []).append(c.name)
    lines += [""] + [f"sizes ({', '.join(names)}): {text}" if len(shapes) > 1 else f"sizes: {text}"
                     for text, names in shapes.items()]
    lines += ["F evaluations and gradients are counted in passes over the analyzed training examples, "
              "Hessian-vector products on the Hessian's examples; eigensolves at their expected Lanczos "
              "steps (at most their caps).",
              f"total: {_hours(p.total_s)} {'GPU-hours' if p.gpu else 'hours'} on {p.device}"]
    if p.flop_based and any(c.sizes.train < SMALL_BATCH for c in p.cells):
        lines.append(f"(fewer than {SMALL_BATCH:,} analyzed examples do not keep a GPU busy: the FLOP-based hours "
                     f"are far too low here; --calibrate times them)")
    return "\n".join(lines)
