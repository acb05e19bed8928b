"""What a measurement declares, and the state it is computed from at one checkpoint and repeat.

A measurement is one module of this package: its name (as ``--measure`` spells it), its result
file, where it runs (every checkpoint × repeat, repeat 0 only, or once per run), whether it needs
the Hessian's eigenpairs, how it computes (``run``), what it costs (the budget reads this, so the
estimate and what runs cannot disagree), and the figure that draws it. ``analysis.Analysis``
schedules the registered measurements; ``At`` hands each one the shared inputs, computed once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:  # for type hints only; the scheduler (analysis.Analysis) and budget import this package
    from ..objective import Objective
    from ..settings import AnalysisSettings

# where a measurement runs
PER_REPEAT = "repeat"          # every analyzed checkpoint, every repeat
PER_CHECKPOINT = "checkpoint"  # every analyzed checkpoint, repeat 0 only (pictures)
PER_RUN = "run"                # once per run, over its checkpoints


class Measurement:
    """One measurement: declared once, scheduled by the analysis."""

    name: ClassVar[str]
    file: ClassVar[str]                  # its result file name (a pattern with {name} for several per folder)
    scope: ClassVar[str] = PER_REPEAT
    needs_curvature: ClassVar[bool] = False
    needs_gradient: ClassVar[bool] = False  # uses ∇F at the checkpoint (dominance computes it anyway)
    figure: ClassVar[str | None] = None  # the figure (plots.FIGURES) that draws it
    hint: ClassVar[str] = ""             # what a reader sees when the figure has no input

    def run(self, at: "At") -> None:
        """Compute (or find fresh) this measurement's pieces at one checkpoint and repeat."""
        raise NotImplementedError

    def run_once(self, analysis: "Analysis", repeat: int) -> None:
        """Compute (or find fresh) a once-per-run measurement (``scope == PER_RUN``)."""
        raise NotImplementedError

    def cost(self, s: "AnalysisSettings", n: "Sizes", c: "UnitCosts", curvature: bool) -> float:
        """Estimated seconds of one unit (a checkpoint × repeat, or the whole run for PER_RUN)."""
        raise NotImplementedError

    def file_glob(self) -> str:
        """The glob of this measurement's result files (``file`` with every field a ``*``)."""
        return re.sub(r"\{[^}]*\}", "*", self.file)

    def file_fields(self, filename: str) -> dict[str, str] | None:
        """The fields of ``file`` a result file's name holds (e.g. {'name': 'neg_gradient'}), or None.
        Integer fields (format ``d``) match digits only."""
        parts = re.split(r"\{(\w+)(?::([^}]*))?\}", self.file)
        pattern = "".join(re.escape(p) if i % 3 == 0 else
                          (f"(?P<{p}>\\d+)" if (parts[i + 1] or "").endswith("d") else f"(?P<{p}>.+?)")
                          for i, p in enumerate(parts) if i % 3 != 2)
        m = re.fullmatch(pattern, filename)
        return m.groupdict() if m else None

    def runs_at(self, repeat: int) -> bool:
        return self.scope == PER_REPEAT or (self.scope == PER_CHECKPOINT and repeat == 0)


def tag(repeat: int) -> str:
    """How messages name a repeat (nothing for repeat 0)."""
    return f" [repeat {repeat}]" if repeat else ""


class At:
    """The inputs every measurement at one checkpoint and repeat shares, each computed at most once.

    The model with the statistics of θ, the objectives over the analyzed examples, ∇F, the
    objective of the Hessian and its eigenpairs (the curvature measurement's piece, read back
    when fresh) are built on first use and kept for the other measurements.
    """

    def __init__(self, analysis: "Analysis", epoch: int, repeat: int, curvature_wanted: bool):
        self.analysis, self.epoch, self.repeat = analysis, epoch, repeat
        self.settings = analysis.settings
        self.seed = analysis.direction_seed(repeat)
        self.indices = analysis.repeat_indices(repeat)
        self.model, self.stored_buffers, self.recomputed_buffers = analysis.model_at(epoch, self.indices)
        self.out: Path = analysis.run.repeat_dir(epoch, repeat)
        self.full = analysis.objective(self.model, params="all", indices=self.indices)
        self.obj = self.full if self.settings.params == "all" else analysis.objective(self.model, indices=self.indices)
        self.theta = self.obj.theta0
        self.curvature_wanted = curvature_wanted  # some requested measurement needs the eigenpairs here
        self._cache: dict[str, Any] = {}

    @property
    def name(self) -> str:
        """'epoch E' or 'epoch E [repeat R]', for messages and progress bars."""
        return f"epoch {self.epoch}{tag(self.repeat)}"

    def context(self, objective: "Objective", split: str = "train") -> dict:
        return self.analysis.context(self.epoch, objective, split, self.repeat)

    def gradient(self) -> torch.Tensor:
        """∇F on the analyzed examples over the analyzed parameters (computed at most once)."""
        if "grad" not in self._cache:
            self._cache["grad"] = self.obj.value_and_grad(self.theta)[1]
        return self._cache["grad"]

    def offer_gradient(self, objective: "Objective", grad: torch.Tensor) -> None:
        """Keep a gradient another measurement computed anyway, if it is the one ``gradient`` means."""
        if objective is self.obj:
            self._cache["grad"] = grad

    def curvature_objective(self) -> "Objective":
        """The objective the Hessian is measured on: a balanced ``curvature_subset`` of the examples, or all."""
        if "cobj" not in self._cache:
            self._cache["cobj"] = self.analysis.curvature_objective(self.model, self.indices, self.seed, self.obj)
        return self._cache["cobj"]

    def curvature(self) -> dict | None:
        """The Hessian's extreme eigenpairs (result and vectors), or None where no requested measurement needs them."""
        if not self.curvature_wanted:
            return None
        if "curvature" not in self._cache:
            self._cache["curvature"] = self.analysis.measurement("curvature").compute(self)
        return self._cache["curvature"]
