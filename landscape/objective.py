"""The objective F(θ): a model's mean loss over a fixed set of examples, as a function of a flat θ.

Every measurement asks this one object: ``value``, ``value_and_grad``, ``hvp`` and the fast
many-point evaluator ``values``. Definitions (see README, "Definitions"):

* F is the mean per-example loss over the fixed examples, no augmentation, no weight decay,
  accumulated in float64 whatever precision the model runs in; batch size changes only the
  rounding of the model's own arithmetic.
* θ covers a parameter subset ('all' or 'hidden'); the other parameters stay at their values.
* Batch norm: 'frozen' (default) uses the running statistics held by the objective (eval mode,
  so F is deterministic; left at the default on a model with batch norm, a RunningStatisticsWarning
  says that these are the model's running averages, not the statistics of θ that `analyze` uses); 'batch' uses each batch's statistics (F then depends on the batch
  size); 'recompute' re-estimates the statistics at every θ over a fixed set (values only).

The fast path folds each eval-mode batch norm into the convolution before it (exact: eval
batch norm is a per-channel affine map) and runs in channels_last. ``values`` evaluates several
parameter points per forward pass where that is possible and pays (``plan_point_batching``):
torch.func.vmap over the stacked, folded weights of the points, each point's losses summed in
float64 as ``evaluate`` sums them, so the numbers equal one-at-a-time evaluation to the
rounding of the model's own arithmetic.

Across ranks (``group``, see ``distributed``): each rank keeps a contiguous shard of whole
batches of the examples, and the sums (loss, correct count, gradient, Hv) are all-reduced in
float64 before dividing by the total count, so F, ∇F and Hv are those of one process.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from contextlib import nullcontext
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .errors import LandscapeError
from .models import select_parameters

BN_POLICIES = ("frozen", "batch", "recompute")


class RunningStatisticsWarning(UserWarning):
    """An Objective on a model with batch norm left at the default: F uses the model's running averages."""


def warn_running_statistics(model: nn.Module) -> None:
    """Warn when ``model`` has batch-norm statistics that a default ``bn`` would take as they are.

    The running averages lag the weights (most while the learning rate is large), so F would be
    the loss of another network than the one at θ; ``landscape analyze`` uses the statistics of θ
    (``--bn-stats recompute``). Passing ``bn`` explicitly says the choice is deliberate.
    """
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats for m in model.modules()):
        warnings.warn("the model has batch norm and bn was left at its default, 'frozen': F uses the model's "
                      "running statistics, which lag θ; to use the statistics of θ as `landscape analyze` does, "
                      "call exact_bn_statistics(model, images) first or pass bn='recompute' (values only); pass "
                      "bn='frozen' to keep the running statistics without this warning",
                      RunningStatisticsWarning, stacklevel=3)
PRECISIONS = ("fp32", "fp64", "bf16")
HVP_METHODS = ("forward-over-reverse", "double-backprop")


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise LandscapeError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")


def _at_least_fp32(outputs: torch.Tensor) -> torch.Tensor:
    return outputs if outputs.dtype == torch.float64 else outputs.float()


