"""torch.distributed for landscape: one process group from torchrun's environment.

What a sharded computation needs, and nothing else: float64 sums over ranks, decisions and
file reads made on rank 0 and shared, writes from rank 0 only, rank 0 leading a sequential
algorithm whose every step is collective, and a collective timeout so that a rank that dies or
hangs ends the job with an error naming the operation instead of blocking the others forever.

Not launched by torchrun (no WORLD_SIZE > 1 in the environment), ``current()`` is a one-process
``Group`` whose operations are identities: single-process code paths do not change.
Backends: gloo on the CPU; 'cpu:gloo,cuda:nccl' on CUDA (NCCL for device tensors, gloo for the
small CPU messages: objects, headers), so the same code runs on both.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import numpy as np
import torch

from .errors import LandscapeError

TIMEOUT_ENV = "LANDSCAPE_COLLECTIVE_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800.0  # longer than any stretch one rank works alone (rank 0 writing a checkpoint)

LAYOUT = {"examples": "contiguous shards of whole evaluation batches, one per rank",
          "sums": "loss, correct count, gradient and Hessian-vector products all-reduced in float64",
          "grids": "examples sharded: every rank evaluates every point on its shard",
          "eigensolvers": "SciPy on rank 0; every Hessian-vector product computed collectively",
          "writes": "rank 0 only"}


class DistributedError(LandscapeError):
    """A collective did not complete (another rank failed, or stopped answering), or rank 0 failed."""


@dataclass
class Group:
    """This process's place in the job: rank, world size, backend and collective timeout."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "none"
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Whether this process writes results, checkpoints and logs (rank 0)."""
        return self.rank == 0

    def describe(self) -> dict:
        """The layout recorded next to results computed by several ranks."""
        return {"world_size": self.world_size, "backend": self.backend, **LAYOUT}

    # ------------------------------------------------------------------ sharding
    def shard(self, count: int, batch_size: int) -> slice:
        """This rank's contiguous share of ``count`` examples, in whole batches of ``batch_size``.

        Batches are the ones one process would form, dealt in contiguous runs (the first
        ``batches % world`` ranks take one more), so each batch's arithmetic is the same in
        every layout and only the order of the float64 sums changes. A rank may get none.
        """
        batches = -(-count // batch_size)
        base, extra = divmod(batches, self.world_size)
        first = self.rank * base + min(self.rank, extra)
        last = first + base + (1 if self.rank < extra else 0)
        return slice(min(first * batch_size, count), min(last * batch_size, count))

    # ------------------------------------------------------------------ collectives
    @contextmanager
    def _collective(self, what: str):
        """Turn a failed or timed-out collective into one clear DistributedError."""
        try:
            yield
        except DistributedError:
            raise
        except RuntimeError as exc:  # DistBackendError and gloo/NCCL errors are RuntimeErrors
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} did not complete: another rank failed or did not "
                f"answer within {self.timeout_s:g} s ({first}). The first error is in that rank's output; "
                f"finished results are saved, run the same command again to resume") from None

    def all_reduce_sum(self, *tensors: torch.Tensor, what: str = "a sum over ranks") -> list[torch.Tensor]:
        """The float64 sums over ranks of ``tensors`` (one all-reduce for all of them), shapes kept."""
        if not self.distributed:
            return [t.to(torch.float64) for t in tensors]
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
        import torch.distributed as dist

        with self._collective(what):
            dist.all_reduce(flat)
        return [part.view(t.shape) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]

    def broadcast_object(self, obj=None, what: str = "a broadcast from rank 0"):
        """Rank 0's ``obj`` on every rank (pickled; for small objects and results)."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        with self._collective(what):
            dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
        return box[0]

    def barrier(self, what: str = "a barrier") -> None:
        if self.distributed:
            import torch.distributed as dist

            with self._collective(what):
                dist.barrier()

    # ------------------------------------------------------------------ rank 0 decides
    def from_rank0(self, fn: Callable, what: str = "a result from rank 0"):
        """``fn()`` evaluated on rank 0 and shared; an error there is raised on every rank.

        For decisions that must agree (is a result fresh? which points are done?) and reads of
        the run folder, which then needs to exist on rank 0's machine only.
        """
        if not self.distributed:
            return fn()
        if self.rank == 0:
            try:
                value = fn()
            except Exception as exc:
                self.broadcast_object(("error", f"{type(exc).__name__}: {exc}"), what)
                raise
            self.broadcast_object(("ok", value), what)
            return value
        status, value = self.broadcast_object(None, what)
        if status == "error":
            raise DistributedError(f"rank 0 stopped ({what}): {value}")
        return value

    @contextmanager
    def on_rank0(self, make_context: Callable, what: str = "rank 0's set-up"):
        """Enter ``make_context()`` (a lock, ...) on rank 0 only; its failure stops every rank."""
        with ExitStack() as stack:
            def enter():
                stack.enter_context(make_context())
            self.from_rank0(enter, what)
            yield

    def store(self, store):
        """``store`` (``load``/``save`` of finished points) read on rank 0 and written by rank 0 only."""
        return store if store is None or not self.distributed else _SharedStore(store, self)

    def lead(self, fn: Callable[[np.ndarray], object], solve: Callable, what: str = "a rank-0-led computation"):
        """``solve(call)`` run on rank 0, where ``call(x)`` runs ``fn(x)`` on every rank at once.

        For sequential algorithms (Lanczos, line searches) whose steps are collective: rank 0
        sends each float64 vector ``x``; the other ranks serve ``fn`` until rank 0 is done, then
        receive solve's result. Control flow lives on one rank only, so SciPy/LAPACK need not be
        bitwise identical across ranks for the ranks to stay in step.
        """
        if not self.distributed:
            return solve(fn)
        header = torch.zeros(2, dtype=torch.int64)
        if self.rank == 0:
            def call(x):
                x = torch.as_tensor(np.ascontiguousarray(np.asarray(x, dtype=np.float64).reshape(-1)))
                self._broadcast(torch.tensor([1, x.numel()]), what)
                self._broadcast(x.clone(), what)
                return fn(x.numpy())
            try:
                result, error = ("ok", solve(call)), None
            except DistributedError:
                raise  # the others are gone: nothing more to tell them
            except Exception as exc:
                result, error = ("error", f"{type(exc).__name__}: {exc}"), exc
            self._broadcast(torch.tensor([0, 0]), what)
            self.broadcast_object(result, what)
            if error is not None:
                raise error
            return result[1]
        while True:
            self._broadcast(header, what)
            if int(header[0]) == 0:
                break
            x = torch.empty(int(header[1]), dtype=torch.float64)
            self._broadcast(x, what)
            fn(x.numpy())
        status, value = self.broadcast_object(None, what)
        if status == "error":
            raise DistributedError(f"rank 0 stopped ({what}): {value}")
        return value

    def lead_operator(self, op, solve: Callable, what: str = "an eigensolver"):
        """``solve(op)`` for a linear operator: on one process as is; across ranks, rank 0's
        solver sees an operator each of whose products is a collective ``op.matvec`` (``lead``)."""
        if not self.distributed:
            return solve(op)
        from scipy.sparse.linalg import LinearOperator

        def served(call):
            return solve(LinearOperator(op.shape, matvec=call, rmatvec=call, dtype=np.float64))
        return self.lead(lambda x: op.matvec(x), served, what)

    def _broadcast(self, tensor: torch.Tensor, what: str) -> None:
        import torch.distributed as dist

        with self._collective(what):
            dist.broadcast(tensor, src=0)


