"""The training loop across ranks: DistributedDataParallel on the recipe's global batch.

Every rank draws the same epoch order and augmentation (seeded by (seed, epoch)) and trains on
its contiguous part of each global batch (128 in the recipe); the gradients are summed with
weights b_r/B by a DDP communication hook, so each step is the one-process step on the whole
batch, to fp32 rounding, even when B does not divide evenly among the ranks.

Batch norm: per-rank statistics by default, as torch.nn.DataParallel (the paper's code) computes
them on several GPUs, each replica normalizing its own chunk; ``sync_bn`` normalizes over the
global batch (SyncBatchNorm, CUDA only), which is what one device computes. Running statistics
are rank 0's (DDP broadcasts its buffers at every step, as DataParallel keeps replica 0's).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .distributed import Group
from .errors import LandscapeError


class Parallel:
    """How one rank takes part in a training step: the module to run, its share of each batch, totals."""

    def __init__(self, model: nn.Module, device: torch.device, group: Group, sync_bn: bool,
                 batch_size: int, examples: int):
        """Wrap ``model`` (whose parameters stay the ones checkpoints save) for ``group``'s ranks."""
        self.group, self.model, self.sync_bn = group, model, sync_bn
        self.net: nn.Module = model
        self.weight, self.weights = 1.0, []
        if not group.distributed:
            return
        last = examples % batch_size or batch_size
        if min(batch_size, last) < group.world_size:
            raise LandscapeError(f"{group.world_size} ranks cannot share batches of {min(batch_size, last)} examples "
                                 f"(batch size {batch_size}, {examples} examples): use fewer ranks")
        if sync_bn and device.type != "cuda":
            raise LandscapeError("--sync-bn needs CUDA (torch's SyncBatchNorm runs on GPUs only)")
        from torch.nn.parallel import DistributedDataParallel

        module = _with_sync_batchnorm(model) if sync_bn else model
        self.net = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
        self.net.register_comm_hook(self, _weighted_sum)

    def describe(self) -> dict:
        """The layout of a run trained across ranks (recorded in the run folder)."""
        return {"world_size": self.group.world_size, "backend": self.group.backend,
                "batch": "each global batch split in contiguous parts, gradients summed with weights b_r/B",
                "batch_norm": "synchronized over the global batch (SyncBatchNorm)" if self.sync_bn
                else "per-rank statistics over each rank's part (as torch.nn.DataParallel)",
                "running_statistics": "rank 0's", "writes": "rank 0 only"}

    def local(self, start: int, stop: int) -> slice:
        """This rank's contiguous part of the global batch [start, stop) (the batch itself on one process)."""
        if not self.group.distributed:
            return slice(start, stop)
        if start == 0:
            self.weights = []
        size = stop - start
        base, extra = divmod(size, self.group.world_size)
        rank = self.group.rank
        first = start + rank * base + min(rank, extra)
        count = base + (1 if rank < extra else 0)
        self.weight = count / size
        self.weights.append(self.weight)
        if self.net is not self.model:
            self.net.train(self.model.training)
        return slice(first, first + count)

    def totals(self, losses: torch.Tensor, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An epoch's per-step mean losses and correct count over the global batches (as is on one process)."""
        if not self.group.distributed:
            return losses, correct
        weights = torch.tensor(self.weights, dtype=torch.float64, device=losses.device)
        loss_sums, count = self.group.all_reduce_sum(losses.to(torch.float64) * weights, correct,
                                                     what="the epoch's training loss")
        return loss_sums.to(losses.dtype), count.round().to(correct.dtype)


def _weighted_sum(state: Parallel, bucket):
    """DDP communication hook: Σ_r (b_r/B)·g_r, the gradient of the mean loss over the global batch."""
    import torch.distributed as dist

    tensor = bucket.buffer()
    tensor.mul_(state.weight)
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])


def _with_sync_batchnorm(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s structure whose batch norms are SyncBatchNorm, sharing every parameter
    and buffer with ``module`` (so the optimizer and checkpoints keep working on ``module``)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    clone = copy.copy(module)
    clone._modules = {name: (_with_sync_batchnorm(child) if child is not None else None)
                      for name, child in module._modules.items()}
    return clone
