"""The measurement registry: every measurement declared once, complete, and named in one module only."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import landscape
from landscape.budget import Sizes, UnitCosts, costed_settings, plan
from landscape.measurements import PER_RUN, REGISTRY, Measurement, curvature_needed
from landscape.plots import _SKIP_REASONS, FIGURES
from landscape.settings import MEASUREMENTS, AnalysisSettings

PACKAGE = Path(landscape.__file__).parent


def test_the_registry_names_every_measurement_the_settings_accept():
    assert set(REGISTRY) == set(MEASUREMENTS)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_measurement_declares_its_file_figure_cost_and_computation(name):
    m = REGISTRY[name]
    assert m.name == name and m.file.endswith(".json")
    assert m.figure in FIGURES and _SKIP_REASONS[m.figure] == m.hint and m.hint
    computes = type(m).run_once if m.scope == PER_RUN else type(m).run
    assert computes is not getattr(Measurement, computes.__name__)  # overridden, not the abstract one
    s = AnalysisSettings(measurements=[name], repeats=2)
    n = Sizes(train=64, test=32, curvature=16, checkpoints=3, all_checkpoints=4, interpolation_pairs=2)
    cost = m.cost(s, n, UnitCosts(1.0, 2.0, 3.0), curvature=True)
    assert math.isfinite(cost) and cost > 0


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_result_file_name_is_spelled_in_one_module_only(name):
    m = REGISTRY[name]
    # the name, its glob, and the text before a field as code would build it (f"probe_{..." / "probe_*")
    parts = re.split(r"\{[^}]*\}", m.file)
    generic = {"", "epoch_", "repeat_", "_to_"}  # also the checkpoint and repeat folders' names
    literals = {m.file, m.file_glob()} | {p + end for p in parts[:-1] for end in "{*" if p not in generic}
    holders = {path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py")
               for literal in literals if literal in path.read_text()}
    assert holders <= {f"measurements/{type(m).__module__.rsplit('.', 1)[-1]}.py"}, holders


def test_curvature_is_computed_where_a_measurement_needs_it():
    assert curvature_needed(["surface"], 0) and not curvature_needed(["surface"], 1)  # pictures: repeat 0 only
    assert curvature_needed(["second_order"], 3) and not curvature_needed(["probes", "dominance"], 0)


def test_the_budget_counts_curvature_only_where_it_runs():
    """With surfaces and probes over 3 repeats, the eigenpairs run on repeat 0 only (once per checkpoint).

    Fails while budget.plan counted curvature for every repeat whenever 'surface' was asked."""
    s = AnalysisSettings(measurements=["surface", "probes"], repeats=3, probe_gaussian=0, probe_filter=0, probe_steps=2)
    n = Sizes(train=10, test=10, curvature=10, checkpoints=2, all_checkpoints=2, interpolation_pairs=0)
    c = UnitCosts(forward=1.0, gradient=1.0, hvp=1.0)
    seconds = plan(s, n, c)
    assert seconds["curvature"] == REGISTRY["curvature"].cost(costed_settings(s), n, c, True) * n.checkpoints
    # probes: −∇F plus the two Hessian directions on repeat 0, −∇F alone on repeats 1 and 2
    evaluations = (2 * 8 + 1) + 3 * 4 + 2 * 2  # scout, bisections, the two ladders of probe_steps = 2
    assert seconds["probes"] == n.checkpoints * evaluations * n.train * (3 + 1 + 1)
