"""The verdict report of the small real run built in test_plots.py: its numbers are those of the
result files, verdicts follow the stated thresholds, absent inputs are 'not measured', damaged
ones give a one-line error naming the file, several runs merge into one report."""

from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from landscape import report as R
from landscape import verdicts as V
from landscape.cli import main
from landscape.errors import LandscapeError

from cases import build_analyzed_run, build_figured_run, copy_run

slow = pytest.mark.slow  # real images, trained runs: `pytest -m "not slow"` skips them


@pytest.fixture(scope="session")
def analyzed_run(tmp_path_factory, data_root, cache_dir) -> Path:
    return build_analyzed_run(tmp_path_factory, data_root, cache_dir)


@pytest.fixture(scope="session")
def reported(tmp_path_factory, data_root, cache_dir):
    """A copy of the run whose figures are drawn, with its report written: (run, write_report's result)."""
    source, _ = build_figured_run(tmp_path_factory, data_root, cache_dir)
    run = copy_run(source, tmp_path_factory.mktemp("reported") / "resnet8_cifar10")
    before = {p.name: p.stat().st_mtime_ns for p in (run / "figures").iterdir()}
    written = R.write_report(run)
    after = {p.name: p.stat().st_mtime_ns for p in (run / "figures").iterdir()}
    assert before == after  # figures up to date: embedded, not redrawn
    return run, written


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _claims(data) -> dict:
    return {c.id: c for c in data.claims}


