"""`landscape.analyze`: the whole analysis pipeline over your own network's checkpoints, in one call.

The same pipeline as `landscape analyze CHECKPOINTS --model ... --dataset ...`: every checkpoint,
repeats, stored and resumable results, then `landscape figures` / `landscape report` on ``out``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .checkpoint import ModelFactory
from .errors import LandscapeError
from .results import RunDir
from .runtime import Runtime
from .settings import AnalysisSettings


def analyze(model: str | Callable | ModelFactory, checkpoints: str | os.PathLike, data, *,
            out: str | os.PathLike, settings: AnalysisSettings | dict | None = None,
            runtime: Runtime | None = None, model_kwargs: dict | None = None,
            budget_minutes: float | None = None) -> RunDir:
    """Measure every checkpoint of ``checkpoints`` (a file or a folder) and store the results in ``out``.

    ``model``: a callable returning an ``nn.Module`` (called with ``model_kwargs``), the text
    ``"pkg.mod:fn"`` / ``"path/file.py:fn"``, or a built-in architecture name (``"resnet32"``).
    ``data``: a dataset name (``"cifar10"``, ``"folder:cifar10-jpeg"``, ...), a ``Dataset``, or
    tensors ``(inputs, labels)`` / ``(inputs, labels, test_inputs, test_labels)`` (uint8 images are
    scaled to [0, 1], float inputs used as they are). ``settings``: ``AnalysisSettings`` or a dict of
    its fields. Returns the results folder (read it with ``landscape.readers``, draw it with
    ``landscape figures``).
    """
    from .analysis import Analysis
    from .sources import tensor_dataset

    if isinstance(model, str) and ":" not in model:
        network = model  # a built-in architecture
        if model_kwargs:
            raise LandscapeError("model_kwargs goes with your own network, not a built-in architecture")
    else:
        network = ModelFactory.of(model, model_kwargs)
    if isinstance(data, (tuple, list)):
        if len(data) not in (2, 4):
            raise LandscapeError(f"data: give (inputs, labels) or (inputs, labels, test_inputs, test_labels), "
                                 f"not {len(data)} items")
        data = tensor_dataset(tuple(data[:2]), tuple(data[2:]) if len(data) == 4 else None)
    if isinstance(settings, dict):
        settings = AnalysisSettings(**settings)
    if not Path(checkpoints).exists():
        raise LandscapeError(f"checkpoints {checkpoints} do not exist")
    analysis = Analysis(out, settings or AnalysisSettings(), runtime or Runtime(progress=False),
                        checkpoint=checkpoints, arch=network, dataset=data, budget_minutes=budget_minutes)
    analysis.run_all()
    return analysis.run
