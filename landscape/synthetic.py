"""The theorem's own data: n unit-norm inputs in R^d, pairwise at least δ apart.

Allen-Zhu, Li & Song (2019) assume ‖x_i‖ = 1 and ‖x_i − x_j‖ ≥ δ for i ≠ j; their rates are
polynomial in n and 1/δ. ``synthetic:separated`` builds such a set and measures its separation
on the stored tensor, so δ is a checked fact about the data, not an intention.

Name syntax (query-string style; every option optional, any order)::

    synthetic:separated?n=64&d=16&delta=0.5&classes=2&seed=0
    synthetic:separated?n=64&d=16&delta=0.5&targets=regression&outputs=1

n      training examples (default 64)         d        input dimension (default 16)
delta  minimum pairwise distance δ (0.5)      seed     generator seed (0)
test   test examples (default n)              targets  'classes' (default) or 'regression'
classes  number of classes, labels balanced (2; with targets=classes only)
outputs  regression output dimension k (1; with targets=regression only)

Inputs are uniform on the sphere S^{d−1}, drawn one by one and kept only if at least δ from
every point kept so far (rejection), stored as float32 and checked again afterwards in float64.
Labels: int64 classes, each class the same size ±1, shuffled; or float32 targets y ∈ R^k with
entries N(0, 1/k) (so E‖y‖² = 1), stored as an n × k tensor. Train and test come from the same
generator with independent seed streams (SeedSequence([seed, 0]) and [seed, 1]); each split is
δ-separated within itself, not from the other split. The paper also fixes one input coordinate
to 1/√2 (a bias in disguise); these inputs do not, and the ``mlp`` networks have no biases.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .errors import LandscapeError

PREFIX = "synthetic:"
KINDS = ("separated",)
TARGETS = ("classes", "regression")
DEFAULTS = {"n": 64, "d": 16, "delta": 0.5, "seed": 0, "test": None, "targets": "classes",
            "classes": 2, "outputs": 1}
MAX_DRAWS_PER_POINT = 1000  # rejection gives up after this many candidates per requested point


def parse_synthetic_name(name: str) -> tuple[str, dict]:
    """(kind, options with every default filled in) of a ``synthetic:KIND?key=value&...`` name."""
    body = name[len(PREFIX):] if name.startswith(PREFIX) else name
    kind, _, query = body.partition("?")
    if kind not in KINDS:
        raise LandscapeError(f"unknown synthetic dataset {kind!r} in {name!r}: use {', '.join(KINDS)}")
    given: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULTS:
            raise LandscapeError(f"bad option {item!r} in {name!r}: use key=value with keys "
                                 f"{', '.join(DEFAULTS)}")
        if key in given:
            raise LandscapeError(f"option {key!r} is given twice in {name!r}")
        given[key] = value
    options = dict(DEFAULTS)
    for key, value in given.items():
        try:
            options[key] = value if key == "targets" else float(value) if key == "delta" else int(value)
        except ValueError:
            raise LandscapeError(f"option {key}={value!r} in {name!r} is not a "
                                 f"{'number' if key == 'delta' else 'whole number'}") from None
    if options["targets"] not in TARGETS:
        raise LandscapeError(f"targets must be one of {', '.join(TARGETS)}, got {options['targets']!r}")
    unused = "outputs" if options["targets"] == "classes" else "classes"
    if unused in given:
        raise LandscapeError(f"option {unused!r} does not apply to targets={options['targets']} in {name!r}")
    if options["test"] is None:
        options["test"] = options["n"]
    return kind, options


def canonical_name(options: dict) -> str:
    """The one spelling of a separated dataset: every option, in a fixed order."""
    keys = ["n", "d", "delta", "test", "seed", "targets",
            "classes" if options["targets"] == "classes" else "outputs"]
    return f"{PREFIX}separated?" + "&".join(f"{k}={options[k]:g}" if k == "delta" else f"{k}={options[k]}"
                                            for k in keys)


def separation_bound(n: int, d: int) -> float:
    """The largest minimum distance n unit vectors in R^d can have, or an upper bound on it.

    In d = 1 the sphere is {−1, 1}: 2 for n = 2, and no room for more points. Otherwise
    Σ_{i<j} ‖x_i − x_j‖² = n² − ‖Σ x_i‖² ≤ n² gives min distance ≤ √(2n/(n−1)) (attained by the
    regular simplex when n ≤ d + 1).
    """
    if d == 1:
        return 2.0 if n == 2 else 0.0
    return math.sqrt(2.0 * n / (n - 1))


def pairwise_distances(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """‖a_i − b_j‖ in float64 from explicit differences (no ‖a‖² + ‖b‖² − 2ab cancellation)."""
    a = a.to(torch.float64)
    b = a if b is None else b.to(torch.float64)
    rows = max(1, 2 ** 24 // max(1, len(b) * a.shape[1]))
    return torch.cat([(a[i:i + rows, None, :] - b[None, :, :]).pow(2).sum(-1).sqrt()
                      for i in range(0, len(a), rows)]) if len(a) else torch.zeros(0, len(b), dtype=torch.float64)


def min_pairwise_distance(x: torch.Tensor) -> float:
    """min_{i≠j} ‖x_i − x_j‖ over the rows of x, in float64."""
    if len(x) < 2:
        raise LandscapeError("a minimum pairwise distance needs at least two points")
    dist = pairwise_distances(x)
    dist.fill_diagonal_(math.inf)
    return float(dist.min())


def separated_points(n: int, d: int, delta: float, rng: np.random.Generator) -> torch.Tensor:
    """n float32 unit vectors in R^d with every pairwise distance ≥ δ (as stored), by rejection."""
    bound = separation_bound(n, d)
    if delta > bound:
        raise LandscapeError(f"δ = {delta:g} is infeasible: {n} unit vectors in R^{d} can be at most "
                             f"{bound:.4g} apart; lower delta, or raise d" + (" (d = 1 holds two points)" if d == 1 else ""))
    kept = torch.zeros(0, d, dtype=torch.float32)
    draws, budget = 0, MAX_DRAWS_PER_POINT * n
    while len(kept) < n and draws < budget:
        batch = min(max(2 * (n - len(kept)), 16), budget - draws)
        g = rng.standard_normal((batch, d))
        cand = torch.from_numpy(g / np.linalg.norm(g, axis=1, keepdims=True)).to(torch.float32)
        draws += batch
        if len(kept):
            cand = cand[(pairwise_distances(cand, kept) >= delta).all(dim=1)]
        if len(cand) == 0:
            continue
        among = pairwise_distances(cand)
        chosen: list[int] = []
        for i in range(len(cand)):
            if len(kept) + len(chosen) == n:
                break
            if all(among[i, j] >= delta for j in chosen):
                chosen.append(i)
        kept = torch.cat([kept, cand[chosen]])
    if len(kept) < n:
        raise LandscapeError(f"could not place {n} unit vectors in R^{d} at least δ = {delta:g} apart "
                             f"({len(kept)} placed after {draws} random draws; the upper bound is {bound:.4g}); "
                             f"lower delta, or raise d")
    return kept


def _split(options: dict, size: int, stream: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(inputs, labels or targets, measured minimum distance) of one split, from its seed stream."""
    rng = np.random.default_rng(np.random.SeedSequence([options["seed"], stream]))
    x = separated_points(size, options["d"], options["delta"], rng)
    measured = min_pairwise_distance(x)
    if not measured >= options["delta"]:  # the construction guarantees it; this checks the stored tensor
        raise LandscapeError(f"internal error: stored inputs are {measured} apart, less than δ = {options['delta']}")
    if options["targets"] == "classes":
        c = options["classes"]
        labels = torch.from_numpy(rng.permutation(np.arange(size) % c)).to(torch.int64)
    else:
        k = options["outputs"]
        labels = torch.from_numpy(rng.standard_normal((size, k)) / math.sqrt(k)).to(torch.float32)
    return x, labels, measured