@slow
def test_verdict_numbers_equal_the_result_files(analyzed_run):
    run = analyzed_run
    data = V.run_verdicts(run)
    claims = _claims(data)
    assert list(claims) == list(V.CLAIMS)
    epochs = [0, 1, 2]
    analysis = run / "analysis"

    # gradient dominance: c = min ratio over checkpoints and track points with F above the floor
    dom = {e: _json(analysis / f"epoch_{e:04d}" / "dominance.json") for e in epochs}
    track = [json.loads(line) for line in (run / "track.jsonl").read_text().splitlines()]
    floor = V.DOMINANCE_F_FLOOR
    c_ck = min(d["result"]["ratio"] for d in dom.values() if d["result"]["F"] > floor)
    c_tr = min(r["grad_sq"] / r["F"] for r in track if r["F"] > floor)
    c_hid = min([d["result"]["ratio_hidden"] for d in dom.values() if d["result"]["F"] > floor]
                + [r["grad_sq_hidden"] / r["F"] for r in track if r["F"] > floor])
    g = claims["gradient_dominance"]
    assert g.numbers["c_spread"]["min"] == pytest.approx(c_ck, rel=1e-12)  # one repeat
    assert all(r["bn_policy"] == "frozen (statistics of θ on the tracked examples)" for r in track)  # judged
    assert g.numbers["c_track"] == pytest.approx(c_tr, rel=1e-12)
    assert g.numbers["c"] == pytest.approx(min(c_ck, c_tr), rel=1e-12)
    assert g.numbers["c_hidden"] == pytest.approx(c_hid, rel=1e-12)
    assert g.numbers["floor"] == floor
    assert g.verdict == (V.HOLDS if 0 < g.numbers["c"] < math.inf else V.FAILS)
    ctx = dom[0]["context"]
    for key in ("dataset", "examples", "param_subset", "bn_policy", "precision", "subset_seed", "train_seed"):
        assert g.settings[key] == ctx[key], key
    assert g.settings["epochs"] == epochs

    # semi-smoothness: the largest a/‖∇F‖ over every resolved envelope (looseness is no gate); a/√F beside it
    probes = [_json(p) for p in sorted(analysis.glob("epoch_*/probe_*.json"))]
    assert len(probes) == 3 * 3 + 2 * 2  # 3 directions everywhere, Hessian ones where curvature ran
    s = claims["semi_smoothness"]
    fits = [p["result"] for p in probes]
    good = [r for r in fits if r["fit"]["resolved"]]
    assert all(r["fit"]["active"] >= 1 for r in good)  # envelopes, each touching a point
    assert s.numbers["probes"] == len(probes) and s.numbers["judged"] == len(good)
    assert len(s.numbers["not_measured"]) == sum(not r["fit"]["resolved"] for r in fits)
    # an a below its probe's resolution (fit.a_resolved False) enters as its bound a_resolution/‖∇F‖: never 0
    kink = [(r["a_over_grad_norm"], r["a_over_sqrt_F"], False) if r["fit"]["a_resolved"] else
            (r["fit"]["a_resolution"] / r["grad_norm"], r["fit"]["a_resolution"] / math.sqrt(r["F"]), True)
            for r in good]
    if good:
        lim = V.SMOOTHNESS_MAX_A_OVER_GRAD_NORM
        over = [k for k in kink if not k[2] and k[0] > lim]
        assert s.numbers["max_a_over_grad_norm"] == pytest.approx(max(over or kink)[0], rel=1e-12)
        assert s.numbers["max_a_over_sqrt_F"] == pytest.approx(max(k[1] for k in kink), rel=1e-12)
        assert s.numbers["max_b"] == pytest.approx(max(r["fit"]["b"] for r in good), rel=1e-12)
        assert s.verdict == (V.FAILS if over else V.INCONCLUSIVE if max(kink)[0] > lim else V.HOLDS)
    else:
        assert s.verdict == V.INCONCLUSIVE
    shown = lambda r: (r["fit"]["a"] if not r["fit"]["resolved"] or r["fit"]["a_resolved"]
                       else f"< {V.fmt(r['fit']['a_resolution'], 3)} (not resolved)")
    key = lambda row: (row[0], str(row[1]), str(row[2]))
    assert sorted(((row["epoch"], row["a"], row["b"]) for row in s.rows), key=key) == sorted(
        ((p["context"]["epoch"], shown(p["result"]), p["result"]["fit"]["b"]) for p in probes), key=key)

    # second-order help: per checkpoint, the extra of the most negative direction beyond its controls'
    o = claims["second_order"]
    tests = {e: _json(analysis / f"epoch_{e:04d}" / "second_order.json")["result"] for e in (0, 2)}
    assert [row["epoch"] for row in o.rows] == [0, 2]
    lim = V.SECOND_ORDER_MAX_EXTRA_FRACTION
    for row in o.rows:
        t = tests[row["epoch"]]
        assert row["F"] == pytest.approx(t["F"], rel=1e-12) and len(t["controls"]) == 4
        extras = [t["extra_fraction"]] + [c["extra_fraction"] for c in t["controls"].values()]
        if not any(isinstance(v, dict) for v in extras):  # one repeat: no spread
            assert row["attributable mean"] == pytest.approx(extras[0] - max(extras[1:]), rel=1e-9, abs=1e-15)
            assert row["status"] == ("helps" if extras[0] - max(extras[1:]) > lim else "little help")
    statuses = {row["status"] for row in o.rows}
    if "helps" in statuses:
        assert o.verdict == V.FAILS
    elif statuses == {"little help"}:
        assert o.verdict in (V.HOLDS, V.INCONCLUSIVE)  # an unresolved eigenpair or bracket can still say inconclusive
    else:
        assert o.verdict == V.INCONCLUSIVE

    # interpolation init → final: largest bump and F(init) from the stored files
    i = claims["interpolation"]
    stored = _json(analysis / "interpolation" / "epoch_0000_to_0002.json")
    arrays = np.load(analysis / "interpolation" / "epoch_0000_to_0002.npz")
    f_init = float(arrays["train_loss"][np.argmin(np.abs(arrays["alpha"]))])
    assert (i.numbers["from_epoch"], i.numbers["to_epoch"]) == (0, 2)
    assert i.numbers["largest_bump"] == stored["result"]["train"]["largest_bump"]
    assert i.numbers["monotone"] == stored["result"]["train"]["monotone"]
    assert i.numbers["F_init"] == f_init
    assert i.numbers["limit"] == pytest.approx(V.INTERPOLATION_MAX_BUMP_FRACTION * f_init)
    assert i.verdict == (V.HOLDS if i.numbers["largest_bump"] <= i.numbers["limit"] else V.FAILS)
    assert i.settings["interpolation_bn"] == stored["settings"]["bn_interpolation"]
    assert len(i.rows) == 3

    # accuracy: the last line of log.jsonl
    a = claims["accuracy"]
    last = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert a.verdict == V.MEASURED
    assert (a.numbers["train_acc"], a.numbers["test_acc"], a.numbers["epoch"]) == \
        (last["train_acc"], last["test_acc"], last["epoch"])
    assert a.numbers["checkpoint_train_acc"] == dom[2]["result"]["train_acc"]


