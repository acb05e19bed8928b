"""How numbers and the settings behind them are written in figures, verdicts and reports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from .results import RunDir

SETTING_KEYS = ("dataset", "arch", "examples", "param_subset", "num_params", "bn_policy", "bn_statistics",
                 "precision", "loss", "subset_seed", "train_seed", "label_noise", "repeats", "repeat_mode")


def fmt(x: Any, digits: int = 3) -> str:
    """A number in short scientific/fixed notation ('nan' and 'inf' as such)."""
    if x is None:
        return "—"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e4:
        return f"{v:.{digits}g}"
    return f"{v:.{max(digits - 1, 1)}e}"


def fmt_tick(x: float) -> str:
    """A tick label, one format on every axis: '0.001', '250', '1000' between 1e-3 and 1e4, else '2.5e-5'
    (never '1e+02' or '1.0e-04')."""
    v = float(x)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e4:
        text = f"{v:.3g}"
        return f"{v:.0f}" if "e" in text else text
    mantissa, exponent = f"{v:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def context_caption(ctx: dict, *, split_word: bool = True) -> str:
    """'resnet8, folder:cifar10-jpeg, train subset n=128 (seed 0), params all (78,042), BN frozen, fp32'."""
    if not ctx:
        return ""
    parts = []
    if ctx.get("arch"):
        parts.append(str(ctx["arch"]))
    if ctx.get("dataset"):
        parts.append(str(ctx["dataset"]))
    if "examples" in ctx:
        seed = f" (subset seed {ctx['subset_seed']})" if ctx.get("subset_seed") is not None else ""
        split = f"{ctx.get('split', 'train')} " if split_word else ""
        parts.append(f"{split}subset n={ctx['examples']}{seed}")
    if ctx.get("param_subset"):
        num = f" ({int(ctx['num_params']):,})" if isinstance(ctx.get("num_params"), (int, float)) else ""
        parts.append(f"params {ctx['param_subset']}{num}")
    if ctx.get("bn_policy"):
        parts.append(f"BN {ctx['bn_policy']}" + (f" ({ctx['bn_statistics']})" if ctx.get("bn_statistics") else ""))
    if ctx.get("precision"):
        parts.append(str(ctx["precision"]))
    if (ctx.get("repeats") or 1) > 1:
        parts.append(f"{ctx['repeats']} repeats ({ctx.get('repeat_mode', '?')})")
    if ctx.get("loss") and ctx["loss"] != "cross_entropy":
        parts.append(f"loss {ctx['loss']}")
    if ctx.get("label_noise"):
        parts.append(f"label noise {ctx['label_noise']}")
    if ctx.get("train_seed") is not None:
        parts.append(f"training seed {ctx['train_seed']}")
    return ", ".join(parts)


def common_caption(contexts: list[dict]) -> str:
    """The caption of the first context, noting when the others differ."""
    if not contexts:
        return ""
    per_piece = ("epoch", "checkpoint", "checkpoint_sha256", "repeat", "direction_seed")  # vary by design
    strip = lambda c: {k: v for k, v in c.items() if k not in per_piece}  # noqa: E731
    text = context_caption(contexts[0])
    if any(strip(c) != strip(contexts[0]) for c in contexts[1:]):
        text += "  [settings differ between checkpoints: see each result file's context]"
    return text


def run_title(run: RunDir, config: dict) -> str:
    """'NAME — arch trained N epochs (lr, batch, seed, training images, noise)' for captions and reports."""
    train = config.get("train") or {}
    bits = [run.path.name]
    if train:
        bits.append(f"{train.get('arch', '?')} trained {train.get('epochs', '?')} epochs "
                    f"(lr {train.get('lr', '?')}, batch {train.get('batch_size', '?')}, seed {train.get('seed', '?')}"
                    + (f", {train['train_subset']} training images" if train.get("train_subset") else "")
                    + (f", label noise {train['label_noise']}" if train.get("label_noise") else "") + ")")
    elif config.get("external_checkpoint"):
        bits.append(f"external checkpoint {Path(config['external_checkpoint']).name}")
    return " — ".join(bits)


def settings_of(contexts: list[dict], epochs: Iterable | None = None, **extra) -> dict:
    """What a claim's numbers were computed on: each context key with one value, or the list
    of the distinct values when checkpoints differ."""
    out: dict[str, Any] = {}
    for key in SETTING_KEYS:
        values = []
        for c in contexts:
            v = c.get(key)
            if v is not None and v not in values:
                values.append(v)
        if values:
            out[key] = values[0] if len(values) == 1 else values
    if epochs is not None:
        out["epochs"] = sorted(set(epochs), key=lambda e: (isinstance(e, str), e))
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def settings_text(s: dict) -> str:
    """'cifar10, n=128 (subset seed 0), params all (78,042), BN frozen, fp32, seed 0, epochs 0,1,2'."""
    parts = []
    if "dataset" in s:
        parts.append(str(s["dataset"]))
    if "examples" in s:
        seed = f" (subset seed {s['subset_seed']})" if "subset_seed" in s else ""
        parts.append(f"n={s['examples']}{seed}")
    if "param_subset" in s:
        num = s.get("num_params")
        parts.append(f"params {s['param_subset']}" + (f" ({num:,})" if isinstance(num, int) else ""))
    if "bn_policy" in s:
        parts.append(f"BN {s['bn_policy']}" + (f" ({s['bn_statistics']})" if "bn_statistics" in s else ""))
    if s.get("repeats", 1) != 1:
        parts.append(f"{s['repeats']} repeats ({s.get('repeat_mode', '?')})")
    if "precision" in s:
        parts.append(str(s["precision"]))
    if "train_seed" in s:
        parts.append(f"training seed {s['train_seed']}")
    if s.get("label_noise"):
        parts.append(f"label noise {s['label_noise']}")
    for key, value in s.items():
        if key in SETTING_KEYS or key == "epochs":
            continue
        parts.append(f"{key.replace('_', ' ')} {value}")
    if "epochs" in s:
        parts.append("epochs " + ", ".join(str(e) for e in s["epochs"]))
    return "; ".join(parts)