def separated_dataset(name: str) -> dict:
    """The fields of the dataset a ``synthetic:separated?...`` name describes (see the module doc):
    name, train/test inputs and labels, classes, mean, std and provenance (``data.load_synthetic``
    makes the ``Dataset`` of them, so this module needs nothing from ``data``)."""
    kind, o = parse_synthetic_name(name)
    for key in ("n", "test"):
        if o[key] < 2:
            raise LandscapeError(f"{key} must be at least 2 (separation is about pairs), got {o[key]}")
    if o["d"] < 1:
        raise LandscapeError(f"d must be at least 1, got {o['d']}")
    if not 0 <= o["seed"] < 2**32:
        raise LandscapeError(f"seed must be a whole number from 0 to {2**32 - 1}, got {o['seed']} in {name!r}")
    if not (math.isfinite(o["delta"]) and o["delta"] > 0):
        raise LandscapeError(f"delta must be a finite number > 0, got {o['delta']}")
    if o["targets"] == "classes" and o["classes"] < 2:
        raise LandscapeError(f"classes must be at least 2, got {o['classes']}")
    if o["targets"] == "regression" and o["outputs"] < 1:
        raise LandscapeError(f"outputs must be at least 1, got {o['outputs']}")
    train_x, train_y, train_sep = _split(o, o["n"], 0)
    test_x, test_y, test_sep = _split(o, o["test"], 1)
    classes = ([str(c) for c in range(o["classes"])] if o["targets"] == "classes"
               else [f"y{j}" for j in range(o["outputs"])])
    provenance = {"generator": kind, **o, "min_distance_train": train_sep, "min_distance_test": test_sep,
                  "separation_bound": separation_bound(o["n"], o["d"]),
                  "input_norm": "1 (float32 rounding)", "normalization": "identity (inputs used as stored)"}
    return dict(name=canonical_name(o), train_images=train_x, train_labels=train_y, test_images=test_x,
                test_labels=test_y, classes=classes, mean=(0.0,), std=(1.0,), provenance=provenance)