@slow
def test_failing_claims_are_reported_with_their_numbers(analyzed_run):
    run = V.as_run(analyzed_run)
    s = V.smoothness_verdict(run, threshold_value=-1.0)  # every resolved probe is over it, and listed
    assert s.verdict == (V.FAILS if s.numbers["judged"] > s.numbers.get("bounds", 0) else V.INCONCLUSIVE)  # bounds: no fail
    resolved = [r for r in s.rows if not str(r["fit"]).startswith("not measured")]
    assert len(s.numbers["over_threshold"]) == len(resolved)
    i = V.interpolation_verdict(run, fraction=-1.0)
    assert i.verdict == V.FAILS and "largest bump" in i.summary
    o = V.second_order_verdict(run, fraction=-1.0)
    assert o.verdict == V.FAILS and o.numbers["failing_epochs"] == [0, 2]  # extra ≥ 0 > −1·d_grad
    g = V.dominance_verdict(run, floor=1e9)
    assert g.verdict == V.NOT_MEASURED and "floor" in g.summary


def _verdict_table(md: str) -> dict[str, list[str]]:
    """The rows of the '## Verdicts' table: claim title -> cells."""
    section = md.split("## Verdicts", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| claim"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0]] = cells[1:]
    return rows


@slow
def test_report_files(reported):
    run, written = reported
    assert written["markdown"] == run / "report.md" and written["html"] == run / "report.html"
    md = written["markdown"].read_text()
    data = V.run_verdicts(run)
    table = _verdict_table(md)
    assert list(table) == [c.title for c in data.claims]
    for c in data.claims:
        verdict, numbers, threshold, computed_on = table[c.title]
        assert verdict.lower() == c.verdict
        assert numbers == c.summary and threshold == c.threshold
    g = _claims(data)["gradient_dominance"]
    assert f"c = {V.fmt(g.numbers['c'], 4)}" in table[g.title][1]
    assert "n=16 (subset seed 0)" in table[g.title][3] and "BN frozen" in table[g.title][3]
    assert "fp32" in table[g.title][3] and "params all" in table[g.title][3]
    for name in ("SMOOTHNESS_MAX_A_OVER_GRAD_NORM = 0.1", "SECOND_ORDER_MAX_EXTRA_FRACTION = 0.1",
                 "INTERPOLATION_MAX_BUMP_FRACTION = 0.001", "DOMINANCE_F_FLOOR = 0.01"):
        assert name in md
    assert "](figures/surface_3d.png)" in md
    # report.json holds the same plain data
    assert _json(run / "report.json")["claims"][0]["numbers"]["c"] == pytest.approx(g.numbers["c"])


@slow
def test_html_is_self_contained(reported):
    run, written = reported
    page = written["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == 12 and all(s.startswith("data:image/png;base64,") for s in sources)
    with Image.open(io.BytesIO(base64.b64decode(sources[0].split(",", 1)[1]))) as im:
        assert im.format == "PNG"
    assert "href=" not in page
    for c in V.run_verdicts(run).claims:
        assert R._inline(c.summary) in page


@slow
def test_missing_inputs_are_not_measured(analyzed_run, tmp_path):
    run = copy_run(analyzed_run, tmp_path / "run")
    shutil.rmtree(run / "analysis")
    (run / "track.jsonl").unlink()
    claims = _claims(V.run_verdicts(run))
    assert [claims[c].verdict for c in V.CLAIMS] == [V.NOT_MEASURED] * 6 + [V.MEASURED]
    written = R.write_report(run)
    assert {p.stem for p in (run / "figures").glob("*.png")} == {"training"}
    table = _verdict_table(written["markdown"].read_text())
    assert [v[0] for v in table.values()] == ["not measured"] * 6 + ["measured"]


@slow
@pytest.mark.parametrize("relpath", ["analysis/epoch_0001/probe_neg_gradient.json", "analysis/epoch_0000/dominance.json",
                                     "analysis/interpolation/epoch_0000_to_0001.json"])
def test_damaged_file_is_a_one_line_error(analyzed_run, tmp_path, relpath):
    run = copy_run(analyzed_run, tmp_path / "run")
    path = run / relpath
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(LandscapeError, match="damaged result file") as info:
        R.write_report(run, figures=False)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    result = CliRunner().invoke(main, ["report", str(run), "--figures", "keep"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] == [f"Error: {info.value}"]
    assert not (run / "report.md").exists()


@slow
def test_combined_report(reported, tmp_path):
    run, _ = reported
    cells = [copy_run(run, tmp_path / "repro" / name) for name in ("resnet8_cifar10", "resnet8_cifar10_noisy")]
    # the second cell holds training logs and dominance only: its figures are redrawn (2 of them)
    shutil.rmtree(cells[1] / "analysis" / "interpolation")
    shutil.rmtree(cells[1] / "analysis" / "trajectory")
    for pattern in ("*surface.*", "probe_*", "curvature.*", "second_order.*", "spectrum.*"):
        for p in (cells[1] / "analysis").rglob(pattern):
            p.unlink()
    result = CliRunner().invoke(main, ["report", *map(str, cells)])
    assert result.exit_code == 0, result.output
    assert "resnet8_cifar10_noisy: Monotone interpolation from initialization to the solution (train loss): " \
           "not measured" in result.output
    md = (tmp_path / "repro" / "report.md").read_text()
    assert "## Cell resnet8_cifar10\n" in md and "## Cell resnet8_cifar10_noisy\n" in md
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in summary.splitlines() if line.startswith("| resnet8")]
    per_cell, per_claim = rows[:2], rows[2:]
    assert len(per_claim) == 2 * len(V.CLAIMS)
    assert "not measured" in per_cell[1] and "not measured" not in per_cell[0].split("|")[4]
    assert "](resnet8_cifar10/figures/dominance.png)" in md
    page = (tmp_path / "repro" / "report.html").read_text()
    assert "data:image/png;base64," not in page and len(page.encode()) < 5_000_000
    assert 'src="resnet8_cifar10_noisy/figures/dominance.png"' in page
    data = _json(tmp_path / "repro" / "report.json")
    assert [c["cell"] for c in data["cells"]] == ["resnet8_cifar10", "resnet8_cifar10_noisy"]
    # the library call with an explicit folder gives the same sections
    out = R.write_combined_report(tmp_path / "elsewhere", cells, figures=False)
    assert "## Cell resnet8_cifar10_noisy" in out["markdown"].read_text()
    help_text = CliRunner().invoke(main, ["report", "--help"]).output
    assert "--out" in help_text and "RUN_DIRS" in help_text


@slow
def test_a_report_with_another_floor_redraws_the_dominance_figure(analyzed_run, tmp_path):
    """Fails while the report's freshness check compared input files only (the figure of floor 0.01 was kept)."""
    run = copy_run(analyzed_run, tmp_path / "run")
    R.write_report(run, floor=0.01)
    first = (run / "figures" / "dominance.png").read_bytes()
    R.write_report(run, floor=0.5)
    assert json.loads((run / "figures" / "figures.json").read_text())["floor"] == 0.5
    assert (run / "figures" / "dominance.png").read_bytes() != first


# ============================================================================ the verdict summary (fast)
REPO = Path(__file__).resolve().parents[1]
SUMMARIES = {"quick": REPO / "figures" / "quick", "paper-cpu": REPO / "figures" / "paper-cpu"}


def _marked(text: str, name: str) -> str:
    """The README text between <!-- summary:NAME --> and the next <!-- /summary -->."""
    start = text.index(f"<!-- summary:{name} -->\n") + len(f"<!-- summary:{name} -->\n")
    return text[start:text.index("<!-- /summary -->", start)]


@pytest.mark.parametrize("name", sorted(SUMMARIES))
def test_readme_result_tables_are_generated_from_the_committed_reports(name):
    """Fails when someone edits a README result table by hand, or commits a report.json without regenerating it:
    `landscape report figures/NAME --markdown-summary` prints the section."""
    readme = (REPO / "README.md").read_text()
    expected = R.markdown_summary(R.read_report_json(SUMMARIES[name]))
    assert _marked(readme, name) == expected
    result = CliRunner().invoke(main, ["report", str(SUMMARIES[name]), "--markdown-summary"])
    assert result.exit_code == 0 and result.output == expected


SWEEP_SUMMARIES = {f"sweep-{name}": REPO / "figures" / "sweep" / name
                   for name in ("theorem", "theorem-n", "theorem-depth", "resnet20")}


@pytest.mark.parametrize("name", sorted(SWEEP_SUMMARIES))
def test_readme_sweep_tables_are_generated_from_the_committed_sweeps(name):
    """The README's sweep tables are `landscape report figures/sweep/NAME --markdown-summary` of the committed
    sweep.json: a hand edit or a sweep.json committed without regenerating them fails here."""
    from landscape.sweep import read_sweep_summary
    from landscape.sweep_report import sweep_markdown_summary

    readme = (REPO / "README.md").read_text()
    assert _marked(readme, name) == sweep_markdown_summary(read_sweep_summary(SWEEP_SUMMARIES[name]))


def _claim(cid: str, verdict: str, **numbers) -> dict:
    return {"id": cid, "title": cid.replace("_", " ") + ": the claim", "verdict": verdict, "summary": "s; t",
            "numbers": numbers}


def _report_json() -> dict:
    spread = {"mean": 5.0, "std": 1.0, "min": 4.0, "max": 6.0, "n": 3}
    return {"name": "run", "claims": [
        _claim("gradient_dominance", V.HOLDS, c=2.0, margin=2000.0, threshold=1e-3, c_spread=spread),
        _claim("semi_smoothness", V.FAILS, max_a_over_sqrt_F=0.2, margin=2.0, threshold=0.1, per_repeat=spread),
        _claim("second_order", V.INCONCLUSIVE, worst_extra_fraction=0.05, fraction=0.1, margin=0.5,
               per_epoch={"1": {"extra_fraction": {"mean": 0.02, "min": 0.01, "max": 0.05, "std": 0.01, "n": 2}},
                          "2": {"extra_fraction": {"mean": 0.04, "min": 0.04, "max": 0.04, "std": 0.0, "n": 1}}}),
        _claim("interpolation", V.NOT_MEASURED),
        _claim("star_convexity", V.FAILS, holds_fraction=0.5, checkpoints=4,
               min_ratio={"mean": "nan", "std": "nan", "min": "nan", "max": "nan", "n": 0}),
    ]}


def test_verdict_table_has_one_row_per_claim_with_statistic_margin_spread_and_n():
    [(kind, head, rows)] = R.summary_tables(_report_json())
    assert kind == "table" and head[:2] == ["claim", "verdict"] and head[-1] == "n"
    assert [r[1] for r in rows] == [V.HOLDS, V.FAILS, V.INCONCLUSIVE, V.NOT_MEASURED, V.FAILS]
    assert rows[0][2:] == ["c = 2", "2e+03× the threshold 0.001", "5 ± 1 [4, 6]", "3 repeats"]
    assert rows[1][2:] == ["max a/√F = 0.2", "2× the limit 0.1", "5 ± 1 [4, 6]", "3 repeats"]
    # over all 3 tests: mean (0.02·2 + 0.04)/3, extremes of the checkpoints
    assert rows[2][2:] == ["worst extra/d_grad = 5%", "0.5× the limit 10%", "2.67% [1%, 5%] over all tests", "3 tests"]
    assert rows[3][2:] == ["s", "—", "—", "—"]           # not measured: its summary, no numbers
    assert rows[4][3:5] == ["—", "—"]                      # no finite ratio: no margin and no spread, never 'nan'
    assert not re.search(r"\bnan\b", R.render_markdown(R.summary_tables(_report_json())))


def test_html_report_opens_with_the_coloured_verdict_table():
    blocks = R.report_header("t") + [("h", 2, "Summary")] + R.summary_tables(_report_json())
    page = R.render_html(blocks, "t")
    first_table = page.split("<table>", 1)[1].split("</table>", 1)[0]
    assert first_table.count("<tr>") == 1 + 5
    classes = re.findall(r'<td class="([a-z-]+)">', first_table)
    assert classes == ["holds", "fails", "inconclusive", "not-measured", "fails"]
    for cls in ("holds", "fails", "inconclusive", "not-measured"):
        assert f"td.{cls}{{background" in page


def test_combined_summary_has_a_per_cell_table():
    one, two = _report_json(), _report_json()
    two["claims"][0]["verdict"] = V.FAILS
    per_cell, table = R.summary_tables({"cells": [{"cell": "a", **one}, {"cell": "b", **two}]})
    assert [r[0] for r in per_cell[2]] == ["a", "b"] and per_cell[2][1][1] == "fails (c = 2)"
    assert len(table[2]) == 10 and table[1][0] == "cell"


def test_combined_html_links_figures_and_stays_small(tmp_path):
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (1800, 2400, 3), dtype=np.uint8))
    blocks = []
    for k in range(4):
        path = tmp_path / "cell" / "figures" / f"fig{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        noise.save(path)
        blocks.append(("img", path, f"figure {k}", f"cell/figures/fig{k}.png"))
    linked = R.render_html(blocks, "t", embed=False)
    assert "base64" not in linked and re.findall(r'src="([^"]+)"', linked) == [f"cell/figures/fig{k}.png" for k in range(4)]
    # embedding: downscaled to EMBED_MAX_WIDTH, and past the budget the rest is linked, so the page stays < 5 MB
    embedded = R.render_html(blocks, "t", embed=True)
    assert len(embedded.encode()) < 5_000_000
    sources = re.findall(r'src="([^"]+)"', embedded)
    assert sources[0].startswith("data:image/png;base64,") and sources[-1] == "cell/figures/fig3.png"
    with Image.open(io.BytesIO(base64.b64decode(sources[0].split(",", 1)[1]))) as im:
        assert im.width == R.EMBED_MAX_WIDTH