class _SharedStore:
    """A finished-points store read on rank 0 (every rank gets the same points) and written by it."""

    def __init__(self, store, group: Group):
        self.inner, self.group = store, group

    def load(self, coords):
        return self.group.from_rank0(lambda: self.inner.load(coords), "reading the finished points")

    def save(self, coords, loss, acc, done):
        if self.group.is_writer:
            self.inner.save(coords, loss, acc, done)


# ---------------------------------------------------------------------- the process group
def launched() -> bool:
    """Whether this process was started by torchrun (or alike) as one of several ranks."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def timeout_seconds() -> float:
    """The collective timeout: env LANDSCAPE_COLLECTIVE_TIMEOUT (seconds) or the default."""
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise LandscapeError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


_GROUP: Group | None = None


def current() -> Group:
    """The job's Group: the one ``init`` made, one read off an existing process group, or one process."""
    if _GROUP is not None:
        return _GROUP
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                     str(dist.get_backend()), timeout_seconds())
    return Group()


def init(device: str | torch.device = "cpu", timeout_s: float | None = None) -> Group:
    """Join the process group torchrun's environment describes (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT); on CUDA, bind this rank to GPU LOCAL_RANK. No-op when not launched."""
    global _GROUP
    if not launched():
        return current()
    import torch.distributed as dist

    if dist.is_initialized():
        return current()
    timeout_s = timeout_seconds() if timeout_s is None else float(timeout_s)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            raise LandscapeError("--device cuda asked for, but no CUDA device is available")
        torch.cuda.set_device(local_rank)
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(f"could not join the process group ({backend}, rank {os.environ.get('RANK')} of "
                               f"{os.environ.get('WORLD_SIZE')}): {exc}") from None
    _GROUP = Group(dist.get_rank(), dist.get_world_size(), local_rank, backend, timeout_s)
    return _GROUP


def shutdown() -> None:
    """Leave the process group ``init`` joined (if any)."""
    global _GROUP
    if _GROUP is None:
        return
    import torch.distributed as dist

    _GROUP = None
    if dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(device: str | torch.device = "cpu"):
    """``init`` for the duration of a command, then ``shutdown``; yields the Group."""
    group = init(device)
    try:
        yield group
    finally:
        shutdown()
