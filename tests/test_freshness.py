"""Figure freshness: one test of staleness, keyed on every input file, the dominance floor and the epochs."""

from __future__ import annotations

from landscape.plots import MANIFEST, figures_fresh, input_fingerprint
from landscape.results import RunDir, append_jsonl, atomic_write_json


def _run_with_manifest(tmp_path, floor=0.01, epochs=None):
    run = RunDir(tmp_path / "run")
    atomic_write_json({"train": None, "data": {"dataset": "folder:x"}}, run.config)
    append_jsonl({"epoch": 1, "step": 1, "F": 1.0, "grad_sq": 2.0}, run.track)
    atomic_write_json({"run": str(run.path), "epochs": epochs, "floor": floor, "inputs": input_fingerprint(run),
                       "written": {}, "skipped": {}}, run.figures / MANIFEST)
    return run


def test_figures_are_fresh_only_for_the_same_inputs_floor_and_epochs(tmp_path):
    """Fails while freshness compared the input files alone: `report --floor 0.5` then re-used a
    dominance figure drawn with floor 0.01, and a new sharpness.jsonl did not redraw the training figure."""
    run = _run_with_manifest(tmp_path, epochs=[0, 2])
    assert figures_fresh(run, run.figures, None, 0.01) and figures_fresh(run, run.figures, [2, 0], 0.01)
    assert not figures_fresh(run, run.figures, None, 0.5)
    assert not figures_fresh(run, run.figures, [0], 0.01)
    append_jsonl({"epoch": 1, "step": 1, "sharpness": 3.0}, run.sharpness)
    assert not figures_fresh(run, run.figures, None, 0.01)


def test_no_manifest_is_never_fresh(tmp_path):
    run = RunDir(tmp_path / "empty")
    assert not figures_fresh(run, run.figures)
