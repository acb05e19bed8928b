"""Several ranks on the CPU (gloo), started here: the same numbers as one process, resume, failure.

Each test starts its ranks as fresh processes (multiprocessing 'forkserver', with the environment
torchrun would give them) and compares what they return with one process in this one.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from landscape import distributed
from landscape.curvature import HessianOperator, top_eigenpairs
from landscape.directions import gaussian_direction, gradient_direction
from landscape.objective import Objective
from landscape.runtime import Runtime
from landscape import measure

RTOL = 1e-10


# ----------------------------------------------------------------------------- launching ranks
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, timeout_s: float, out: str, fn, args) -> None:
    """One rank: torchrun's environment, the process group, ``fn(group, *args)``, its outcome saved."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      LANDSCAPE_COLLECTIVE_TIMEOUT=str(timeout_s))
    torch.set_num_threads(1)
    started = time.perf_counter()
    try:
        group = distributed.init("cpu")
        outcome = ("ok", fn(group, *args))
    except BaseException as exc:  # noqa: BLE001 - everything a rank ends with is reported
        outcome = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc())
    torch.save({"outcome": outcome, "seconds": time.perf_counter() - started}, Path(out) / f"rank{rank}.pt")
    distributed.shutdown()


def run_ranks(tmp_path: Path, fn, *args, world: int = 2, timeout_s: float = 60.0, wait_s: float = 120.0,
              allow_hung: bool = False) -> list:
    """Start ``world`` ranks running ``fn(group, *args)``; [{'outcome': ..., 'seconds': ...}] by rank
    (None for a rank that saved nothing: one that died, or, with ``allow_hung``, one still running
    after ``wait_s``, which is then killed)."""
    out = tmp_path / f"ranks_{time.monotonic_ns()}"
    out.mkdir()
    ctx = multiprocessing.get_context("forkserver")  # fresh processes, forked from one that imported torch once
    ctx.set_forkserver_preload(["torch", "scipy.sparse.linalg", "landscape.analysis", "landscape.train"])
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, timeout_s, str(out), fn, args)) for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + wait_s
    for p in procs:
        p.join(max(1.0, deadline - time.monotonic()))
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert allow_hung or not hung, f"rank(s) {hung} still running after {wait_s} s"
    return [torch.load(out / f"rank{r}.pt", weights_only=False) if (out / f"rank{r}.pt").is_file() else None
            for r in range(world)]


def ok(results: list) -> list:
    """The values the ranks returned, after checking every rank ended well."""
    for r, res in enumerate(results):
        assert res is not None and res["outcome"][0] == "ok", f"rank {r}: {res and res['outcome'][1:]}"
    return [res["outcome"][1] for res in results]


# ----------------------------------------------------------------------------- a tiny case
N_EXAMPLES, BATCH = 37, 8  # 5 batches: 3 on rank 0, 2 on rank 1 (the last one short)


