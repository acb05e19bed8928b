"""The `landscape` command line: thin wrappers that parse options, call the library, print."""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import LandscapeError


class _Group(click.Group):
    """Turns library errors into one line and a non-zero exit, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except LandscapeError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted; finished work is saved, run the same command again to resume",
                       err=True)
            sys.exit(130)


def _int_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def data_options(f):
    f = click.option("--download", is_flag=True, help="Download cifar10/cifar100 with torchvision if missing.")(f)
    f = click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
                     help="Where decoded datasets are cached (default: ~/.cache/landscape).")(f)
    f = click.option("--data-root", type=click.Path(), default=None, envvar="LANDSCAPE_DATA_ROOT",
                     help="Folder holding the datasets (env LANDSCAPE_DATA_ROOT).")(f)
    return f


device_option = click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="landscape")
def main():
    """Measure the loss-landscape geometry behind over-parameterization convergence theory."""


@main.command()
@click.option("--arch", default=None, help="vgg19_bn, resnet32, resnet110, resnetD (D = 6n+2).")
@click.option("--dataset", default=None, help="cifar10, cifar100 or folder:PATH.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--width", type=int, default=None, help="Channel multiplier (over-parameterization).")
@click.option("--epochs", type=int, default=None, help="Epochs (paper: 164).")
@click.option("--lr", type=float, default=None, help="Initial learning rate (paper: 0.1).")
@click.option("--milestones", default=None,
              help="Epochs where lr is x0.1, comma-separated; values < 1 are fractions of --epochs "
                   "(default: 81,122 scaled to --epochs).")
@click.option("--wd", type=float, default=None, help="Weight decay (default 1e-4 ResNet, 5e-4 VGG).")
@click.option("--momentum", type=float, default=None, help="SGD momentum (paper: 0.9).")
@click.option("--batch-size", type=int, default=None, help="Batch size (paper: 128).")
@click.option("--seed", type=int, default=None, help="Seed for init, subsets, noise, batches (default 0).")
@click.option("--train-subset", type=int, default=None, help="Train on a balanced subset of N images.")
@click.option("--test-subset", type=int, default=None, help="Evaluate on a balanced subset of N test images.")
@click.option("--label-noise", type=float, default=None, help="Fraction p of training labels replaced by another class.")
@click.option("--train", "train_params", type=click.Choice(["all", "hidden"]), default=None,
              help="Train all parameters or only hidden layers (the theorem's setting).")
@click.option("--save-at", default=None, help="Checkpoint epochs (default 0,5,40,90,120,130,160 scaled to --epochs; the last is always saved).")
@click.option("--track-every", type=int, default=None, help="Record F and ||grad F||^2 every K iterations.")
@click.option("--track-subset", type=int, default=None, help="Examples used by --track-every (default 512).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
              help="Training precision (auto: bf16 autocast on CUDA, fp32 on CPU).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@data_options
@device_option
def train(arch, dataset, out, width, epochs, lr, milestones, wd, momentum, batch_size, seed,
          train_subset, test_subset, label_noise, train_params, save_at, track_every, track_subset,
          precision, resume, quiet, data_root, cache_dir, download, device):
    """Train a network with the paper's recipe, saving checkpoints for the analysis."""
    from .train import TrainConfig, train as run_training

    given = dict(arch=arch, dataset=dataset, width=width, epochs=epochs, lr=lr,
                 milestones=_float_list(milestones), weight_decay=wd, momentum=momentum,
                 batch_size=batch_size, seed=seed, train_subset=train_subset,
                 test_subset=test_subset, label_noise=label_noise, train_params=train_params,
                 save_at=_int_list(save_at), track_every=track_every, track_subset=track_subset,
                 precision=precision)
    if not resume and (arch is None or dataset is None):
        raise click.UsageError("--arch and --dataset are required (unless --resume)")
    config = TrainConfig(arch=arch or "", dataset=dataset or "",
                         **{k: v for k, v in given.items() if v is not None and k not in ("arch", "dataset")})
    run = run_training(config, out, data_root=data_root, cache_dir=cache_dir, download=download,
                       device=device, resume=resume, overrides=given, progress=not quiet,
                       echo=click.echo)
    click.echo(f"checkpoints in {run.checkpoints}")
