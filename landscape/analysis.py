"""Run the measurements over a run's checkpoints (or one external checkpoint) and store them.

Each piece (one measurement at one checkpoint, one probe direction, one surface) is a file
in ``RUN/analysis/``; a piece whose stored settings match is skipped, and many-point pieces
keep a ``.partial.npz`` of finished points, so an interrupted analysis resumes where it stopped.

Under torchrun every rank runs the same analysis on its shard of the examples (see
``distributed``): rank 0 decides what is fresh, reads and writes the results, leads the
eigensolvers and line searches; each result file then records the layout under "parallel".
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import distributed, measure
from .checkpoint import load_model
from .data import balanced_subset, disjoint_balanced_subsets, load_dataset, normalize
from .directions import (Direction, UndefinedDirection, eigenvector_direction, filter_normalized_direction,
                         gaussian_direction, gradient_direction, orthogonalize)
from .errors import LandscapeError
from .models import parameter_groups
from .objective import Objective, exact_bn_statistics
from .results import Partial, RunDir, atomic_savez, atomic_write_json, read_json, read_labels, read_npz, run_lock
from .runtime import Runtime
from .settings import REPEAT_SEED_STRIDE, REPEATED, AnalysisSettings
from .sources import CheckpointSource, RunSource, Source

def surface_extent(lr: float, grad_norm: float, loss: float, lambda_min: float, theta_norm: float,
                   best_gradient_step: float | None = None) -> dict:
    """Half-width of the paper's 2D grid, so the grid resolves the gradient step and shows curvature.

    Three times the best step along −∇F found by the gradient probe, so the grid's x-line
    brackets the best gradient step with a few points; without a probe, the distance at which
    the negative curvature alone would move F by F, √(2F/|λ_min|), or, if there is no negative
    curvature, ten full-batch SGD steps at the checkpoint's learning rate (10·lr·‖∇F‖).
    Capped at 0.25·‖θ‖. All candidates are recorded.
    """
    sgd = 10.0 * lr * grad_norm
    curvature = math.sqrt(2.0 * loss / abs(lambda_min)) if lambda_min < 0 else float("inf")
    cap = 0.25 * theta_norm
    if best_gradient_step:
        half, rule = 3.0 * best_gradient_step, "3 x best gradient step"
    elif math.isfinite(curvature):
        half, rule = curvature, "sqrt(2F/|lambda_min|)"
    else:
        half, rule = sgd, "10 SGD steps"
    return {"half_width": float(min(half, cap) if half > 0 else cap), "rule": rule, "sgd_scale": sgd,
            "best_gradient_step": best_gradient_step, "curvature_scale": curvature, "cap": cap}


class Analysis:
    """The measurements of one run directory (ours, or one made for an external checkpoint)."""

    def __init__(self, run_dir, settings: AnalysisSettings, runtime: Runtime | None = None, *,
                 checkpoint: str | Path | None = None, arch: str | None = None, dataset: str | None = None,
                 budget_minutes: float | None = None):
        """Read the source (the run, or ``checkpoint`` on ``dataset``) and fix the analyzed subsets."""
        self.run = RunDir(run_dir)
        self.settings = settings.validate()
        runtime = runtime or Runtime()
        self.runtime = runtime
        self.device = runtime.torch_device
        self.group = runtime.group  # one process unless launched by torchrun
        self.progress, self.echo = runtime.progress, runtime.echo
        self.budget_minutes = budget_minutes
        if checkpoint is not None:
            self.source = CheckpointSource.load(Path(checkpoint), arch, dataset, self.run, runtime)
        else:
            self.source = RunSource.load(self.run, runtime)
        src, s = self.source, self.settings
        self.loss = s.loss or src.train_config.get("loss") or "cross_entropy"  # the run's own loss by default
        self.repeat_sets = (disjoint_balanced_subsets(src.labels, s.subset, s.repeats, s.seed)
                            if s.repeats > 1 else None)
        self.repeat_mode = ("single" if s.repeats == 1 else
                            "disjoint subsets" if self.repeat_sets else "direction seeds (set too small to split)")
        self.train_idx = self.repeat_sets[0] if self.repeat_sets else balanced_subset(src.labels, s.subset, s.seed)
        test_size = s.test_subset if s.test_subset is not None and s.test_subset < len(src.test_labels) else None
        self.test_idx = balanced_subset(src.test_labels, test_size, s.seed + 1)  # at most test_subset

    def repeat_indices(self, repeat: int) -> torch.Tensor:
        """The analyzed training examples of repeat ``repeat`` (indices into the run's training set)."""
        return self.repeat_sets[repeat] if self.repeat_sets else self.train_idx

    def repeat_dir(self, epoch: int, repeat: int) -> Path:
        """Where repeat ``repeat`` of ``epoch`` is stored: the epoch folder for 0, repeat_R/ below it otherwise."""
        out = self.run.analysis_dir(epoch)
        return out if repeat == 0 else out / f"repeat_{repeat}"

    # ------------------------------------------------------------------ inputs
    def _objective(self, model, split="train", params=None, bn=None, precision=None, indices=None,
                   **kw) -> Objective:
        s = self.settings
        idx, images, labels = ((self.train_idx, self.source.images, self.source.labels) if split == "train"
                               else (self.test_idx, self.source.test_images, self.source.test_labels))
        idx = idx if indices is None else indices
        return Objective(model, images[idx], labels[idx], mean=self.source.mean, std=self.source.std, loss=self.loss,
                         bn=bn or s.bn, params=params or s.params, precision=precision or s.precision,
                         batch_size=s.batch_size, device=self.device, group=self.group, **kw)

    def context(self, epoch, objective: Objective, split="train", repeat: int | None = None) -> dict:
        """What the numbers were computed on."""
        ctx = {"dataset": self.source.dataset_name, "split": split, "arch": self.source.arch, "epoch": epoch,
               "checkpoint": self._checkpoint_name(epoch), "subset_seed": self.settings.seed,
               "checkpoint_sha256": self.source.fingerprint(epoch),
               "label_noise": self.source.train_config.get("label_noise", 0.0),
               "train_seed": self.source.train_config.get("seed"), **objective.describe()}
        if repeat is not None:
            n = len(self.repeat_indices(repeat))
            ctx.update({"repeat": repeat, "repeats": self.settings.repeats, "repeat_mode": self.repeat_mode,
                        "direction_seed": self.settings.seed + REPEAT_SEED_STRIDE * repeat,
                        "bn_statistics": (f"recomputed at θ over the {n} analyzed training examples"
                                          if self.settings.bn_stats == "recompute"
                                          else "the checkpoint's running statistics")})
        return ctx

    def _checkpoint_name(self, epoch) -> str:
        """The checkpoint relative to the run (so a moved run keeps its results), else absolute."""
        path = self.source.checkpoints.get(epoch)
        if path is None:
            return ""
        try:
            return str(Path(path).resolve().relative_to(self.run.path.resolve()))
        except ValueError:
            return str(Path(path).resolve())

    # ------------------------------------------------------------------ bookkeeping
    def _bar(self, total: int, desc: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="pt", disable=not self.progress, leave=False, dynamic_ncols=True)

    @staticmethod
    def _fresh(path: Path, key: dict) -> bool:
        """True if ``path`` holds a finished result computed with exactly ``key``."""
        if not path.is_file():
            return False
        try:
            return read_json(path).get("key") == _normalize(key)
        except LandscapeError:
            return False

    def _save(self, path: Path, key: dict, summary: dict, arrays: dict | None = None):
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

    def _piece(self, path: Path, key: dict, what: str, compute) -> bool:
        """One resumable piece of the analysis: key → fresh? → compute → save → say.

        Nothing happens when ``path`` holds a result made with exactly ``key``; otherwise
        ``compute()`` returns (summary, arrays or None, a line to print), stored atomically. A
        direction that does not exist (``UndefinedDirection``, e.g. ∇F = 0) is stored as undefined.
        Returns True when something was computed.
        """
        if self.group.from_rank0(lambda: self._fresh(path, key), f"checking {path.name}"):
            return False
        try:
            summary, arrays, message = compute()
        except UndefinedDirection as exc:
            self._undefined(path, key, what, exc)
            return True
        self._save(path, key, summary, arrays)
        if message:
            self.echo(message)
        return True

    def _undefined(self, path: Path, key: dict, what: str, exc: Exception) -> None:
        """Store a piece whose direction does not exist (∇F = 0, ...) as undefined, with the reason."""
        self._save(path, key, {"undefined": str(exc)})
        self.echo(f"{what}: undefined ({exc})")

    def _partial(self, path: Path, key: dict, part: str = "") -> Partial:
        """The finished-points file of the piece ``path`` (``part``: one of several), keyed by ``key``."""
        return self.group.store(Partial(path.with_name(f"{path.stem}{part}.partial.npz"),
                                        json.dumps({"key": _normalize(key), "part": part}, sort_keys=True), self.echo))

    # ------------------------------------------------------------------ driver
    def selected_epochs(self) -> list[int]:
        wanted = self.settings.epochs
        if wanted is None:
            return sorted(self.source.checkpoints)
        missing = [e for e in wanted if e not in self.source.checkpoints]
        if missing:
            raise LandscapeError(f"no checkpoint for epoch(s) {missing}; the run has {sorted(self.source.checkpoints)}")
        return sorted(wanted)

    def run_all(self) -> None:
        with self.group.on_rank0(lambda: run_lock(self.run.path, self.echo, "landscape analyze")):
            self._run_all()

    def _run_all(self) -> None:
        from tqdm import tqdm

        epochs = self.selected_epochs()
        # the estimate costs a forward pass, a gradient and an HVP: only for a user watching, or a budget
        seconds = self.estimate(epochs) if self.progress or self.budget_minutes is not None else {}
        s = self.settings
        per_epoch = sum(v for k, v in seconds.items() if k not in ("interpolation", "trajectory")) / len(epochs)
        with tqdm(total=max(1, round(sum(seconds.values()))), desc="analysis (estimated seconds)", unit="s",
                  disable=not self.progress, dynamic_ncols=True, position=0) as overall:
            for epoch in epochs:
                started = time.perf_counter()
                self.analyze_epoch(epoch)
                self.echo(f"epoch {epoch}: analysis done in {time.perf_counter() - started:.1f} s")
                overall.update(round(per_epoch))
            if "interpolation" in s.measurements and len(self.source.checkpoints) >= 2:
                self.interpolations()
                overall.update(round(seconds.get("interpolation", 0)))
            if "trajectory" in s.measurements and len(self.source.checkpoints) >= 2:
                for repeat in range(s.repeats):
                    self.trajectory(repeat)
                overall.update(round(seconds.get("trajectory", 0)))

    def estimate(self, epochs: list[int]) -> dict[str, float]:
        """Measure a forward pass, a gradient and an HVP at the first epoch, print the estimated time
        of the whole analysis (and, with ``budget_minutes``, shrink the settings to fit it first)."""
        from .budget import Sizes, fit_to_budget, measure_unit_costs, plan

        s = self.settings
        indices = self.repeat_indices(0)
        model, _, _ = self.model_at(epochs[0], indices)
        obj = self._objective(model, indices=indices)
        cobj = self._curvature_objective(model, indices, s.seed, obj)
        costs = measure_unit_costs(cobj, repeats=1)  # per example, on the Hessian's examples
        sizes = Sizes(train=len(indices), test=len(self.test_idx), curvature=cobj.num_examples,
                      checkpoints=len(epochs), all_checkpoints=len(self.source.checkpoints),
                      interpolation_pairs=len(self.interpolation_pairs()) if len(self.source.checkpoints) >= 2 else 0,
                      outputs=int(self.source.train_config.get("num_classes") or 10))
        if self.budget_minutes is not None:
            chosen, record = fit_to_budget(s, self.budget_minutes, sizes, costs)
            self.settings = chosen.validate()
            if self.group.is_writer:
                atomic_write_json(record, self.run.analysis / "budget.json")
            self.echo(f"budget {self.budget_minutes:g} min: " + (", ".join(
                f"{k} {a} → {b}" for k, (a, b) in record["changed"].items()) or "the settings fit as they are")
                + ("" if record["fits"] else " (still over: the smallest settings allowed)"))
        seconds = plan(self.settings, sizes, costs)
        total = sum(seconds.values())
        self.echo(f"estimated time: {total / 60:.1f} min ({costs.describe(sizes.curvature)}; eigensolves counted "
                  f"at their product cap) — " + ", ".join(f"{k} {v / 60:.1f}" for k, v in
                                                          sorted(seconds.items(), key=lambda kv: -kv[1])[:4]) + " min")
        return seconds

    def analyze_epoch(self, epoch: int) -> None:
        """Every requested measurement at one checkpoint, once per repeat (pictures on repeat 0 only)."""
        for repeat in range(self.settings.repeats):
            self._analyze_repeat(epoch, repeat)

    def model_at(self, epoch: int, indices: torch.Tensor):
        """The checkpoint's model with the batch-norm statistics the settings ask for.

        Returns (model, the checkpoint's own statistics, the statistics of θ). The latter are the
        exact statistics of the network at θ over ``indices`` (see ``exact_bn_statistics``); with
        ``bn_stats='recompute'`` the model holds them, so F is the loss of the network at θ and
        not of a lagging running average.
        """
        model, _, _ = load_model(self.source.checkpoints[epoch], self.source.arch)
        stored = {n: b.detach().clone() for n, b in model.named_buffers()}
        model = model.to(self.device)
        x = normalize(self.source.images[indices].to(self.device), self.source.mean, self.source.std, torch.float32)
        exact_bn_statistics(model, x)
        recomputed = {n: b.detach().cpu().clone() for n, b in model.named_buffers()}
        model = model.cpu()
        if self.settings.bn_stats == "checkpoint":
            model.load_state_dict(stored, strict=False)
        return model.eval(), stored, recomputed

    def _analyze_repeat(self, epoch: int, repeat: int) -> None:
        """One repeat of one checkpoint: statistics of θ, then each requested piece that is not fresh."""
        s = self.settings
        if repeat > 0 and not set(s.measurements) & set(REPEATED):
            return
        indices = self.repeat_indices(repeat)
        seed = s.seed + REPEAT_SEED_STRIDE * repeat
        model, stored_buffers, recomputed_buffers = self.model_at(epoch, indices)
        out = self.repeat_dir(epoch, repeat)
        full = self._objective(model, params="all", indices=indices)
        obj = full if s.params == "all" else self._objective(model, indices=indices)
        theta = obj.theta0
        cache: dict = {}

        def ctx(o, split="train"):
            return self.context(epoch, o, split, repeat)

        def gradient() -> torch.Tensor:  # computed at most once, and only if a piece needs it
            if "grad" not in cache:
                cache["grad"] = obj.value_and_grad(theta)[1]
            return cache["grad"]

        if "dominance" in s.measurements:
            path = out / "dominance.json"
            key = {"context": ctx(full), "settings": {"test_examples": len(self.test_idx)}}

            def dominance():
                test = self._objective(model, split="test", params="all")
                result, full_grad = measure.gradient_dominance(full, None, parameter_groups(full.model)["hidden"], test)
                self._check_finite(result["F"], epoch)
                other = stored_buffers if s.bn_stats == "recompute" else recomputed_buffers
                result["F_checkpoint_stats" if s.bn_stats == "recompute" else "F_recomputed_stats"] = \
                    full.with_buffers(other).value()
                result["F_checkpoint_stats" if s.bn_stats == "checkpoint" else "F_recomputed_stats"] = result["F"]
                result["bn_stats"] = s.bn_stats
                if obj is full:
                    cache["grad"] = full_grad
                return result, None, (
                    f"epoch {epoch}{_tag(repeat)}: F={result['F']:.4g} (BN statistics of the checkpoint: "
                    f"{result['F_checkpoint_stats']:.4g}, of θ: {result['F_recomputed_stats']:.4g}) ||grad F||^2="
                    f"{result['grad_sq']:.4g} ratio={result['ratio']:.4g} train acc={result['train_acc']:.3f}")
            self._piece(path, key, f"epoch {epoch}{_tag(repeat)}: dominance", dominance)

        curvature = None
        needs_curvature = {"curvature", "second_order"} | ({"surface"} if repeat == 0 else set())
        if needs_curvature & set(s.measurements):
            cobj = self._curvature_objective(model, indices, seed, obj)
            curvature = self._curvature(epoch, cobj, out, ctx(cobj), seed, repeat)
        if "spectrum" in s.measurements:
            sobj = cobj if needs_curvature & set(s.measurements) else self._curvature_objective(model, indices, seed)
            self._spectrum(epoch, sobj, out, ctx(sobj), seed, repeat)
        if "probes" in s.measurements:
            self._probes(epoch, obj, theta, gradient, curvature, out, ctx(obj), seed, repeat)
        if "second_order" in s.measurements:
            self._second_order(epoch, obj, theta, gradient, curvature, out, ctx(obj), repeat)
        if repeat == 0 and "surface" in s.measurements:
            self._paper_surface(epoch, model, obj, theta, gradient, curvature, out)
        if repeat == 0 and "random_surface" in s.measurements:
            self._random_surface(epoch, model, obj, theta, out)

    def _curvature_objective(self, model, indices, seed: int, obj: Objective | None = None) -> Objective:
        """The objective curvature is measured on: a balanced ``curvature_subset`` of the examples, or all."""
        s = self.settings
        if s.curvature_subset is not None and s.curvature_subset < len(indices):
            within = balanced_subset(self.source.labels[indices], s.curvature_subset, seed + 2)
            return self._objective(model, indices=indices[within])
        return obj if obj is not None else self._objective(model, indices=indices)

    def _spectrum(self, epoch, obj: Objective, out: Path, context: dict, seed: int, repeat: int) -> None:
        """The Hessian's eigenvalue density by stochastic Lanczos quadrature, its negative mass and outliers."""
        from .curvature import HessianOperator
        from .density import default_width, lanczos_quadrature, negative_mass

        s = self.settings
        path = out / "spectrum.json"
        key = {"context": context, "settings": {"probes": s.spectrum_probes, "steps": s.spectrum_steps,
                                                "seed": seed, "method": "stochastic Lanczos quadrature "
                                                "(Rademacher probes, full reorthogonalization)",
                                                "negative_below": "-broadening",
                                                "outliers": "dimension x weight above max node / 10"}}

        def density():
            op = HessianOperator(obj, obj.theta0)
            q = lanczos_quadrature(op, s.spectrum_probes, s.spectrum_steps, seed=seed)
            width = default_width(q)
            # Most of a network's spectrum sits in a cluster at 0 whose Ritz values land on either
            # side of it: only eigenvalues below −width (the broadening) count as negative.
            mass = negative_mass(q, below=-width)
            nodes, weights = q.pooled()
            # Eigenvalues that stand out: the weight above a tenth of the largest node, times the
            # dimension (each eigenvalue carries 1/dim of the weight on average over probes).
            edge = 0.1 * float(nodes.max())
            above = negative_mass(q, below=edge) if edge > 0 else None
            count = q.dim * (1.0 - above.value) if above else float("nan")
            count_err = q.dim * above.stderr if above else float("nan")
            summary = {"negative_mass": mass.value, "negative_mass_stderr": mass.stderr, "negative_below": -width,
                       "outliers_above": count, "outliers_above_stderr": count_err, "outlier_edge": edge,
                       "width": width,
                       "dimension": q.dim, "lambda_min_node": float(nodes.min()),
                       "lambda_max_node": float(nodes.max()), "matvecs": q.matvecs, "seconds": q.seconds}
            arrays = {"nodes": nodes, "weights": weights,
                      "probe": np.concatenate([np.full(len(x), i) for i, x in enumerate(q.nodes)])}
            return summary, arrays, (f"epoch {epoch}{_tag(repeat)}: spectrum negative mass {mass.value:.3g} "
                                     f"± {mass.stderr:.2g} (below {-width:.3g}), about {count:.0f} ± {count_err:.0f} "
                                     f"eigenvalues above λ_max/10 ({q.seconds:.0f} s)")
        self._piece(path, key, f"epoch {epoch}{_tag(repeat)}: spectrum", density)

    def _check_finite(self, value: float, epoch) -> None:
        if not math.isfinite(value):
            raise LandscapeError(f"F is {value} at the checkpoint of epoch {epoch}: the weights are not usable")

    # ------------------------------------------------------------------ pieces
    def _curvature(self, epoch, obj: Objective, out: Path, context: dict, seed: int, repeat: int) -> dict:
        """Top and most negative Hessian eigenpairs (and the trace) on ``obj``; reads them back when fresh.

        Both ends come from one Lanczos run (``spectrum_ends``), each pair with its residual and
        error bound.
        """
        from .curvature import HessianOperator, hutchinson_trace, spectrum_ends

        s = self.settings
        path = out / "curvature.json"
        key = {"context": context, "settings": {
            "top": s.curvature_top, "sigma": s.curvature_sigma,
            "smoothing_samples": s.curvature_samples if s.curvature_sigma > 0 else 0,
            "tol": s.curvature_tol, "max_matvecs": s.curvature_max_matvecs, "max_basis": s.curvature_max_basis,
            "trace_samples": s.trace_samples, "seed": seed, "alignment_k": s.alignment_k,
            "eigensolver": "one thick-restart Lanczos run for both ends (landscape.curvature.spectrum_ends)"}}

        def eigenpairs():
            op = HessianOperator(obj, obj.theta0, sigma=s.curvature_sigma,
                                 samples=s.curvature_samples if s.curvature_sigma > 0 else 0, seed=seed)
            return self.group.lead_operator(op, solve, "the Hessian eigensolvers")

        def solve(op):
            started = time.perf_counter()
            ends = spectrum_ends(op, k_top=max(s.curvature_top, s.alignment_k), k_bottom=1, tol=s.curvature_tol,
                                 max_basis=s.curvature_max_basis, max_matvecs=s.curvature_max_matvecs, seed=seed,
                                 measured_top=s.curvature_top)
            top, neg = ends.top[:s.curvature_top], ends.most_negative
            summary = {"top": [_pair_summary(p) for p in top], "most_negative": _pair_summary(neg),
                       "restarts": ends.restarts, "hvps": op.hvps, "seconds": time.perf_counter() - started}
            if s.alignment_k:
                summary["gradient_alignment"] = _alignment(obj, ends.top[:s.alignment_k])
            if s.trace_samples:
                summary["trace"] = _as_dict(hutchinson_trace(op, s.trace_samples, seed=seed))
            arrays = {"top_vectors": np.stack([np.asarray(p.eigenvector, dtype=np.float32) for p in top]),
                      "most_negative_vector": np.asarray(neg.eigenvector, dtype=np.float32)}
            return summary, arrays, (f"epoch {epoch}{_tag(repeat)}: lambda_max={summary['top'][0]['eigenvalue']:.4g} "
                                     f"lambda_min={summary['most_negative']['eigenvalue']:.4g} "
                                     f"({summary['seconds']:.0f} s)")
        self._piece(path, key, f"epoch {epoch}{_tag(repeat)}: curvature", eigenpairs)
        return self.group.from_rank0(lambda: {**read_json(path)["result"], "vectors": read_npz(path.with_suffix(".npz"))},
                                     "reading the curvature")

    def _probe_specs(self, curvature, seed: int) -> list[dict]:
        """Name, kind, seed and normalization of every probe direction, known before computing any."""
        s = self.settings
        specs = [{"name": "neg_gradient", "kind": "neg_gradient", "seed": None, "normalization": "unit"}]
        specs += [{"name": f"gaussian_{seed + k}", "kind": "gaussian", "seed": seed + k,
                   "normalization": "unit"} for k in range(s.probe_gaussian)]
        specs += [{"name": f"filter_normalized_{seed + k}", "kind": "filter_normalized", "seed": seed + k,
                   "normalization": "filter+unit"} for k in range(s.probe_filter)]
        if curvature is not None:
            specs += [{"name": f"hessian_{rank}", "kind": f"hessian_{rank}", "seed": None, "normalization": "unit"}
                      for rank in ("top", "most_negative")]
        return specs

    def _probe_direction(self, spec: dict, obj: Objective, theta, gradient, curvature) -> Direction:
        """The unit direction a probe spec names, built at θ."""
        kind = spec["kind"]
        if kind == "neg_gradient":
            return gradient_direction(gradient(), obj, negative=True)
        if kind == "gaussian":
            return gaussian_direction(obj, spec["seed"])
        if kind == "filter_normalized":
            return filter_normalized_direction(obj, theta, spec["seed"], unit=True)
        vec = curvature["vectors"]
        if kind == "hessian_top":
            return eigenvector_direction(vec["top_vectors"][0], curvature["top"][0]["eigenvalue"], obj, "top")
        return eigenvector_direction(vec["most_negative_vector"], curvature["most_negative"]["eigenvalue"],
                                     obj, "most_negative")

    def _probes(self, epoch, obj: Objective, theta, gradient, curvature, out: Path, context: dict,
                seed: int, repeat: int) -> None:
        """A semi-smoothness probe along every direction of ``_probe_specs``."""
        s = self.settings
        for spec in self._probe_specs(curvature, seed):
            path = out / f"probe_{spec['name']}.json"
            key = {"context": context, "settings": {
                "direction": spec, "steps_per_sign": s.probe_steps,
                "smallest": s.probe_smallest, "largest": s.probe_largest}}

            def probe(spec=spec, path=path, key=key):
                direction = self._probe_direction(spec, obj, theta, gradient, curvature)
                steps = measure.default_steps(float(theta.norm()), s.probe_steps, s.probe_smallest, s.probe_largest)
                with self._bar(len(steps), f"epoch {epoch}{_tag(repeat)} probe {direction.name}") as bar:
                    summary, arrays = measure.semi_smoothness_probe(obj, theta, gradient(), direction, steps,
                                                                    self._partial(path, key), bar)
                fit = summary["fit"]
                return summary, arrays, (f"epoch {epoch}{_tag(repeat)}: probe {direction.name}: a={fit['a']:.3g} "
                                         f"b={fit['b']:.3g} (rel. rms {fit['rel_rms']:.2g})")
            self._piece(path, key, f"epoch {epoch}{_tag(repeat)}: probe {spec['name']}", probe)

    def _second_order(self, epoch, obj: Objective, theta, gradient, curvature, out: Path, context: dict,
                      repeat: int) -> None:
        """d_grad, d_curv, d_plane without a grid (measure.second_order_test)."""
        if curvature is None:
            return
        path = out / "second_order.json"
        best_step = self.group.from_rank0(lambda: _best_gradient_step(out / "probe_neg_gradient.json"))
        key = {"context": context, "settings": {
            "line_search_rtol": measure.LINE_SEARCH_RTOL, "plane_max_evaluations": measure.PLANE_MAX_EVALUATIONS,
            "plane_ftol": measure.PLANE_FTOL, "x": "-gradient (unit)",
            "y": "hessian_most_negative, orthogonalized against x",
            "first_step": best_step if best_step is not None else "1e-3 x ||theta||"}}

        def test():
            x = gradient_direction(gradient(), obj, negative=True)
            neg = curvature["most_negative"]
            y = orthogonalize(eigenvector_direction(curvature["vectors"]["most_negative_vector"],
                                                    neg["eigenvalue"], obj, "most_negative"), x)
            start = best_step if best_step is not None else 1e-3 * float(theta.norm())
            from tqdm import tqdm

            with tqdm(desc=f"epoch {epoch}{_tag(repeat)} second-order test", unit="pt", disable=not self.progress,
                      leave=False, dynamic_ncols=True) as bar:
                started = time.perf_counter()
                plane = measure.plane_function(obj, theta, x, y, bar)
                result = self.group.lead(lambda ab: plane(*ab), lambda f: measure.second_order_test(
                    lambda a, b: f((a, b)), start), "the second-order test")
            result.update({"x": x.describe(), "y": y.describe(), "lambda_min": neg["eigenvalue"],
                           "lambda_min_residual": neg.get("residual"), "lambda_min_converged": neg.get("converged"),
                           "first_step": start, "seconds": time.perf_counter() - started})
            return result, None, (f"epoch {epoch}{_tag(repeat)}: second order: d_grad={result['d_grad']:.4g} "
                                  f"d_curv={result['d_curv']:.4g} d_plane={result['d_plane']:.4g} (extra "
                                  f"{100 * result['extra_fraction']:.2g}% of d_grad, {result['evaluations']} evaluations)")
        self._piece(path, key, f"epoch {epoch}{_tag(repeat)}: second-order test", test)

    def _lr_at(self, epoch: int) -> float:
        from .train import TrainConfig

        cfg = self.source.train_config or {"arch": self.source.arch or "", "dataset": self.source.dataset_name}
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in cfg.items() if k in known}).resolved()
        return config.lr_at(epoch + 1)

    def _surface_objective(self, model, obj):
        s = self.settings
        if s.surface_precision in (None, obj.precision):
            return obj
        return self._objective(model, precision=s.surface_precision)

    def _paper_surface(self, epoch, model, obj: Objective, theta, gradient, curvature, out: Path) -> None:
        """The paper's Figure 1 grid over (∇F, most negative curvature), half-width by ``surface_extent``."""
        s = self.settings
        sobj = self._surface_objective(model, obj)
        path = out / "surface.json"
        probe = out / "probe_neg_gradient.json"
        best_step = self.group.from_rank0(lambda: _best_gradient_step(probe))
        neg = curvature["most_negative"]
        key = {"context": self.context(epoch, sobj, repeat=0), "settings": {
            "points": s.surface_points,
            "range": s.surface_range if s.surface_range is not None else  # the rule, by its inputs
            {"rule": "surface_extent", "best_gradient_step": best_step, "lambda_min": neg["eigenvalue"]},
            "sigma": s.curvature_sigma, "uses_gradient_probe": best_step is not None,
            "x": "gradient", "y": "hessian_most_negative, orthogonalized against x"}}

        def grid():
            grad = gradient()
            x = gradient_direction(grad, obj)
            y = orthogonalize(eigenvector_direction(curvature["vectors"]["most_negative_vector"],
                                                    neg["eigenvalue"], obj, "most_negative"), x)
            extent = surface_extent(self._lr_at(epoch), float(grad.norm()), obj.value(theta),
                                    neg["eigenvalue"], float(theta.norm()), best_step)
            half = s.surface_range if s.surface_range is not None else extent["half_width"]
            coords = np.linspace(-half, half, s.surface_points)
            with self._bar(len(coords) ** 2, f"epoch {epoch} surface") as bar:
                values = measure.surface(sobj, theta, x, y, coords, coords, self._partial(path, key), bar)
            summary = {**measure.surface_summary(values), "half_width": half, "extent_rule": extent,
                       "x": x.describe(), "y": y.describe()}
            return summary, values, (f"epoch {epoch}: surface: best decrease along gradient "
                                     f"{summary['along_x']['decrease']:.4g}, along negative curvature "
                                     f"{summary['along_y']['decrease']:.4g}, anywhere {summary['anywhere']['decrease']:.4g}")
        self._piece(path, key, f"epoch {epoch}: surface", grid)

    def _random_surface(self, epoch, model, obj: Objective, theta, out: Path) -> None:
        """Li et al.'s grid over two filter-normalized random directions."""
        s = self.settings
        sobj = self._surface_objective(model, obj)
        path = out / "random_surface.json"
        key = {"context": self.context(epoch, sobj, repeat=0), "settings": {
            "points": s.surface_points, "half_width": s.random_surface_range,
            "x": {"kind": "filter_normalized", "seed": s.seed}, "y": {"kind": "filter_normalized", "seed": s.seed + 1}}}

        def grid():
            x = filter_normalized_direction(obj, theta, s.seed)
            y = filter_normalized_direction(obj, theta, s.seed + 1)
            coords = np.linspace(-s.random_surface_range, s.random_surface_range, s.surface_points)
            with self._bar(len(coords) ** 2, f"epoch {epoch} random surface") as bar:
                values = measure.surface(sobj, theta, x, y, coords, coords, self._partial(path, key), bar)
            return {**measure.surface_summary(values), "x": x.describe(), "y": y.describe()}, values, None
        self._piece(path, key, f"epoch {epoch}: random surface", grid)

    # ------------------------------------------------------------------ interpolation
    def interpolation_pairs(self) -> list[tuple[int, int]]:
        """(from, to) checkpoint epochs named by --interp-pairs: init-final, consecutive, A-B."""
        epochs = sorted(self.source.checkpoints)
        pairs = []
        for kind in self.settings.interpolation_pairs.split(","):
            kind = kind.strip()
            if kind == "init-final":
                pairs.append((epochs[0], epochs[-1]))
            elif kind == "consecutive":
                pairs += list(zip(epochs[:-1], epochs[1:]))
            elif kind == "to-final":
                pairs += [(e, epochs[-1]) for e in epochs[:-1]]
            elif "-" in kind and all(p.isdigit() for p in kind.split("-")):
                a, b = (int(p) for p in kind.split("-"))
                if a not in self.source.checkpoints or b not in self.source.checkpoints:
                    raise LandscapeError(f"interpolation pair {kind}: no checkpoint for one of its epochs")
                pairs.append((a, b))
            elif kind:
                raise LandscapeError(f"unknown interpolation pair {kind!r}: use init-final, consecutive, to-final or A-B")
        return list(dict.fromkeys(pairs))

    def interpolations(self) -> None:
        """Train and test loss along θ(α) for every pair, with the chosen batch-norm policy."""
        s = self.settings
        alphas = np.linspace(-0.5, 1.5, s.interpolation_points)
        for a, b in self.interpolation_pairs():
            model_a, _, _ = load_model(self.source.checkpoints[a], self.source.arch)
            model_b, _, _ = load_model(self.source.checkpoints[b], self.source.arch)
            path = self.run.analysis / "interpolation" / f"epoch_{a:04d}_to_{b:04d}.json"
            policy = s.interpolation_bn
            bn = {"recompute": "recompute", "interpolate": "frozen", "batch": "batch"}[policy]
            objs = {split: self._objective(model_a, split, params="all", bn=bn,
                                           recompute_images=(self.source.images[self.train_idx] if bn == "recompute" else None))
                    for split in ("train", "test")}
            key = {"context": {split: self.context(f"{a}->{b}", o, split) for split, o in objs.items()},
                   "settings": {"alphas": alphas.tolist(), "bn_interpolation": policy, "from_epoch": a, "to_epoch": b}}

            def segment(a=a, b=b, model_b=model_b, path=path, key=key, objs=objs):
                theta_a = objs["train"].theta0
                theta_b = objs["train"].flatten(dict(model_b.named_parameters())).detach()
                bufs = ({n: t.detach() for n, t in model_a.named_buffers()},
                        {n: t.detach() for n, t in model_b.named_buffers()}) if policy == "interpolate" else (None, None)
                arrays, summary = {"alpha": alphas}, {}
                for split, o in objs.items():
                    partial = self._partial(path, key, f".{split}")
                    with self._bar(len(alphas), f"interpolation {a}->{b} ({split})") as bar:
                        res = measure.interpolation(o, theta_a, theta_b, alphas, *bufs, store=partial, progress=bar)
                    arrays[f"{split}_loss"], arrays[f"{split}_acc"] = res["loss"], res["acc"]
                    summary[split] = measure.monotonicity(alphas, res["loss"])
                return summary, arrays, (f"interpolation {a}->{b}: train loss monotone on [0,1]: "
                                         f"{summary['train']['monotone']} (largest bump "
                                         f"{summary['train']['largest_bump']:.3g})")
            self._piece(path, key, f"interpolation {a}->{b}", segment)


    # ------------------------------------------------------------------ the trajectory
    def trajectory(self, repeat: int = 0) -> None:
        """Convexity along the path SGD took, toward the final checkpoint θ_T, on one repeat's examples.

        At every analyzed checkpoint θ_t (each with the batch-norm statistics of its own θ):
        F, ‖∇F‖², ⟨∇F(θ_t), θ_t − θ_T⟩ against F(θ_t) − F(θ_T) (star-convexity), the PL* ratios
        ‖∇F‖²/(F − F*) for F* = 0 and F* = the lowest F seen, the distance travelled
        ‖θ_t − θ_0‖/‖θ_0‖, and, with ``ntk_examples``, the drift of the empirical NTK from epoch 0.
        """
        from .trajectory import pl_star_of, star_convexity_of

        s = self.settings
        epochs = sorted(set(self.selected_epochs()) | {min(self.source.checkpoints), max(self.source.checkpoints)})
        final, first = epochs[-1], epochs[0]
        indices = self.repeat_indices(repeat)
        path = self.run.analysis / "trajectory" / f"repeat_{repeat}.json"
        model0, _, _ = self.model_at(first, indices)
        obj0 = self._objective(model0, params="all", indices=indices)
        key = {"context": self.context(f"{first}..{final}", obj0, "train", repeat),
               "settings": {"epochs": epochs, "target_epoch": final, "ntk_examples": s.ntk_examples,
                            "seed": s.seed + REPEAT_SEED_STRIDE * repeat,
                            "checkpoints": [self._checkpoint_name(e) for e in epochs]}}

        def compute():
            with self._bar(len(epochs) + 1, f"trajectory{_tag(repeat)}") as bar:
                states = {}
                for e in [final] + [e for e in epochs if e != final]:
                    model = self.model_at(e, indices)[0] if e != first else model0
                    obj = self._objective(model, params="all", indices=indices)
                    value, grad = obj.value_and_grad()
                    states[e] = (obj, obj.theta0.to(torch.float64), float(value), grad)
                    bar.update(1)
                theta_T, f_T = states[final][1], states[final][2]
                theta_0 = states[first][1]
                rows = [e for e in epochs if e != final]
                values = np.array([states[e][2] for e in epochs])
                grad_sq = np.array([float(states[e][3] @ states[e][3]) for e in epochs])
                inner = np.array([float(states[e][3] @ (states[e][1] - theta_T)) for e in rows])
                star = star_convexity_of(inner, [states[e][2] for e in rows], f_T)
                pl_zero, pl_min = pl_star_of(values, grad_sq, "zero"), pl_star_of(values, grad_sq, "min")
                travelled = np.array([float((states[e][1] - theta_0).norm() / theta_0.norm()) for e in epochs])
                to_final = np.array([float((states[e][1] - theta_T).norm()) for e in epochs])
                arrays = {"epoch": np.array(epochs, float), "F": values, "grad_sq": grad_sq,
                          "star_epoch": np.array(rows, float), "star_inner": star.inner, "star_gap": star.gap,
                          "star_ratio": star.ratio, "star_holds": star.holds.astype(float),
                          "pl_zero": pl_zero.ratio, "pl_min": pl_min.ratio,
                          "travelled": travelled, "distance_to_final": to_final}
                summary = {"target_epoch": final, "F_target": f_T, "star_holds_fraction": star.holds_fraction,
                           "star_failing_epochs": [e for e, h in zip(rows, star.holds) if not h],
                           "star_min_ratio": float(np.nanmin(star.ratio)) if np.isfinite(star.ratio).any() else None,
                           "pl_zero_min": pl_zero.mu, "pl_min_min": pl_min.mu, "pl_min_f_star": pl_min.f_star,
                           "travelled_final": float(travelled[-1])}
                if s.ntk_examples:
                    drift, layout = self._ntk_drift(states, epochs, first, s.ntk_examples, key["settings"]["seed"])
                    arrays["ntk_drift"] = drift
                    summary.update(ntk_drift_final=float(drift[-1]), ntk_layout=layout)
                bar.update(1)
            return summary, arrays, (f"trajectory{_tag(repeat)}: star-convex toward epoch {final} at "
                                     f"{star.holds_fraction:.0%} of {len(rows)} checkpoints, PL* min "
                                     f"{pl_zero.mu:.3g}, travelled ‖θ_T − θ_0‖/‖θ_0‖ = {travelled[-1]:.3g}")
        self._piece(path, key, f"trajectory{_tag(repeat)}", compute)

    def _ntk_drift(self, states: dict, epochs: list[int], first: int, examples: int, seed: int):
        """‖K_t − K_0‖_F/‖K_0‖_F at every epoch, K the empirical NTK on the first ``examples`` examples.

        Every output's Jacobian when it fits in NTK_MAX_ENTRIES numbers, otherwise that of one
        seeded random unit direction of the outputs (said in the returned layout).
        """
        from .theory import ntk, ntk_drift

        obj0 = states[first][0]
        n = min(examples, obj0.num_examples)
        outputs = int(obj0._forward(obj0.theta0, obj0.images[:1]).reshape(-1).numel())
        projection = None
        if n * outputs * obj0.dim > NTK_MAX_ENTRIES:
            gen = torch.Generator().manual_seed(seed)
            projection = torch.randn(outputs, generator=gen, dtype=torch.float64)
            projection /= projection.norm()
        layout = {"examples": n, "outputs": outputs if projection is None else 1,
                  "rows": "every output" if projection is None else "one random unit direction of the outputs",
                  "parameters": obj0.dim}
        kernels = {e: ntk(states[e][0], chunk=8, projection=projection, examples=n) for e in epochs}
        return np.array([ntk_drift(kernels[e], kernels[first]) for e in epochs]), layout