def _cross_entropy(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(_at_least_fp32(outputs), labels, reduction="none")


def _half_squared_error(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """½‖f(x) − y‖² per example, y = onehot(label) or a float target row: the theorem's ℓ2 loss."""
    out = _at_least_fp32(outputs)
    if labels.is_floating_point():
        target = labels.reshape(out.shape).to(out.dtype)
    else:
        target = nn.functional.one_hot(labels, out.shape[1]).to(out.dtype)
    return 0.5 * (out - target).pow(2).sum(dim=1)


LOSSES: dict[str, Callable] = {"cross_entropy": _cross_entropy, "mse": _half_squared_error}


def per_example_loss(loss) -> tuple[Callable, str]:
    """(outputs, labels) -> one loss per example, and its name, from a name, a torch loss module or a callable.

    A torch loss module (``nn.CrossEntropyLoss()``, ``nn.MSELoss()``, ...) is used with
    ``reduction='none'`` whatever it was built with, so F, ∇F and Hv are never silently divided
    by a batch size; MSE-type losses are averaged over each example's output dimensions.
    A plain callable must already return one value per example.
    """
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise LandscapeError(f"unknown loss {loss!r}: use one of {', '.join(LOSSES)}, a torch loss module "
                                 f"or a per-example callable")
        return LOSSES[loss], loss
    if isinstance(loss, nn.Module):
        if not hasattr(loss, "reduction"):
            raise LandscapeError(f"cannot tell how {type(loss).__name__} reduces over a batch (no 'reduction'): "
                                 f"pass a callable that returns one loss per example")
        unreduced = copy.copy(loss)
        unreduced.reduction = "none"
        name = type(loss).__name__

        def module_loss(outputs, labels):
            out = unreduced(_at_least_fp32(outputs), labels)
            return out.reshape(len(out), -1).mean(dim=1) if out.dim() > 1 else out
        return _checked(module_loss, name), name
    if callable(loss):
        name = getattr(loss, "__name__", "custom")
        return _checked(loss, name), name
    raise LandscapeError(f"loss must be a name, a torch loss module or a callable, got {type(loss).__name__}")


def _checked(fn: Callable, name: str) -> Callable:
    def loss(outputs, labels):
        out = fn(outputs, labels)
        if not isinstance(out, torch.Tensor) or out.dim() != 1 or len(out) != len(outputs):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise LandscapeError(f"loss {name!r} returned {shape} for a batch of {len(outputs)}: it must return "
                                 f"one value per example (use reduction='none')")
        return out
    return loss


def checked_batches(batches):
    """Iterate (inputs, labels) tensor pairs, with a one-line error for anything else."""
    for i, batch in enumerate(batches):
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise LandscapeError(f"batch {i} is a {type(batch).__name__}: expected (inputs, labels) pairs")
        x, y = batch
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise LandscapeError(f"batch {i} holds {type(x).__name__} inputs and {type(y).__name__} labels: "
                                 f"inputs and labels must be tensors (wrap a dict-of-tensors model so it takes one)")
        if len(x) != len(y):
            raise LandscapeError(f"batch {i} has {len(x)} inputs and {len(y)} labels")
        yield x.detach(), y.detach()


def materialize_batches(batches) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) of an iterable of (inputs, labels) batches, such as a DataLoader, concatenated once.

    The batches are read once, in order, so the DataLoader must not shuffle or augment if F is to
    mean the same set next time; the Objective then owns a fixed copy.
    """
    xs, ys = [], []
    for x, y in checked_batches(batches):
        xs.append(x.cpu())
        ys.append(y.cpu())
    if not xs:
        raise LandscapeError("the data yielded no batch")
    return torch.cat(xs), torch.cat(ys)


def scan_stream(batches) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(first inputs, first labels, example count) of a re-iterable source of batches, read once.

    A streamed Objective re-reads its batches at every evaluation, so they must come from a
    re-iterable object (a DataLoader, a list), not a one-shot iterator or generator.
    """
    if iter(batches) is batches:
        raise LandscapeError("streaming needs re-iterable data (a DataLoader or a list of batches), "
                             "not a one-shot iterator or generator")
    first, count = None, 0
    for x, y in checked_batches(batches):
        first = first or (x[:1], y[:1])
        count += len(y)
    if first is None:
        raise LandscapeError("the data yielded no batch")
    return first[0], first[1], count


def read_examples(data, labels, stream: bool, bn: str, recompute_images):
    """(inputs, labels, example count, the streamed source or None) from tensors or (inputs, labels) batches."""
    source, count = None, None
    if labels is None:
        if isinstance(data, torch.Tensor):
            raise LandscapeError("labels are missing: pass (inputs, labels) or an iterable of (inputs, labels) batches")
        if stream:
            source = data
            data, labels, count = scan_stream(data)
        else:
            data, labels = materialize_batches(data)
    elif stream:
        raise LandscapeError("stream=True streams an iterable of (inputs, labels) batches; tensors are already in memory")
    if stream and bn == "recompute" and recompute_images is None:
        raise LandscapeError("bn='recompute' on streamed data needs recompute_images (a tensor of inputs)")
    if len(data) != len(labels) or len(data) == 0:
        raise LandscapeError(f"need as many labels as inputs, got {len(data)} and {len(labels)}")
    return data, labels, count if count is not None else len(labels), source


def _fold_batchnorm(model: nn.Module):
    """Trace ``model`` and drop every BatchNorm2d that directly follows a Conv2d.

    Returns (folded module, [(conv name, bn name)]) or None when the model cannot be traced.
    The folded module's convolutions carry a bias; ``_folded_parameters`` fills both in.
    """
    try:
        gm = torch.fx.symbolic_trace(copy.deepcopy(model))
    except Exception:
        return None
    modules = dict(gm.named_modules())
    pairs = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        prev = node.args[0]
        bn = modules[node.target]
        if not (isinstance(prev, torch.fx.Node) and prev.op == "call_module"
                and isinstance(modules.get(prev.target), nn.Conv2d) and len(prev.users) == 1
                and bn.affine and bn.track_running_stats):
            continue
        conv = modules[prev.target]
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, conv.dilation, conv.groups, bias=True,
                          padding_mode=conv.padding_mode)
        parent, _, leaf = prev.target.rpartition(".")
        setattr(gm.get_submodule(parent) if parent else gm, leaf, fused)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        pairs.append((prev.target, node.target, bn.eps))
    if not pairs:
        return None
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm, pairs


