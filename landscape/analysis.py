"""Run the registered measurements over a run's checkpoints (or one external checkpoint) and store them.

Each measurement is one module of ``landscape.measurements``; this module schedules them: it
fixes the analyzed subsets and repeats, builds the model with the statistics of θ at each
checkpoint, hands the measurements the inputs they share (``measurements.At``) and keeps the
results resumable (``results.PieceStore``: a piece whose stored settings match is skipped, and
many-point pieces keep their finished points, so an interrupted analysis resumes where it stopped).

Under torchrun every rank runs the same analysis on its shard of the examples (see
``distributed``): rank 0 decides what is fresh, reads and writes the results, leads the
eigensolvers and line searches; each result file then records the layout under "parallel".
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import budget
from .data import balanced_subset, disjoint_balanced_subsets, normalize
from .directions import UndefinedDirection
from .errors import LandscapeError
from .measurements import PER_RUN, REGISTRY, At, Measurement, curvature_needed
from .objective import Objective, exact_bn_statistics
from .results import PieceStore, RunDir, run_lock
from .runtime import Runtime
from .settings import REPEAT_SEED_STRIDE, AnalysisSettings
from .sources import CheckpointSource, RunSource


class Analysis:
    """The measurements of one run directory (ours, or one made for an external checkpoint)."""

    undefined_errors = (UndefinedDirection,)  # a piece whose direction does not exist is stored as undefined

    def __init__(self, run_dir, settings: AnalysisSettings, runtime: Runtime | None = None, *,
                 checkpoint: str | Path | None = None, arch: str | None = None, dataset: str | None = None,
                 budget_minutes: float | None = None):
        """Read the source (the run, or ``checkpoint`` on ``dataset``) and fix the analyzed subsets."""
        self.run = RunDir(run_dir)
        self.settings = settings.validate()
        self.runtime = runtime = runtime or Runtime()
        self.device, self.group = runtime.torch_device, runtime.group  # one process unless launched by torchrun
        # with bars on screen, status lines go above them (tqdm.write), never onto a bar's line
        self.progress = runtime.progress
        self.echo = (lambda message="": tqdm.write(str(message))) if runtime.progress else runtime.echo
        self.store = PieceStore(self.group, self.echo)
        self.budget_minutes = budget_minutes
        self.source = (CheckpointSource.load(Path(checkpoint), arch, dataset, self.run, runtime)
                       if checkpoint is not None else RunSource.load(self.run, runtime))
        src, s = self.source, self.settings
        self.loss = s.loss or src.train_config.get("loss") or "cross_entropy"  # the run's own loss by default
        self.repeat_sets = (disjoint_balanced_subsets(src.labels, s.subset, s.repeats, s.seed)
                            if s.repeats > 1 else None)
        self.repeat_mode = ("single" if s.repeats == 1 else "disjoint subsets" if self.repeat_sets else
                            "direction seeds (the whole training set)" if s.subset is None else
                            "direction seeds (set too small to split)")
        self.train_idx = self.repeat_sets[0] if self.repeat_sets else balanced_subset(src.labels, s.subset, s.seed)
        test_size = s.test_subset if s.test_subset is not None and s.test_subset < len(src.test_labels) else None
        self.test_idx = balanced_subset(src.test_labels, test_size, s.seed + 1)  # at most test_subset

    # ------------------------------------------------------------------ what is analyzed
    def repeat_indices(self, repeat: int) -> torch.Tensor:
        """The analyzed training examples of repeat ``repeat`` (indices into the run's training set)."""
        return self.repeat_sets[repeat] if self.repeat_sets else self.train_idx

    def direction_seed(self, repeat: int) -> int:
        """The seed of repeat ``repeat``'s directions and Lanczos start."""
        return self.settings.seed + REPEAT_SEED_STRIDE * repeat

    def selected_epochs(self) -> list[int]:
        wanted = self.settings.epochs
        if wanted is None:
            return sorted(self.source.checkpoints)
        missing = [e for e in wanted if e not in self.source.checkpoints]
        if missing:
            raise LandscapeError(f"no checkpoint for epoch(s) {missing}; the run has {sorted(self.source.checkpoints)}")
        return sorted(wanted)

    def measurement(self, name: str) -> Measurement:
        return REGISTRY[name]

    def objective(self, model, split="train", params=None, bn=None, precision=None, indices=None, **kw) -> Objective:
        """F over the analyzed examples of ``split`` (``indices``: others of the training set)."""
        s = self.settings
        idx, images, labels = ((self.train_idx, self.source.images, self.source.labels) if split == "train"
                               else (self.test_idx, self.source.test_images, self.source.test_labels))
        idx = idx if indices is None else indices
        return Objective(model, images[idx], labels[idx], mean=self.source.mean, std=self.source.std, loss=self.loss,
                         bn=bn or s.bn, params=params or s.params, precision=precision or s.precision,
                         batch_size=s.batch_size, device=self.device, group=self.group, **kw)

    def curvature_objective(self, model, indices, seed: int, obj: Objective) -> Objective:
        """The objective curvature is measured on: a balanced ``curvature_subset`` of the examples, or ``obj``."""
        s = self.settings
        if s.curvature_subset is not None and s.curvature_subset < len(indices):
            within = balanced_subset(self.source.labels[indices], s.curvature_subset, seed + 2)
            return self.objective(model, indices=indices[within])
        return obj

    def context(self, epoch, objective: Objective, split="train", repeat: int | None = None) -> dict:
        """What the numbers were computed on (part of every result's key)."""
        ctx = {"dataset": self.source.dataset_name, "split": split, "arch": self.source.arch, "epoch": epoch,
               "checkpoint": self.checkpoint_name(epoch), "subset_seed": self.settings.seed,
               "checkpoint_sha256": self.source.fingerprint(epoch),
               "label_noise": self.source.train_config.get("label_noise", 0.0),
               "train_seed": self.source.train_config.get("seed"), **objective.describe()}
        if repeat is not None:
            n = len(self.repeat_indices(repeat))
            ctx.update({"repeat": repeat, "repeats": self.settings.repeats, "repeat_mode": self.repeat_mode,
                        "direction_seed": self.direction_seed(repeat),
                        "bn_statistics": (f"recomputed at θ over the {n} analyzed training examples"
                                          if self.settings.bn_stats == "recompute"
                                          else "the checkpoint's running statistics")})
        return ctx

    def checkpoint_name(self, epoch) -> str:
        """The checkpoint relative to the run (so a moved run keeps its results), else absolute."""
        path = self.source.checkpoints.get(epoch)
        if path is None:
            return ""
        try:
            return str(Path(path).resolve().relative_to(self.run.path.resolve()))
        except ValueError:
            return str(Path(path).resolve())

    # ------------------------------------------------------------------ models
    def load_checkpoint(self, epoch: int):
        """The checkpoint's model as stored (its own batch-norm statistics)."""
        return self.source.load_model(epoch)[0]

    def model_at(self, epoch: int, indices: torch.Tensor):
        """The checkpoint's model with the batch-norm statistics the settings ask for.

        Returns (model, the checkpoint's own statistics, the statistics of θ). The latter are the
        exact statistics of the network at θ over ``indices`` (see ``exact_bn_statistics``); with
        ``bn_stats='recompute'`` the model holds them, so F is the loss of the network at θ and
        not of a lagging running average.
        """
        model = self.load_checkpoint(epoch)
        stored = {n: b.detach().clone() for n, b in model.named_buffers()}
        model = model.to(self.device)
        x = normalize(self.source.images[indices].to(self.device), self.source.mean, self.source.std, torch.float32)
        exact_bn_statistics(model, x)
        recomputed = {n: b.detach().cpu().clone() for n, b in model.named_buffers()}
        model = model.cpu()
        if self.settings.bn_stats == "checkpoint":
            model.load_state_dict(stored, strict=False)
        return model.eval(), stored, recomputed

    def check_finite(self, value: float, epoch) -> None:
        if not math.isfinite(value):
            raise LandscapeError(f"F is {value} at the checkpoint of epoch {epoch}: the weights are not usable")

    # ------------------------------------------------------------------ the schedule
    def bar(self, total: int | None, desc: str):
        """A progress bar for one piece's points, below the overall bar."""
        return tqdm(total=total, desc=desc, unit="pt", disable=not self.progress, leave=False, dynamic_ncols=True,
                    position=1)

    def run_all(self) -> None:
        with self.group.on_rank0(lambda: run_lock(self.run.path, self.echo, "landscape analyze")):
            self._run_all()

    def _run_all(self) -> None:
        epochs = self.selected_epochs()
        # the estimate costs a forward pass, a gradient and an HVP: only for a user watching, or a budget
        seconds = (budget.estimate(self, epochs, self.budget_minutes)
                   if self.progress or self.budget_minutes is not None else {})
        s = self.settings
        with tqdm(total=max(1, round(sum(seconds.values()))), desc="analysis", unit="s", disable=not self.progress,
                  dynamic_ncols=True, position=0, bar_format="{l_bar}{bar}| {elapsed}<{remaining} (estimated)") as overall:
            for epoch in epochs:
                started = time.perf_counter()
                self.analyze_epoch(epoch, lambda name: overall.update(seconds.get(name, 0.0) / len(epochs) / s.repeats))
                self.echo(f"epoch {epoch}: analysis done in {time.perf_counter() - started:.1f} s")
            for name in s.measurements:
                if REGISTRY[name].scope == PER_RUN and len(self.source.checkpoints) >= 2:
                    for repeat in range(s.repeats):
                        REGISTRY[name].run_once(self, repeat)
                    overall.update(seconds.get(name, 0.0))

    def analyze_epoch(self, epoch: int, done=lambda name: None) -> None:
        """Every requested measurement at one checkpoint, once per repeat (pictures on repeat 0 only)."""
        s = self.settings
        for repeat in range(s.repeats):
            active = [REGISTRY[m] for m in REGISTRY if m in s.measurements and REGISTRY[m].scope != PER_RUN
                      and REGISTRY[m].runs_at(repeat)]
            if not active:
                continue
            at = At(self, epoch, repeat, curvature_needed(s.measurements, repeat))
            for m in active:
                m.run(at)
                done(m.name)

