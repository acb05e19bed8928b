"""One cell of ``reproduce`` or ``sweep``: train (or resume) unless done, analyze, draw, time each stage.

A cell is a run folder, the training configuration it must hold, the analyses to run on it and
(optionally) the figures and report to draw. Both commands run their cells through ``run_cell``,
so "done" has one meaning and the stage times one record:

* done: the folder's stored training configuration (config.json) equals the requested one in
  every setting (the whole resolved ``TrainConfig``), and training finished (its last logged
  epoch reached the target loss or the last epoch, and that epoch's checkpoint is on disk);
* a folder holding a run made with other settings is never reused: ``check_cell`` refuses it in
  one line naming each differing setting, before anything is written (nothing is deleted);
* timings.json maps each cell's name to its totals per stage (``STAGES``) and ``invocations``,
  the stage times of every command that worked on it (a stage skipped because done is absent).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .analysis import Analysis
from .errors import LandscapeError
from .results import RunDir, atomic_write_json, read_json, read_jsonl, read_run_config
from .runtime import Runtime
from .settings import AnalysisSettings
from .train import TrainConfig, train

STAGES = ("train_s", "analysis_s", "figures_report_s")


@dataclass
class CellPlan:
    """What one cell is: its name (in messages and timings.json), its folder and training
    configuration, the analyses to run once trained (a function of the trained run, which knows its
    checkpoints) and, optionally, what to draw from its results (figures and report)."""

    name: str
    run_dir: Path
    train: TrainConfig
    analyses: Callable[[RunDir], list[AnalysisSettings]]
    draw: Callable[[Path], object] | None = None


def _comparable(value):
    """A value as config.json stores it (tuples as lists), so stored and requested compare equal."""
    return json.loads(json.dumps(value))


def differences(stored: dict, requested: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(setting, stored value, requested value) of every setting that differs, nested dicts flattened
    to 'outer.inner'; a setting missing on one side counts as None there."""
    found = []
    for key in sorted(set(stored) | set(requested)):
        old, new = stored.get(key), requested.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found += differences(old, new, f"{prefix}{key}.")
        elif _comparable(old) != _comparable(new):
            found.append((f"{prefix}{key}", old, new))
    return found


def refuse_other_settings(where: Path, what: str, found: list[tuple[str, object, object]]) -> None:
    """Raise the one-line refusal for a folder made with other settings (``found`` from ``differences``)."""
    if found:
        listed = "; ".join(f"{key}: stored {old!r}, requested {new!r}" for key, old, new in found)
        raise LandscapeError(f"{where} holds {what} made with other settings ({listed}); it is left as it is: "
                             f"choose another --out for these settings")


def stored_train_config(run: RunDir) -> dict | None:
    """The resolved training configuration a run folder holds (every field, defaults for fields it
    predates), or None when the folder holds no run yet."""
    if not run.is_run():
        return None
    stored = read_run_config(run.config).get("train")
    if not isinstance(stored, dict):
        raise LandscapeError(f"{run.path} holds the analysis of an external checkpoint, not a training run; "
                             f"choose another --out")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    defaults = TrainConfig(arch=stored.get("arch", ""), dataset=stored.get("dataset", "")).to_dict()
    return {**defaults, **{k: v for k, v in stored.items() if k in fields}}


def check_cell(plan: CellPlan) -> None:
    """Refuse (one line) a cell folder that holds a run of another training configuration."""
    stored = stored_train_config(RunDir(plan.run_dir))
    if stored is not None:
        refuse_other_settings(plan.run_dir, "a run", differences(stored, plan.train.resolved().to_dict()))


def training_finished(run: RunDir, config: TrainConfig) -> bool:
    """The run's last logged epoch reached the target loss or the last epoch, and is checkpointed."""
    log = read_jsonl(run.log)
    if not log:
        return False
    last = log[-1]
    epoch = int(last["epoch"])
    return (bool(last.get("reached_target")) or epoch >= config.resolved().epochs) and run.checkpoint(epoch).is_file()


def is_done(plan: CellPlan) -> bool:
    """The one meaning of a trained cell: the stored configuration is the requested one, and training finished."""
    run = RunDir(plan.run_dir)
    stored = stored_train_config(run)
    return (stored is not None and not differences(stored, plan.train.resolved().to_dict())
            and training_finished(run, plan.train))


def run_cell(plan: CellPlan, runtime: Runtime) -> dict[str, float]:
    """Train (or resume) the cell unless done, run its analyses, draw; returns the seconds of each stage run.

    Refuses a folder holding a run of other settings (``check_cell``) before anything is written.
    """
    check_cell(plan)
    run, times = RunDir(plan.run_dir), {}
    started = time.perf_counter()
    if not is_done(plan):
        train(plan.train, plan.run_dir, runtime, resume=run.is_run())
        times["train_s"] = time.perf_counter() - started
    started = time.perf_counter()
    for settings in plan.analyses(run):
        Analysis(plan.run_dir, settings, runtime).run_all()
    times["analysis_s"] = time.perf_counter() - started
    if plan.draw is not None:
        started = time.perf_counter()
        plan.draw(plan.run_dir)
        times["figures_report_s"] = time.perf_counter() - started
    return times


def record_timings(path: Path, name: str, times: dict[str, float]) -> dict:
    """Append one command's stage times of cell ``name`` to timings.json at ``path`` and update its
    totals over every invocation; returns the cell's record."""
    timings = read_json(path) if path.is_file() else {}
    record = timings.setdefault(name, {})
    record.setdefault("invocations", []).append(dict(times))
    for stage in STAGES:
        if any(stage in inv for inv in record["invocations"]):
            record[stage] = sum(inv.get(stage, 0.0) for inv in record["invocations"])
    atomic_write_json(timings, path)
    return record
