"""The paper's training recipe and checkpoint epochs, defined once (Allen-Zhu, Li, Song 2019, §7).

SGD with momentum 0.9, learning rate 0.1 divided by 10 at epochs 81 and 122 of 164, batch 128,
weight decay 1e-4 for ResNets and 5e-4 for VGG; landscapes at epochs 5, 40, 90, 120, 130, 160.
Shorter runs keep the shape: every epoch scales by ``epochs / PAPER_EPOCHS``.
"""

from __future__ import annotations

PAPER_EPOCHS = 164
PAPER_MILESTONES = (81, 122)
PAPER_LR = 0.1
PAPER_GAMMA = 0.1
PAPER_MOMENTUM = 0.9
PAPER_BATCH_SIZE = 128
PAPER_SAVE_AT = (0, 5, 40, 90, 120, 130, 160)
PAPER_FIGURE_EPOCHS = (5, 40, 90, 120, 130, 160)  # the checkpoints of the paper's Figure 1


# The reproduction presets built on this recipe (landscape.reproduce.PRESETS defines them), for the CLI's help.
PRESET_HELP = {
    "paper": "the paper's 9 cells on full data (GPU)",
    "paper-cpu": "every network of the paper fitted on CIFAR-10 subsets, clean and noisy labels (CPU, about 10 h on 2 cores)",
    "paper-cpu-tiny": "paper-cpu at width 1/4 on a few images (a test)",
    "quick": "ResNet-32 on 100 images, 3 seeds (CPU, under 20 min)",
    "smoke": "tiny (a test)",
}


def paper_weight_decay(arch: str) -> float:
    """5e-4 for VGG, 1e-4 for ResNets, as in the training code the paper used."""
    return 5e-4 if arch.startswith("vgg") else 1e-4


def scaled_epoch(epoch: float, total: int) -> int:
    """The epoch at the same fraction of a ``total``-epoch schedule as ``epoch`` is of the paper's."""
    return round(epoch * total / PAPER_EPOCHS)


def scaled_figure_epochs(total: int) -> list[int]:
    """The paper's Figure 1 checkpoints on a ``total``-epoch schedule (never before epoch 1)."""
    return sorted({max(1, scaled_epoch(e, total)) for e in PAPER_FIGURE_EPOCHS})


def _list(values) -> str:
    return ",".join(str(v) for v in values)


SAVE_AT_TEXT, MILESTONES_TEXT, FIGURE_EPOCHS_TEXT = (_list(PAPER_SAVE_AT), _list(PAPER_MILESTONES),
                                                     _list(PAPER_FIGURE_EPOCHS))