def tiny_case():
    """A conv + batch norm + linear network in float64 on 37 random 6×6 images, 3 classes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                          nn.Flatten(), nn.Linear(16, 3)).double()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.1, 0.1)
        model[1].running_var.uniform_(0.5, 1.5)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(N_EXAMPLES, 3, 6, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (N_EXAMPLES,), generator=gen)
    return model, x, y


def measure_all(group):
    """F, accuracy, ‖∇F‖², one Hv, the top eigenvalue, a 5×5 surface and a probe: the same calls on every rank."""
    model, x, y = tiny_case()
    obj = Objective(model, x, y, precision="fp64", batch_size=BATCH, group=group)
    theta = obj.theta0
    loss, acc = obj.evaluate()
    f, grad = obj.value_and_grad()
    v = gaussian_direction(obj, 3)
    hv = obj.hvp(None, v.vector)
    op = HessianOperator(obj)
    top = (group or distributed.Group()).lead_operator(op, lambda o: top_eigenpairs(o, 1, tol=1e-12, seed=0)[0])
    xdir, ydir = gradient_direction(grad, obj), gaussian_direction(obj, 5)
    coords = np.linspace(-0.5, 0.5, 5)
    grid = measure.surface(obj, theta, xdir, ydir, coords, coords)
    steps = measure.default_steps(float(theta.norm()), 3)
    probe = measure.semi_smoothness_probe(obj, theta, grad, gaussian_direction(obj, 7), steps)
    return {"F": loss, "acc": acc, "F_grad": f, "grad_sq": float(grad.pow(2).sum()), "hv": hv.numpy(),
            "lambda_max": top.eigenvalue, "surface": grid.loss, "surface_acc": grid.acc, "probe": probe.f,
            "examples": obj.num_examples, "shard": len(obj.labels), "fp32": fp32_values(group)}


def test_shards_are_contiguous_whole_batches():
    shards = [distributed.Group(r, 3).shard(37, 8) for r in range(3)]
    assert [(s.start, s.stop) for s in shards] == [(0, 16), (16, 32), (32, 37)]
    assert [distributed.Group(r, 4).shard(10, 8) for r in range(4)] == [slice(0, 8), slice(8, 10)] + [slice(10, 10)] * 2


@pytest.mark.slow  # several processes
def test_two_ranks_equal_one_process(tmp_path):
    reference = measure_all(None)
    results = ok(run_ranks(tmp_path, measure_all))
    assert [r["shard"] for r in results] == [24, 13] and all(r["examples"] == N_EXAMPLES for r in results)
    for res in results:
        for name in ("F", "F_grad", "grad_sq", "lambda_max"):
            assert res[name] == pytest.approx(reference[name], rel=RTOL), name
        assert res["acc"] == reference["acc"]
        np.testing.assert_allclose(res["hv"], reference["hv"], rtol=RTOL, atol=RTOL * np.abs(reference["hv"]).max())
        np.testing.assert_allclose(res["surface"], reference["surface"], rtol=RTOL)
        np.testing.assert_array_equal(res["surface_acc"], reference["surface_acc"])
        np.testing.assert_allclose(res["probe"], reference["probe"], rtol=RTOL)
        # whole batches keep each batch's fp32 arithmetic: only the order of the float64 sums changes
        assert res["fp32"][0] == pytest.approx(reference["fp32"][0], rel=1e-12) and res["fp32"][1] == reference["fp32"][1]


def fp32_values(group):
    model, x, y = tiny_case()
    return Objective(model.float(), x.float(), y, batch_size=BATCH, group=group).evaluate()


# ----------------------------------------------------------------------------- the analysis
SYNTHETIC = "synthetic:separated?n=60&d=12&delta=0.5&classes=3&seed=0"


def tiny_run(tmp_path: Path) -> Path:
    """An mlp trained one epoch on a synthetic set: a run directory to analyze, made in seconds."""
    from landscape.train import TrainConfig, train

    out = tmp_path / "run"
    train(TrainConfig(arch="mlp1_d12", dataset=SYNTHETIC, epochs=1, batch_size=16, augment=False, save_at=[1]),
          out, Runtime(progress=False, echo=lambda *a: None))
    return out


def analysis_settings():
    from landscape.settings import AnalysisSettings

    return AnalysisSettings(measurements=["random_surface"], epochs=[1], surface_points=7, random_surface_range=0.5,
                            batch_size=8)


def _analyze(group, run: str, die_after: int | None = None):
    """Analyze ``run``; with ``die_after``, rank 1 exits abruptly in the pass of points that takes it past
    that many evaluated points (a killed rank). Returns the number of points this rank evaluated."""
    from landscape.analysis import Analysis

    measure.SAVE_EVERY_S = 0.0  # every finished pass of points reaches the partial file at once
    calls = {"n": 0}
    values = Objective.values

    def counted(self, thetas, *args, **kwargs):
        thetas = list(thetas)
        calls["n"] += len(thetas)
        if die_after is not None and group.rank == 1 and calls["n"] > die_after:
            os._exit(3)
        return values(self, thetas, *args, **kwargs)
    Objective.values = counted
    Analysis(run, analysis_settings(), Runtime(progress=False, echo=lambda *a: None)).run_all()
    return calls["n"]


@pytest.mark.slow  # several processes
def test_killed_analysis_resumes_with_identical_numbers(tmp_path):
    import json
    import shutil

    from landscape.analysis import Analysis

    run = tiny_run(tmp_path)
    single, ranked = tmp_path / "single", tmp_path / "ranked"
    shutil.copytree(run, single)
    shutil.copytree(run, ranked)
    Analysis(single, analysis_settings(), Runtime(progress=False, echo=lambda *a: None)).run_all()
    reference = np.load(single / "analysis" / "epoch_0001" / "random_surface.npz")

    first = run_ranks(tmp_path, _analyze, str(ranked), 10)
    assert first[1] is None  # rank 1 died
    status, message, _ = first[0]["outcome"]
    assert status == "error" and "did not complete" in message and "another rank failed" in message, message
    partial = ranked / "analysis" / "epoch_0001" / "random_surface.partial.npz"
    assert np.load(partial)["done"].sum() == 7  # the first pass: a row of the 7×7 grid (the second was cut short)

    evaluated = ok(run_ranks(tmp_path, _analyze, str(ranked)))
    assert evaluated == [49 - 7, 49 - 7]  # the saved points are not computed again
    result = np.load(ranked / "analysis" / "epoch_0001" / "random_surface.npz")
    np.testing.assert_allclose(result["loss"], reference["loss"], rtol=RTOL)
    np.testing.assert_array_equal(result["acc"], reference["acc"])
    stored = json.loads((ranked / "analysis" / "epoch_0001" / "random_surface.json").read_text())
    assert stored["result"]["parallel"]["world_size"] == 2 and "parallel" not in json.loads(
        (single / "analysis" / "epoch_0001" / "random_surface.json").read_text())["result"]
    assert not partial.exists()


def _stall(group, seconds: float):
    """Rank 1 stops answering (stuck, not dead); rank 0 waits on a collective."""
    if group.rank == 1:
        time.sleep(seconds)
        return None
    model, x, y = tiny_case()
    return Objective(model, x, y, precision="fp64", batch_size=BATCH, group=group).evaluate()


@pytest.mark.slow  # several processes
def test_a_stuck_rank_ends_the_job_with_an_error_on_rank_0(tmp_path):
    results = run_ranks(tmp_path, _stall, 10.0, timeout_s=3.0, wait_s=25.0)
    status, message, _ = results[0]["outcome"]
    assert status == "error" and message.startswith("DistributedError: rank 0 of 2: F and accuracy did not complete")
    assert "within 3 s" in message and results[0]["seconds"] < 20


# ----------------------------------------------------------------------------- training
def train_config(**kw):
    from landscape.train import TrainConfig

    # 42 examples in global batches of 21: two steps, split 11 + 10 between two ranks
    return TrainConfig(arch="mlp1_d12", dataset="synthetic:separated?n=42&d=12&delta=0.5&classes=3&seed=0",
                       epochs=1, batch_size=21, augment=False, save_at=[0, 1], **kw)


def _train(group, out: str):
    from landscape.train import train

    train(train_config(), out, Runtime(progress=False, echo=lambda *a: None))
    return sorted(str(p.relative_to(out)) for p in Path(out).rglob("*") if p.is_file())


@pytest.mark.slow  # several processes
def test_two_ddp_steps_equal_one_process_on_the_global_batch(tmp_path):
    import json

    from landscape.train import train

    single, ranked = tmp_path / "single", tmp_path / "ranked"
    train(train_config(), single, Runtime(progress=False, echo=lambda *a: None))
    files = ok(run_ranks(tmp_path, _train, str(ranked)))
    assert files[0] == sorted(str(p.relative_to(single)) for p in single.rglob("*") if p.is_file()) + ["parallel.jsonl"]
    a = torch.load(single / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(ranked / "checkpoints" / "last.pt", weights_only=False)
    assert a["step"] == b["step"] == 2
    for name, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], value, rtol=1e-5, atol=1e-6)
        assert not torch.equal(value, torch.load(single / "checkpoints" / "epoch_0000.pt",
                                                 weights_only=False)["state_dict"][name])  # the steps moved it
    log_a, log_b = (json.loads((run / "log.jsonl").read_text().splitlines()[-1]) for run in (single, ranked))
    assert log_b["train_loss"] == pytest.approx(log_a["train_loss"], rel=1e-5) and log_b["train_acc"] == log_a["train_acc"]
    layout = json.loads((ranked / "parallel.jsonl").read_text())
    assert layout["world_size"] == 2 and layout["batch_norm"].startswith("per-rank")