NTK_MAX_ENTRIES = 50_000_000  # n·k·P numbers of a full-output Jacobian (400 MB in float64)


def _silent(*args, **kwargs) -> None:
    """The echo of ranks other than 0: one rank speaks for the job."""


def _alignment(obj: Objective, pairs) -> dict:
    """The share of ‖∇F‖² (on the Hessian's examples) inside the span of the top eigenvectors
    (Gur-Ari et al. 2018: during training most of the gradient lies in the top-k eigenspace)."""
    _, grad = obj.value_and_grad()
    g = grad.detach().to(torch.float64).cpu().numpy()
    # ‖P g‖² = hᵀ G⁻¹ h with h = Vᵀg and G = VᵀV, from dot products alone: no k × dim copy (a QR of the
    # eigenvectors of a 20 M-parameter network would hold several GB)
    vectors = [np.asarray(p.eigenvector, dtype=np.float64) for p in pairs]
    h = np.array([v @ g for v in vectors])
    gram = np.array([[u @ v for v in vectors] for u in vectors])
    norm_sq = float(g @ g)
    inside_sq = float(h @ np.linalg.lstsq(gram, h, rcond=None)[0])
    return {"k": len(pairs), "fraction": inside_sq / norm_sq if norm_sq > 0 else float("nan"),
            "eigenvalues": [p.eigenvalue for p in pairs], "converged": all(p.converged for p in pairs)}


def _tag(repeat: int) -> str:
    return f" [repeat {repeat}]" if repeat else ""


def _best_gradient_step(probe: Path) -> float | None:
    """The best step along −∇F the stored gradient probe found: a finite positive number, or None."""
    if not probe.is_file():
        return None
    try:
        eta = read_json(probe)["result"]["descent"]["best_eta"]
    except (LandscapeError, KeyError, TypeError):
        return None
    return float(eta) if isinstance(eta, (int, float)) and math.isfinite(eta) and eta > 0 else None


def _normalize(obj):
    """The JSON round-trip of ``obj``, so stored and fresh keys compare equal."""
    import json

    from .results import _jsonable

    return json.loads(json.dumps(_jsonable(obj), sort_keys=True))


def _as_dict(x) -> dict:
    if dataclasses.is_dataclass(x):
        return {k: v for k, v in dataclasses.asdict(x).items() if not isinstance(v, np.ndarray)}
    return dict(x)


def _pair_summary(pair) -> dict:
    d = _as_dict(pair) if not isinstance(pair, dict) else dict(pair)
    d.pop("eigenvector", None)
    return d
