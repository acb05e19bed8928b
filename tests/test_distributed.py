"""Several ranks on the CPU (gloo), started here: the same numbers as one process, resume, failure.

Each test starts its ranks as fresh processes (multiprocessing 'spawn', the environment torchrun
would give them) and compares what they return with one process in this one.
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


def run_ranks(tmp_path: Path, fn, *args, world: int = 2, timeout_s: float = 60.0, wait_s: float = 120.0) -> list:
    """Start ``world`` ranks running ``fn(group, *args)``; [{'outcome': ..., 'seconds': ...}] by rank
    (None for a rank that saved nothing, e.g. one that killed itself)."""
    out = tmp_path / f"ranks_{time.monotonic_ns()}"
    out.mkdir()
    ctx = multiprocessing.get_context("spawn")
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
    assert not hung, f"rank(s) {hung} still running after {wait_s} s"
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


def measure_all(group, precision="fp64"):
    """F, accuracy, ‖∇F‖², one Hv, the top eigenvalue, a 5×5 surface and a probe: the same calls on every rank."""
    model, x, y = tiny_case()
    obj = Objective(model, x, y, precision=precision, batch_size=BATCH, group=group)
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
    _, probe = measure.semi_smoothness_probe(obj, theta, grad, gaussian_direction(obj, 7), steps)
    return {"F": loss, "acc": acc, "F_grad": f, "grad_sq": float(grad.pow(2).sum()), "hv": hv.numpy(),
            "lambda_max": top.eigenvalue, "surface": grid["loss"], "surface_acc": grid["acc"], "probe": probe["f"],
            "examples": obj.num_examples, "shard": len(obj.labels)}


def test_shards_are_contiguous_whole_batches():
    shards = [distributed.Group(r, 3).shard(37, 8) for r in range(3)]
    assert [(s.start, s.stop) for s in shards] == [(0, 16), (16, 32), (32, 37)]
    assert [distributed.Group(r, 4).shard(10, 8) for r in range(4)] == [slice(0, 8), slice(8, 10)] + [slice(10, 10)] * 2


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