def test_markdown_summary_of_a_folder_without_report_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path), "--markdown-summary"])
    assert result.exit_code == 1 and "Traceback" not in result.output and "no report.json" in result.output
    (tmp_path / "report.json").write_text("{")
    with pytest.raises(LandscapeError, match="damaged report file"):
        R.read_report_json(tmp_path)


def test_verdict_table_reads_the_judged_statistics_of_newer_reports():
    """Reports written after the probes/second-order change judge a/‖∇F‖ and the attributable help."""
    spread = {"mean": 0.5, "std": 0.1, "min": 0.4, "max": 0.6, "n": 2}
    smooth = _claim("semi_smoothness", V.FAILS, max_a_over_grad_norm=0.6, max_a_over_sqrt_F=9.0, margin=1.2,
                    threshold=0.5, per_repeat=spread)
    second = _claim("second_order", V.FAILS, worst_attributable=0.2, worst_attributable_sd=0.05, worst_epoch=3,
                    fraction=0.1, margin=2.0, checkpoints=4)
    unjudged = _claim("second_order", V.INCONCLUSIVE, worst_attributable=float("nan"), fraction=0.1, checkpoints=4)
    assert R.claim_headline(smooth)[2:4] == ["max a/‖∇F‖ = 0.6", "1.2× the limit 0.5"]
    assert R.claim_headline(second)[2:] == ["largest attributable help = 20% of d_grad (epoch 3)", "2× the limit 10%",
                                            "± 5% (sd over repeats)", "4 checkpoints"]
    assert R.claim_headline(unjudged)[2:] == ["—", "—", "—", "4 checkpoints"]