BN_SINGLE_PASS_IMAGES = 2048  # up to this many images, the statistics come from a single pass


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the layer of interest has seen its input."""


def _batchnorm_order(model: nn.Module, sample: torch.Tensor) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers that keep running statistics, in the order the forward pass calls them."""
    order: list = []
    hooks = [m.register_forward_pre_hook(lambda m, _: order.append(m) if m not in order else None)
             for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    try:
        with torch.no_grad():
            model.eval()
            model(sample)
    finally:
        for h in hooks:
            h.remove()
    return order


@torch.no_grad()
def exact_bn_statistics(model: nn.Module, images: torch.Tensor, max_batch: int = BN_SINGLE_PASS_IMAGES) -> int:
    """Set every batch norm's running statistics to the exact statistics of the network on ``images``.

    Each layer gets the mean and the biased variance of its input over the whole set, every
    earlier layer being normalized by its own exact statistics: in eval mode the model then
    computes what one train-mode pass over the whole set as a single batch computes, whatever
    the batch size. Up to ``max_batch`` images this takes one pass; beyond, one truncated pass
    per layer (about depth/2 forward passes). Leaves the model in eval mode; returns the passes.
    """
    layers = _batchnorm_order(model, images[:1])
    if not layers:
        return 0
    sums: dict = {}

    def collect(m, args):
        x = args[0].detach().to(torch.float64)
        dims = [d for d in range(x.dim()) if d != 1]
        n = x.numel() // x.shape[1]
        s1, s2, c = sums.get(m, (0.0, 0.0, 0))
        sums[m] = (s1 + x.sum(dims), s2 + x.pow(2).sum(dims), c + n)

    def store(m):
        s1, s2, n = sums.pop(m)
        mean = s1 / n
        m.running_mean.copy_(mean)
        m.running_var.copy_((s2 / n - mean.pow(2)).clamp_min(0.0))

    if len(images) <= max_batch:  # train mode normalizes each layer with exactly these statistics
        hooks = [m.register_forward_pre_hook(collect) for m in layers]
        try:
            model.train()
            model(images)
        finally:
            for h in hooks:
                h.remove()
            model.eval()
        for m in layers:
            store(m)
        return 1
    model.eval()
    for layer in layers:  # layer k's input depends only on layers before it, already exact
        def collect_and_stop(m, args):
            collect(m, args)
            raise _StopForward
        hook = layer.register_forward_pre_hook(collect_and_stop)
        try:
            for i in range(0, len(images), max_batch):
                try:
                    model(images[i:i + max_batch])
                except _StopForward:
                    pass
        finally:
            hook.remove()
        store(layer)
    return len(layers)


class _Derivatives:
    """∇F and H·v of an ``Objective`` (mixed into it: they read its model, data and policies)."""

    def _require_derivatives(self):
        if self.bn == "recompute":
            raise LandscapeError("derivatives need bn='frozen' or 'batch' (recomputed statistics "
                                 "depend on θ in a way the gradient would ignore)")
        if self.precision == "bf16":
            raise LandscapeError("gradients and curvature are computed in fp32 or fp64, never bf16")

    def value_and_grad(self, theta: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
        """F(θ) and ∇F(θ) (float64), exact over the whole set."""
        self._require_derivatives()
        theta = self._theta(theta).detach().requires_grad_(True)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        grad = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        for x, y in self._batches():
            batch_loss = self._batch_loss(theta, x, y)
            (g,) = torch.autograd.grad(batch_loss, theta)
            total += batch_loss.detach()
            grad += g.to(torch.float64)
        if self.group is not None:
            total, grad = self.group.all_reduce_sum(total, grad, what="F and its gradient")
        return total.item() / self.num_examples, grad / self.num_examples

    def hvp(self, theta: torch.Tensor | None, v: torch.Tensor) -> torch.Tensor:
        """H(θ)·v (float64), exact over the whole set, by ``self.hvp_method`` (see the class doc)."""
        self._require_derivatives()
        theta = self._theta(theta).detach()
        v = v.to(self.device, self.dtype)
        if self.hvp_method == "forward-over-reverse":
            try:
                return self._hvp_forward_over_reverse(theta, v)
            except (RuntimeError, NotImplementedError) as err:  # an op without a forward-mode formula
                self.hvp_method = "double-backprop"
                self.hvp_fallback = f"forward-over-reverse failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        return self._hvp_double_backprop(theta, v)

    def _batch_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Sum (float64) of the per-example losses of one batch, as derivatives see it.

        With frozen statistics and a foldable model, the forward pass is the batch-norm-folded
        one: the same function of θ (folding is differentiable), with no batch-norm layers to
        differentiate, which roughly halves the cost of a Hessian-vector product on CPU.
        """
        if self._folded is not None and self.bn == "frozen":
            out = functional_call(self._folded, self._folded_state(theta, self.buffers), (x,))
        else:
            out = self._forward(theta, x)
        return self._loss(out, y).to(torch.float64).sum()

    def _hvp_forward_over_reverse(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """H·v as the directional derivative of ∇F along v: forward-mode AD through the backward pass.

        One pass costs about one gradient plus its tangent, and keeps no second graph.
        """
        out = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        for x, y in self._batches():
            grad_of_batch = torch.func.grad(lambda t: self._batch_loss(t, x, y))
            with warnings.catch_warnings():  # torch's own forward-mode decompositions still call torch.jit.script
                warnings.filterwarnings("ignore", message=".*torch.jit.script.*deprecated", category=FutureWarning)
                _, hv = torch.func.jvp(grad_of_batch, (theta,), (v,))
            out += hv.to(torch.float64)
        if self.group is not None:
            (out,) = self.group.all_reduce_sum(out, what="a Hessian-vector product")
        return out / self.num_examples

    def _hvp_double_backprop(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """H·v as ∇(∇F·v): reverse mode twice, through the graph of the gradient."""
        theta = theta.requires_grad_(True)
        out = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        for x, y in self._batches():
            (g,) = torch.autograd.grad(self._batch_loss(theta, x, y), theta, create_graph=True)
            (hv,) = torch.autograd.grad(g @ v, theta)
            out += hv.to(torch.float64)
        if self.group is not None:
            (out,) = self.group.all_reduce_sum(out, what="a Hessian-vector product")
        return out / self.num_examples


class Objective(_Derivatives):
    """F(θ) = mean loss of ``model`` over fixed examples, θ a flat parameter vector.

    ``data`` is the inputs with ``labels`` given: uint8 NCHW images (standardized here with
    ``mean``/``std``) or any float inputs (images, tabular rows, ...); or, with ``labels``
    omitted, an iterable of (inputs, labels) batches such as a DataLoader: read once into
    memory, or, with ``stream=True``, re-read at every evaluation (for data that does not fit;
    the batches must be the same at every pass). ``loss`` is a name ('cross_entropy', 'mse'), a
    torch loss module (its reduction is ignored: F is always the mean over examples) or a
    callable returning one loss per example. ``bn``: 'frozen' (the default: the model's statistics;
    a RunningStatisticsWarning when left at the default on a model with batch norm),
    'batch' or 'recompute' (see the module doc); ``params``: 'all', 'hidden' or a list of
    names; ``precision``: 'fp32', 'fp64' or 'bf16' (values on CUDA only). ``hvp_method``:
    'forward-over-reverse' (default, the faster; falls back to double backpropagation, once
    and for good, when the model has an op without a forward-mode derivative) or
    'double-backprop'; ``describe()`` says which one computed the products.
    ``points_per_pass``: how many parameter points ``values`` evaluates in one forward pass
    (None: as many as fit ``POINT_MEMORY``, where batching pays, see ``plan_point_batching``;
    1: one at a time). ``group``: a ``distributed.Group`` of several ranks shards the examples
    (tensors only, not streams); every rank must then make the same calls in the same order.
    'recompute' statistics use all examples.
    """

    def __init__(self, model: nn.Module, data, labels: torch.Tensor | None = None, *,
                 mean=None, std=None, loss: str | Callable = "cross_entropy",
                 bn: str | None = None, params: str | list[str] = "all",
                 precision: str = "fp32", batch_size: int | None = None,
                 device: str | torch.device | None = None, fold_bn: bool = True,
                 channels_last: bool | None = None, recompute_images: torch.Tensor | None = None,
                 buffers: dict[str, torch.Tensor] | None = None, stream: bool = False,
                 hvp_method: str = "forward-over-reverse", points_per_pass: int | None = None, group=None):
        """Fix the model (a private copy), the examples, the loss and the policies; see the class doc."""
        if bn is None:  # the default: frozen, said aloud on a model with batch norm
            warn_running_statistics(model)
            bn = "frozen"
        _check_choice("batch-norm policy", bn, BN_POLICIES)
        _check_choice("precision", precision, PRECISIONS)
        _check_choice("hvp_method", hvp_method, HVP_METHODS)
        if points_per_pass is not None and (not isinstance(points_per_pass, int) or points_per_pass < 1):
            raise LandscapeError(f"points_per_pass must be a positive integer or None, got {points_per_pass!r}")
        self.hvp_method, self.hvp_fallback = hvp_method, None
        images, labels, count, self._stream = read_examples(data, labels, stream, bn, recompute_images)
        self._loss, self.loss_name = per_example_loss(loss)
        self.device = torch.device(device) if device else next(model.parameters()).device
        if precision == "bf16" and self.device.type != "cuda":
            raise LandscapeError("bf16 precision needs a CUDA device")
        self.dtype = torch.float64 if precision == "fp64" else torch.float32
        self.precision, self.bn = precision, bn
        self.model = copy.deepcopy(model).to(self.device, self.dtype).eval()
        self.channels_last = images.dim() == 4 if channels_last is None else channels_last
        self.batch_size = batch_size or (1024 if self.device.type == "cuda" else 128)
        self.mean, self.std = mean, std
        self.group = group if group is not None and group.distributed else None
        if self.group is not None:
            if stream:
                raise LandscapeError("a streamed objective cannot be sharded across ranks: pass tensors")
            if bn == "recompute" and recompute_images is None:
                recompute_images = images  # the statistics of θ over every example, on every rank
            count, shard = len(labels), self.group.shard(len(labels), self.batch_size)
            images, labels = images[shard], labels[shard]
        self.images = self._prepare(images, mean, std)  # streamed: the first example only
        self.labels = labels.to(self.device)
        self.num_examples = count
        self.classification = labels.dim() == 1 and not labels.is_floating_point()  # accuracy is defined
        self.recompute_images = (self._prepare(recompute_images, mean, std)
                                 if recompute_images is not None else None)
        if bn == "recompute" and self.recompute_images is None:
            self.recompute_images = self.images
        self._select_parameters(params, buffers)
        folded = _fold_batchnorm(self.model) if fold_bn and bn != "batch" else None
        self._folded, self._fold_pairs = folded if folded else (None, [])
        if self._folded is not None:
            self._folded.to(self.device, self.dtype)
            self._folded_names = [n for n, _ in self._folded.named_parameters()] + \
                                 [n for n, _ in self._folded.named_buffers()]
        self.points_per_pass, self.point_batching, self._point_note = plan_point_batching(self, points_per_pass)

    # ----------------------------------------------------------------- set-up helpers
    def _select_parameters(self, params, buffers) -> None:
        """θ's parameter names, shapes and starting point; the fixed parameters and the statistics."""
        all_params = dict(self.model.named_parameters())
        self.param_names = select_parameters(self.model, params) if isinstance(params, str) else list(params)
        self.param_subset = params if isinstance(params, str) else "custom"
        missing = [n for n in self.param_names if n not in all_params]
        if missing:
            raise LandscapeError(f"model has no parameters named {missing[:3]}")
        self.shapes = [all_params[n].shape for n in self.param_names]
        self.numels = [all_params[n].numel() for n in self.param_names]
        self.dim = sum(self.numels)
        self.fixed = {n: p.detach() for n, p in all_params.items() if n not in set(self.param_names)}
        self.buffers = {n: b.detach() for n, b in self.model.named_buffers()}
        if buffers is not None:
            self.buffers.update(self._cast_buffers(buffers))
        self.theta0 = torch.cat([all_params[n].detach().reshape(-1) for n in self.param_names])

    def _prepare(self, images: torch.Tensor, mean, std) -> torch.Tensor:
        """Inputs on the device in the objective's dtype: uint8 images standardized, channels_last if 4-D."""
        x = images.to(self.device)
        if x.dtype == torch.uint8:
            if mean is None or std is None:
                raise LandscapeError("uint8 images need the dataset's mean and std")
            from .data import normalize

            x = normalize(x, mean, std, self.dtype)
        else:
            x = x.to(self.dtype)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def describe(self) -> dict:
        """What every number computed from this objective depends on."""
        return {"examples": self.num_examples, "loss": self.loss_name, "bn_policy": self.bn,
                "param_subset": self.param_subset, "num_params": self.dim,
                "precision": self.precision, "batch_size": self.batch_size,
                "hvp_method": self.hvp_method, **({"hvp_fallback": self.hvp_fallback} if self.hvp_fallback else {}),
                **({"point_batching": self._point_note} if self._point_note else {})}

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of θ, one per selected parameter, shaped like it; θ of shape (K, dim) gives (K, *shape) each."""
        lead = theta.shape[:-1]
        return {n: t.view(s) if not lead else t.reshape(*lead, *s)
                for n, t, s in zip(self.param_names, theta.split(self.numels, dim=-1), self.shapes)}

    def flatten(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([tensors[n].reshape(-1) for n in self.param_names])

    def _theta(self, theta: torch.Tensor | None) -> torch.Tensor:
        if theta is None:
            return self.theta0
        if theta.shape != (self.dim,):
            raise LandscapeError(f"θ has shape {tuple(theta.shape)}, expected ({self.dim},)")
        return theta.to(self.device, self.dtype)

    def _batches(self, images: torch.Tensor | None = None):
        """The fixed examples in batches, on the device and standardized."""
        if images is None and self._stream is not None:
            yield from self._streamed_batches()
            return
        images = self.images if images is None else images
        for i in range(0, len(images), self.batch_size):
            yield images[i:i + self.batch_size], self.labels[i:i + self.batch_size]

    def _streamed_batches(self):
        """Re-read the streamed batches; a pass that yields another number of examples is an error."""
        count = 0
        for x, y in checked_batches(self._stream):
            count += len(y)
            yield self._prepare(x, self.mean, self.std), y.to(self.device)
        if count != self.num_examples:
            raise LandscapeError(f"the data yielded {count} examples, {self.num_examples} before: "
                                 f"a streamed objective needs the same examples at every pass")

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _forward(self, theta: torch.Tensor, x: torch.Tensor, buffers=None) -> torch.Tensor:
        """The plain (unfolded) forward pass used for derivatives."""
        state = {**self.fixed, **(self.buffers if buffers is None else buffers), **self.unflatten(theta)}
        self.model.train(self.bn == "batch")
        if self.bn == "batch":  # keep the stored running statistics untouched
            state.update({n: b.clone() for n, b in self.buffers.items()})
        return functional_call(self.model, state, (x,))

    # ----------------------------------------------------------------- batch-norm statistics
    def recomputed_buffers(self, theta: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Batch-norm statistics of the network at θ over the recompute set (see ``exact_bn_statistics``)."""
        images = self.recompute_images if self.recompute_images is not None else self.images
        if getattr(self, "_stat_model", None) is None:  # one private copy, reused at every θ
            self._stat_model = copy.deepcopy(self.model)
        stat_model = self._stat_model
        with torch.no_grad():
            for name, p in self.unflatten(self._theta(theta)).items():
                stat_model.get_parameter(name).copy_(p)
        with self._autocast():
            exact_bn_statistics(stat_model, images, max(self.batch_size, BN_SINGLE_PASS_IMAGES))
        return {n: b.detach().clone() for n, b in stat_model.named_buffers()}

    # ----------------------------------------------------------------- values
    def _folded_state(self, theta: torch.Tensor, buffers) -> dict[str, torch.Tensor]:
        """Weights of the batch-norm-folded model at θ: each conv scaled and shifted by its BN.

        θ of shape (K, dim) and/or statistics with a leading K give every entry that depends on
        them a leading K (broadcasting), for ``batched_values``.
        """
        p = {**self.fixed, **self.unflatten(theta)}
        state = {**p, **buffers}
        state = {n: state[n] for n in self._folded_names if n in state}
        for conv, bn, eps in self._fold_pairs:
            scale = p[f"{bn}.weight"] * torch.rsqrt(buffers[f"{bn}.running_var"] + eps)
            weight = p[f"{conv}.weight"] * scale[..., None, None, None]
            if self.channels_last and weight.dim() == 4:
                weight = weight.contiguous(memory_format=torch.channels_last)
            conv_bias = p.get(f"{conv}.bias")
            shift = -buffers[f"{bn}.running_mean"] if conv_bias is None else conv_bias - buffers[f"{bn}.running_mean"]
            state[f"{conv}.weight"] = weight
            state[f"{conv}.bias"] = p[f"{bn}.bias"] + shift * scale
        return state

    @torch.no_grad()
    def evaluate(self, theta: torch.Tensor | None = None, buffers=None) -> tuple[float, float]:
        """(F(θ), accuracy) over the fixed examples."""
        theta = self._theta(theta)
        if self.bn == "recompute":
            buffers = self.recomputed_buffers(theta)
        buffers = self.buffers if buffers is None else {**self.buffers, **self._cast_buffers(buffers)}
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        if self._folded is not None:
            state = self._folded_state(theta, buffers)
            forward = lambda x: functional_call(self._folded, state, (x,))  # noqa: E731
        else:
            forward = lambda x: self._forward(theta, x, buffers)  # noqa: E731
        with self._autocast():
            for x, y in self._batches():
                out = forward(x)
                total += self._loss(out, y).to(torch.float64).sum()
                if self.classification:
                    correct += (out.argmax(dim=1) == y).sum()
        if self.group is not None:
            total, correct = self.group.all_reduce_sum(total, correct, what="F and accuracy")
        loss = total.item() / self.num_examples
        return loss, (correct.item() / self.num_examples if self.classification else float("nan"))

    def value(self, theta: torch.Tensor | None = None) -> float:
        return self.evaluate(theta)[0]

    def values(self, thetas: Iterable[torch.Tensor], progress=None, *,
               buffers: Iterable[dict | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """F and accuracy at many points, ``points_per_pass`` of them per forward pass.

        ``buffers``: frozen statistics per point (None entries: the objective's own), as
        ``evaluate`` takes them. Each pass is ``batched_values`` (one all-reduce across ranks)
        or, where the points cannot be batched (and for a pass of one point), one ``evaluate``
        per point; memory stays flat in the number of points (thetas may be a generator).
        """
        points = zip(thetas, buffers) if buffers is not None else ((t, None) for t in thetas)
        losses, accs = [], []
        while chunk := list(itertools.islice(points, self.points_per_pass)):
            if self.point_batching and len(chunk) > 1:
                loss, acc = batched_values(self, [t for t, _ in chunk], [b for _, b in chunk])
            else:
                loss, acc = np.array([self.evaluate(t, b) for t, b in chunk], dtype=np.float64).reshape(-1, 2).T
            losses.append(loss)
            accs.append(acc)
            if progress is not None:
                progress.update(len(chunk))
        if not losses:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(losses), np.concatenate(accs)

    def layer_norms(self, vector: torch.Tensor) -> dict[str, float]:
        """‖vector‖ restricted to each parameter tensor, keyed by parameter name."""
        return {n: float(t.norm()) for n, t in self.unflatten(vector).items()}

    def _cast_buffers(self, buffers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: b.to(self.device, self.buffers[n].dtype) for n, b in buffers.items()}

    def with_buffers(self, buffers: dict[str, torch.Tensor]) -> "Objective":
        """A shallow copy whose frozen batch-norm statistics are ``buffers``."""
        other = copy.copy(self)
        other.buffers = {**self.buffers, **self._cast_buffers(buffers)}
        return other


# ----------------------------------------------------------------------------- many points per pass
MAX_POINTS_PER_PASS = 32          # an upper bound (a surface row is 15 to 21 points): more cost memory
POINT_MEMORY = {"cpu": 1 << 30,   # bytes for the points of one pass on the CPU
                "cuda": 0.25}     # the share of the device's free memory on CUDA
ACTIVATION_FACTOR = 4             # live activations of a forward pass, in units of its largest layer output
STATE_COPIES = 4                  # copies of a point's weights alive in a pass: θ, its stack, folded, temporaries
# Whether convolutional networks batch points by default, by device type. CPU: no, a grouped
# convolution over K points ran 0.28-0.36x the points/s of K plain ones (scripts/bench_surface.py,
# ResNet-32 and ResNet-8 on 256 images); CUDA: yes, fewer and larger kernels (gpu_check.sh
# records the ratio; set this to False if it is below 1).
BATCH_CONVOLUTIONS = {"cpu": False, "cuda": True}


def plan_point_batching(objective: Objective, requested: int | None) -> tuple[int, bool, str | None]:
    """(points per pass, whether a pass batches them, the note ``describe()`` records or None).

    Batched (torch.func.vmap over stacked parameters; a convolution becomes one grouped
    convolution over the points) wherever each point's network is a fixed function of its own
    parameters and statistics: frozen statistics (shared or per point) and 'recompute' (the
    statistics first, one pass per point, then the points together). One at a time: 'batch'
    statistics (one train-mode pass per point), a model vmap cannot run or runs to other
    numbers (tried here on one random input) and, unless ``requested``, convolutional networks
    where ``BATCH_CONVOLUTIONS`` says a grouped convolution over K points is slower than K
    plain ones (the CPU). One at a time is the reference path: it records no note
    unless batching was asked for or refused. The count fits ``POINT_MEMORY`` and is the
    smallest over ranks, so that every rank makes the same passes.
    """
    if requested == 1:
        return 1, False, None
    if objective.bn == "batch":
        return 1, False, "one at a time: bn='batch' normalizes each batch by its own statistics"
    net = objective._folded if objective._folded is not None else objective.model
    if requested is None and not BATCH_CONVOLUTIONS.get(objective.device.type, False) and any(
            isinstance(m, nn.modules.conv._ConvNd) for m in net.modules()):
        return 1, False, None
    sample = torch.randn(1, *objective.images.shape[1:], generator=torch.Generator().manual_seed(0),
                         dtype=objective.dtype).to(objective.device)
    if objective.channels_last and sample.dim() == 4:
        sample = sample.contiguous(memory_format=torch.channels_last)
    refused = _vmap_refusal(objective, sample)
    size = 0 if refused else min(requested or MAX_POINTS_PER_PASS, _points_that_fit(objective, sample))
    if objective.group is not None:
        sizes = torch.zeros(objective.group.world_size, dtype=torch.float64)
        sizes[objective.group.rank] = size
        (sizes,) = objective.group.all_reduce_sum(sizes, what="agreeing on the points per pass")
        size = int(sizes.min())
        refused = refused or (None if size else "another rank could not batch points")
    if refused:
        return 1, False, f"one at a time: {refused}"
    return size, True, "vmap"


@torch.no_grad()
def _vmap_refusal(objective: Objective, sample: torch.Tensor) -> str | None:
    """Why two copies of θ0 under vmap do not give the plain forward pass on ``sample``, or None."""
    theta = objective.theta0.to(objective.device, objective.dtype)
    try:
        batched, shared = point_states(objective, torch.stack([theta, theta]), None)
        out = _points_forward(objective, shared)(batched, sample)
        plain = functional_call(objective.model.eval(), {**objective.fixed, **objective.buffers,
                                                         **objective.unflatten(theta)}, (sample,))
    except Exception as err:  # any op without a batching rule, data-dependent control flow, ...
        return f"vmap failed ({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''})"
    # a gross check (another function, not another rounding: cuDNN convolutions may run in TF32)
    if out.shape != (2, *plain.shape) or float((out - plain).abs().max()) > 1e-2 * float(plain.abs().max()) + 1e-6:
        return "vmap gave other numbers than the plain forward pass"
    return None


def _points_that_fit(objective: Objective, sample: torch.Tensor) -> int:
    """How many points' weights (``STATE_COPIES``) and batch activations fit ``POINT_MEMORY``."""
    net = objective._folded if objective._folded is not None else objective.model
    state = sum(t.numel() for t in itertools.chain(net.parameters(), net.buffers()))
    largest = [0]

    def record(_module, _args, out):
        if isinstance(out, torch.Tensor):
            largest[0] = max(largest[0], out.numel())
    leaves = [m for m in objective.model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            objective.model.eval()(sample)
    finally:
        for h in hooks:
            h.remove()
    activations = ACTIVATION_FACTOR * objective.batch_size * largest[0]
    per_point = objective.dtype.itemsize * (STATE_COPIES * state + activations)
    if objective.device.type == "cuda":
        budget = POINT_MEMORY["cuda"] * torch.cuda.mem_get_info(objective.device)[0]
    else:
        budget = POINT_MEMORY["cpu"]
    return max(1, min(MAX_POINTS_PER_PASS, int(budget // per_point)))


def point_states(objective: Objective, thetas: torch.Tensor, buffers: list[dict | None] | None):
    """(entries with a leading K, shared entries) of the network's state at the K rows of ``thetas``.

    With per-point ``buffers`` (dicts of statistics, None for the objective's own) the statistics
    are stacked too; everything else (fixed parameters, shared statistics) stays unstacked.
    """
    if buffers is not None and any(b is not None for b in buffers):
        full = [objective.buffers if b is None else {**objective.buffers, **objective._cast_buffers(b)}
                for b in buffers]
        stats = {n: torch.stack([f[n] for f in full]) for n in objective.buffers}
    else:
        stats = objective.buffers
    if objective._folded is not None:
        state, net = objective._folded_state(thetas, stats), objective._folded
    else:
        state, net = {**objective.fixed, **stats, **objective.unflatten(thetas)}, objective.model
    dims = {n: t.dim() for n, t in itertools.chain(net.named_parameters(), net.named_buffers())}
    batched = {n: t for n, t in state.items() if t.dim() == dims[n] + 1}
    return batched, {n: t for n, t in state.items() if n not in batched}


def _points_forward(objective: Objective, shared: dict) -> Callable:
    """(stacked state, inputs) -> outputs (K, batch, ...): the network at K points, one vmapped pass."""
    net = objective._folded if objective._folded is not None else objective.model.eval()
    return torch.func.vmap(lambda state, x: functional_call(net, {**state, **shared}, (x,)), in_dims=(0, None))


@torch.no_grad()
def batched_values(objective: Objective, thetas: list[torch.Tensor],
                   buffers: list[dict | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(F, accuracy) at each θ in one forward pass over the examples, as ``evaluate`` at each.

    Each point's per-example losses are summed in float64 as ``evaluate`` sums them; across
    ranks, one all-reduce for all the points. Statistics: per point where given ('frozen'),
    recomputed at each θ first ('recompute').
    """
    stacked = torch.stack([objective._theta(t) for t in thetas])
    if objective.bn == "recompute":
        buffers = [objective.recomputed_buffers(t) for t in stacked]
    batched, shared = point_states(objective, stacked, buffers)
    forward = _points_forward(objective, shared)
    k = len(stacked)
    total = torch.zeros(k, dtype=torch.float64, device=objective.device)
    correct = torch.zeros(k, dtype=torch.int64, device=objective.device)
    with objective._autocast():
        for x, y in objective._batches():
            out = forward(batched, x)
            labels = y.repeat(k, *([1] * (y.dim() - 1)))  # point-major, as the outputs flatten
            losses = objective._loss(out.reshape(k * len(y), *out.shape[2:]), labels)
            total += losses.to(torch.float64).view(k, -1).sum(1)
            if objective.classification:
                correct += (out.argmax(dim=-1) == y).sum(dim=1)
    if objective.group is not None:
        total, correct = objective.group.all_reduce_sum(total, correct, what="F and accuracy at several points")
    n = objective.num_examples
    acc = (correct.to(torch.float64) / n).cpu().numpy() if objective.classification else np.full(k, np.nan)
    return (total / n).cpu().numpy(), acc
