"""What an analysis measures and on what: the settings and their defaults, defined once.

The CLI reads its defaults from here; every field is written into the result files' keys.
Kept free of torch so that the command line starts fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import LandscapeError

MEASUREMENTS = ("dominance", "probes", "curvature", "spectrum", "second_order", "surface", "random_surface",
                "interpolation", "trajectory", "hessian_subsets")
DEFAULT_MEASUREMENTS = ("dominance", "probes", "curvature", "second_order", "surface", "interpolation", "trajectory")
REPEAT_SEED_STRIDE = 1000  # repeat r draws its directions and Lanczos start from seed + r·stride
BN_STATS = ("recompute", "checkpoint")
INTERPOLATION_PAIR_KINDS = ("init-final", "consecutive", "to-final")  # besides 'A-B' epoch pairs

# Upper limits of training sizes: past them a run is a typo, not an experiment (the paper's largest
# network, VGG19-BN, has 20 M parameters and trains 164 epochs).
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1_000_000
MAX_PARAMETERS = 1_000_000_000  # weights, gradients and momentum: 12 bytes each in fp32, ~12 GB


@dataclass
class AnalysisSettings:
    """What to measure and on what; every field is written next to the numbers."""

    measurements: list[str] = field(default_factory=lambda: list(DEFAULT_MEASUREMENTS))
    epochs: list[int] | None = None          # None: every checkpoint of the run
    subset: int | None = None                # training examples (None: the run's whole training set)
    test_subset: int | None = 1000           # test examples, at most (None: the whole test split)
    seed: int = 0
    repeats: int = 1                         # disjoint subsets (or direction seeds) measured independently
    bn_stats: str = "recompute"              # recompute: statistics of θ on the analyzed set; checkpoint: stored
    params: str = "all"                      # parameter subset for probes, curvature, surfaces
    bn: str = "frozen"
    loss: str | None = None                  # None: the run's training loss (cross_entropy for external checkpoints)
    precision: str = "fp32"                  # probes, curvature and gradients: fp32 or fp64
    surface_precision: str | None = None     # None: same as precision; bf16 allowed on CUDA
    batch_size: int | None = None
    probe_gaussian: int = 2
    probe_filter: int = 2
    probe_steps: int = 10                    # ladder steps per sign, between the rounding floor and F
    probe_smallest: float = 1e-7             # scouting range of the probe window, in units of ‖θ‖
    probe_largest: float = 1.0
    probe_refine: int = 3                    # bisections of each window edge (measure.adaptive_probe)
    curvature_top: int = 1
    curvature_subset: int | None = 128       # Hessian on a balanced subset of the analyzed examples (None: all)
    curvature_sigma: float = 0.0
    curvature_samples: int = 4
    curvature_tol: float = 1e-3
    curvature_max_matvecs: int = 80       # Hessian-vector products of the one Lanczos run for both ends, at most
    curvature_max_basis: int = 40         # Lanczos vectors held (memory: this many parameter vectors in float64)
    alignment_k: int = 10                 # share of ∇F in the top-k eigenspace, from the same Lanczos run (0: off)
    spectrum_probes: int = 5              # stochastic Lanczos quadrature: Rademacher probes (≥ 2 for a stderr) ...
    spectrum_steps: int = 80              # ... and Lanczos steps each (probes × steps Hessian-vector products;
    #                                       README "Spectrum resolution": the outlier count settles by 80 steps)
    trace_samples: int = 0
    hessian_subsets_epoch: int | None = None     # hessian_subsets: the checkpoint (None: the last analyzed)
    hessian_subsets_smallest: int = 32           # curvature subsets of 32, 64, 128, … examples ...
    hessian_subsets_largest: int | None = None   # ... up to this many (None: all analyzed examples)
    surface_points: int = 15                 # per axis (the paper's figures: 21, as the paper preset uses)
    surface_range: float | None = None       # None: the documented rule (see surface_extent)
    random_surface_range: float = 1.0
    interpolation_points: int = 21           # in [0, 1], α = 0 and 1 exactly; the grid goes on to −0.5 and 1.5
    interpolation_bn: str = "recompute"      # recompute | interpolate | batch
    interpolation_pairs: str = "init-final,consecutive,to-final"
    ntk_examples: int = 0                    # trajectory: NTK drift from epoch 0 on this many examples (0: off)
    second_order_controls: int = 3           # seeded random unit directions ⊥ ∇F run through the second-order test

    def validate(self) -> "AnalysisSettings":
        """The settings, or a one-line error for the first one out of range."""
        if not self.measurements or any(not str(m).strip() for m in self.measurements):
            raise LandscapeError(f"--measure needs measurement names, comma-separated, got {','.join(self.measurements)!r}: "
                                 f"choose from {', '.join(MEASUREMENTS)}")
        unknown = [m for m in self.measurements if m not in MEASUREMENTS]
        if unknown:
            raise LandscapeError(f"unknown measurement(s) {unknown}: choose from {', '.join(MEASUREMENTS)}")
        if self.precision not in ("fp32", "fp64"):
            raise LandscapeError(f"--precision must be fp32 or fp64 (residuals are never bf16), got {self.precision}")
        if self.interpolation_bn not in ("recompute", "interpolate", "batch"):
            raise LandscapeError(f"--interpolation-bn must be recompute, interpolate or batch, got {self.interpolation_bn}")
        if self.bn_stats not in BN_STATS:
            raise LandscapeError(f"--bn-stats must be recompute or checkpoint, got {self.bn_stats}")
        if self.alignment_k < 0:
            raise LandscapeError(f"--alignment-k must be at least 0, got {self.alignment_k}")
        if self.ntk_examples < 0:
            raise LandscapeError(f"--ntk-examples must be at least 0, got {self.ntk_examples}")
        if self.second_order_controls < 1:
            raise LandscapeError(f"--second-order-controls must be at least 1 (the test needs a control), "
                                 f"got {self.second_order_controls}")
        if self.hessian_subsets_smallest < 1 or (self.hessian_subsets_largest is not None
                                                 and self.hessian_subsets_largest < self.hessian_subsets_smallest):
            raise LandscapeError(f"Hessian subsets need 1 <= smallest <= largest, got {self.hessian_subsets_smallest} "
                                 f"and {self.hessian_subsets_largest}")
        if self.hessian_subsets_epoch is not None and self.epochs is not None \
                and self.hessian_subsets_epoch not in self.epochs:
            raise LandscapeError(f"hessian_subsets_epoch {self.hessian_subsets_epoch} is not among the analyzed "
                                 f"epochs {self.epochs}")
        if self.repeats < 1:
            raise LandscapeError(f"--repeats must be at least 1, got {self.repeats}")
        if not 0 < self.probe_smallest < self.probe_largest:
            raise LandscapeError(f"--probe-range needs 0 < smallest < largest, got {self.probe_smallest:g},{self.probe_largest:g}")
        if self.probe_refine < 0:
            raise LandscapeError(f"probe_refine must be at least 0, got {self.probe_refine}")
        if self.surface_points < 3 or self.interpolation_points < 3:
            raise LandscapeError("surfaces and interpolations need at least 3 points per axis")
        parse_interpolation_pairs(self.interpolation_pairs)
        return self


def parse_interpolation_pairs(text: str) -> list[str | tuple[int, int]]:
    """The items of --interp-pairs: 'init-final', 'consecutive', 'to-final' or (A, B) epoch pairs;
    a one-line error for anything else (checked before any work, not after the per-epoch analysis)."""
    items: list[str | tuple[int, int]] = []
    for kind in (k.strip() for k in str(text).split(",")):
        if kind in INTERPOLATION_PAIR_KINDS:
            items.append(kind)
        elif re.fullmatch(r"\d+-\d+", kind):
            a, b = (int(p) for p in kind.split("-"))
            if a == b:
                raise LandscapeError(f"--interp-pairs {kind}: a pair needs two different epochs")
            items.append((a, b))
        else:
            raise LandscapeError(f"--interp-pairs: unknown pair {kind!r} in {text!r}: use "
                                 f"{', '.join(INTERPOLATION_PAIR_KINDS)} or A-B (two checkpoint epochs), comma-separated")
    return items