# ============================================================================ verdicts across training seeds
def _seed_cell(seed: int, smooth_verdict: str, a: float, interpolation: bool = True) -> dict:
    """One seed's cell of a combined report.json: dominance holds, semi-smoothness as given, the interpolation
    measured only when asked."""
    name = "resnet32_cifar10" + (f"_seed{seed}" if seed else "")
    return {"cell": name, "name": name, "train": {"arch": "resnet32", "dataset": "cifar10", "seed": seed},
            "claims": [_claim("gradient_dominance", V.HOLDS, c=2.0, margin=2000.0, threshold=1e-3),
                       _claim("semi_smoothness", smooth_verdict, max_a_over_grad_norm=a, margin=a / 0.1,
                              threshold=0.1),
                       _claim("interpolation", V.HOLDS if interpolation else V.NOT_MEASURED, largest_bump=0.0,
                              margin=0.0, limit=0.01)]}


def test_seeds_that_agree_give_their_verdict_and_seeds_that_differ_are_inconclusive():
    cells = [_seed_cell(0, V.HOLDS, 0.04), _seed_cell(1, V.HOLDS, 0.05, False), _seed_cell(2, V.FAILS, 0.13, False)]
    [group] = R.across_seeds(cells)
    assert group["cell"] == "resnet32_cifar10" and group["seeds"] == [0, 1, 2]
    claims = {c["id"]: c for c in group["claims"]}
    assert (claims["gradient_dominance"]["verdict"], claims["gradient_dominance"]["why"]) == \
        (V.HOLDS, "seeds 0, 1, 2 agree")
    assert claims["semi_smoothness"]["verdict"] == V.INCONCLUSIVE
    assert claims["semi_smoothness"]["why"] == ("seed 0 holds (max a/‖∇F‖ = 0.04), seed 1 holds (0.05), "
                                                "seed 2 fails (0.13)")
    assert (claims["interpolation"]["verdict"], claims["interpolation"]["why"]) == (V.HOLDS, "seed 0 only")
    # the summary (what the README embeds) opens with one line per claim: the combined verdict and each seed's
    blocks = R.summary_tables({"cells": cells})
    (_, text), (_, head, rows) = blocks[:2]
    assert "Across training seeds: resnet32_cifar10" in text and head == ["claim", "across seeds", "seed 0",
                                                                          "seed 1", "seed 2"]
    assert rows[1][:2] == ["semi-smoothness", "inconclusive: " + claims["semi_smoothness"]["why"]]
    assert rows[1][4] == "fails (max a/‖∇F‖ = 0.13)" and rows[2][1:] == [
        "holds (seed 0 only)", "holds (largest bump = 0)", V.NOT_MEASURED, V.NOT_MEASURED]
    page = R.render_html(blocks, "t", embed=False)
    assert '<td class="inconclusive">inconclusive: seed 0 holds' in page
    assert R.markdown_summary({"cells": cells}).count("Across training seeds") == 1


def test_cells_of_other_settings_or_one_seed_are_not_judged_across_seeds():
    other = _seed_cell(1, V.FAILS, 0.2)
    other["train"]["dataset"] = "cifar100"
    assert R.across_seeds([_seed_cell(0, V.HOLDS, 0.04), other]) == []       # another base cell
    assert R.across_seeds([_seed_cell(0, V.HOLDS, 0.04), _seed_cell(0, V.FAILS, 0.2)]) == []  # copies, one seed
    assert R.combined_verdict([{"seed": 0, "verdict": V.NOT_MEASURED, "statistic": "s"}]) == (V.NOT_MEASURED,
                                                                                           "on no seed")
