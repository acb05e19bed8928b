"""The `landscape` command line: thin wrappers that parse options, call the library, print."""

from __future__ import annotations

import math
import sys

import click

from . import __version__
from .errors import LandscapeError
from .recipe import (FIGURE_EPOCHS_TEXT, MILESTONES_TEXT, PAPER_EPOCHS, PAPER_LR, PAPER_MOMENTUM, PRESET_HELP,
                     SAVE_AT_TEXT)
from .settings import DEFAULT_MEASUREMENTS, MAX_BATCH_SIZE, MAX_EPOCHS, MAX_PARAMETERS, AnalysisSettings

_A = AnalysisSettings  # the analysis defaults, read from their one definition


def _os_error_line(exc: OSError) -> str:
    """'cannot access PATH: Permission denied' (the file an OSError is about, and why)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    files = [f for f in (exc.filename, getattr(exc, "filename2", None)) if f is not None]
    return f"cannot access {' -> '.join(map(str, files))}: {reason}" if files else reason


class _Group(click.Group):
    """Turns library errors into one line and a non-zero exit, never a traceback.

    Besides LandscapeError: an OSError (read-only folder, full disk, ...) names its file, and an
    unpickling error (a damaged or unsafe torch file read without a file-aware loader) says so.
    """

    def invoke(self, ctx):
        """Run the command; library errors, OSErrors and Ctrl-C become one line and an exit code."""
        import pickle

        try:
            return super().invoke(ctx)
        except LandscapeError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(_os_error_line(exc)) from None
        except (pickle.UnpicklingError, EOFError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise click.ClickException(f"a damaged or unsafe file could not be read ({first})") from None
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


class _Number(click.ParamType):
    """A finite float within bounds: ``low`` (inclusive, or exclusive if ``strict``) and ``below``."""

    name = "number"

    def __init__(self, low: float | None = None, strict: bool = False, below: float | None = None):
        self.low, self.strict, self.below = low, strict, below

    def convert(self, value, param, ctx):
        """The number, or a one-line usage error naming the option and the allowed range."""
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value} is not a finite number", param, ctx)
        if self.low is not None and (number <= self.low if self.strict else number < self.low):
            self.fail(f"{value} must be {'>' if self.strict else '≥'} {self.low:g}", param, ctx)
        if self.below is not None and number >= self.below:
            self.fail(f"{value} must be < {self.below:g}", param, ctx)
        return number


POSITIVE = _Number(0.0, strict=True)
NON_NEGATIVE = _Number(0.0)
COUNT = click.IntRange(min=1)
COUNT0 = click.IntRange(min=0)
SEED = click.IntRange(0, 2**31 - 1)


def _widths(text: str | None) -> list[float] | None:
    """--widths: positive finite multipliers, whole ones as integers (so cell folders read w1, w0.5)."""
    values = _checked_list(text, _float_list, "--widths needs positive numbers", lambda w: math.isfinite(w) and w > 0)
    return None if values is None else [int(w) if float(w).is_integer() else w for w in values]


def _checked_list(text: str | None, parse, what: str, ok) -> list | None:
    values = parse(text)
    if values is not None:
        bad = [v for v in values if not ok(v)]
        if bad:
            raise click.BadParameter(f"{what}, got {bad[0]!r} in {text!r}")
    return values


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
@click.option("--arch", default=None, help="vgg19_bn, resnet32, resnet110, resnetD (D = 6n+2), mlpL[_dD].")
@click.option("--dataset", default=None, help="cifar10, cifar100, folder:PATH or synthetic:separated?n=..&d=..&delta=...")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--width", type=POSITIVE, default=None,
              help="Channel multiplier (over-parameterization; fractions such as 0.25 shrink the network; "
                   f"at most {MAX_PARAMETERS:,} parameters).")
@click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), default=None,
              help=f"Epochs (paper: {PAPER_EPOCHS}; at most {MAX_EPOCHS:,}).")
@click.option("--lr", type=POSITIVE, default=None, help=f"Initial learning rate (paper: {PAPER_LR}).")
@click.option("--milestones", default=None,
              help="Epochs where lr is x0.1, comma-separated; values < 1 are fractions of --epochs "
                   f"(default: {MILESTONES_TEXT} scaled to --epochs).")
@click.option("--wd", type=NON_NEGATIVE, default=None, help="Weight decay (default 1e-4 ResNet, 5e-4 VGG).")
@click.option("--momentum", type=_Number(0.0, below=1.0), default=None, help=f"SGD momentum (paper: {PAPER_MOMENTUM}).")
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH_SIZE), default=None,
              help=f"Batch size (paper: 128; at most {MAX_BATCH_SIZE:,}).")
@click.option("--seed", type=SEED, default=None, help="Seed for init, subsets, noise, batches (default 0).")
@click.option("--train-subset", type=COUNT, default=None, help="Train on a balanced subset of N images.")
@click.option("--test-subset", type=COUNT, default=None, help="Evaluate on a balanced subset of N test images.")
@click.option("--label-noise", type=_Number(), default=None, help="Fraction p of training labels replaced by another class.")
@click.option("--augment/--no-augment", default=None,
              help="The recipe's pad-4 crop + flip (default on); off lets a small subset be fitted exactly.")
@click.option("--train", "train_params", type=click.Choice(["all", "hidden"]), default=None,
              help="Train all parameters or only hidden layers (the theorem's setting).")
@click.option("--save-at", default=None, help=f"Checkpoint epochs, 0 to --epochs (default {SAVE_AT_TEXT} scaled to "
                                              f"--epochs; the last is always saved).")
@click.option("--track-every", type=COUNT0, default=None, help="Record F and ||grad F||^2 every K iterations.")
@click.option("--track-subset", type=COUNT, default=None, help="Examples used by --track-every (default 512).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
              help="Training precision (auto: bf16 autocast on CUDA, fp32 on CPU).")
@click.option("--loss", type=click.Choice(["cross_entropy", "mse"]), default=None,
              help="Training loss (default cross_entropy; mse = ½‖f(x) − y‖², the theorem's ℓ2 loss).")
@click.option("--stop-at-loss", type=NON_NEGATIVE, default=None,
              help="Stop after the first epoch whose training loss is at most this (the sweep's common target).")
@click.option("--track-sharpness-every", type=COUNT0, default=None,
              help="Record λ_max on the tracked examples every K iterations, beside 2/lr (edge of stability).")
@click.option("--sync-bn", "sync_bn", is_flag=True, default=None,
              help="Under torchrun: batch norm over the global batch (SyncBatchNorm, CUDA), not each rank's part.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out.")
@click.option("--force", is_flag=True,
              help="Start the run in --out even though it holds other files (never over them: refused when "
                   "a file the run writes, e.g. log.jsonl or checkpoints/, is already there).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--tensorboard", type=click.Path(file_okay=False), default=None,
              help="Also write loss, accuracy and lr per epoch, and the --track-every / --track-sharpness-every "
                   "scalars, to this TensorBoard folder (needs the tensorboard package).")
@data_options
@device_option
def train(arch, dataset, out, width, epochs, lr, milestones, wd, momentum, batch_size, seed,
          train_subset, test_subset, label_noise, augment, train_params, save_at, track_every, track_subset,
          precision, loss, stop_at_loss, track_sharpness_every, sync_bn, resume, force, quiet, tensorboard,
          data_root, cache_dir, download, device):
    """Train a network with the paper's recipe, saving checkpoints for the analysis.

    Under `torchrun --nproc-per-node N` the global batch is split across the N ranks
    (DistributedDataParallel); rank 0 writes the run.
    """
    from . import distributed
    from .runtime import Runtime
    from .train import TrainConfig, train as run_training

    given = dict(arch=arch, dataset=dataset, width=width, epochs=epochs, lr=lr,
                 milestones=_checked_list(milestones, _float_list, "--milestones needs finite positive numbers",
                                          lambda m: math.isfinite(m) and m > 0),
                 weight_decay=wd, momentum=momentum,
                 batch_size=batch_size, seed=seed, train_subset=train_subset,
                 test_subset=test_subset, label_noise=label_noise, augment=augment,
                 train_params=train_params,
                 save_at=_checked_list(save_at, _int_list, "--save-at needs epochs ≥ 0", lambda e: e >= 0),
                 track_every=track_every, track_subset=track_subset,
                 precision=precision, loss=loss, stop_at_loss=stop_at_loss,
                 track_sharpness_every=track_sharpness_every, sync_bn=sync_bn)
    if not resume and (arch is None or dataset is None):
        raise click.UsageError("--arch and --dataset are required (unless --resume)")
    config = TrainConfig(arch=arch or "", dataset=dataset or "",
                         **{k: v for k, v in given.items() if v is not None and k not in ("arch", "dataset")})
    with distributed.session(device) as group:
        runtime = Runtime(data_root, cache_dir, download, device, not quiet, click.echo, group)
        run = run_training(config, out, runtime, resume=resume, overrides=given, force=force,
                           tensorboard=tensorboard)
    if group.is_writer:
        click.echo(f"checkpoints in {run.checkpoints}")


@main.command()
@click.option("--preset", type=click.Choice(list(PRESET_HELP)), default="quick", show_default=True,
              help="; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items()) + ".")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder, one sub-folder per cell.")
@click.option("--only", multiple=True, help="Run only this cell, e.g. resnet32/cifar10 (repeatable).")
@click.option("--shard", default=None, metavar="I/K",
              help="Machine I of K: run only this machine's deterministic share of the cells (no coordination).")
@click.option("--cifar10", default="cifar10", show_default=True,
              help="Dataset standing for CIFAR-10, e.g. folder:cifar10-jpeg.")
@click.option("--cifar100", default="cifar100", show_default=True, help="Dataset standing for CIFAR-100.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@data_options
@device_option
def reproduce(preset, out, only, shard, cifar10, cifar100, seed, quiet, data_root, cache_dir, download, device):
    """Train, analyze, draw and report every cell of a preset (rerun to resume)."""
    import time

    from .distributed import launched
    from .reproduce import reproduce as run_preset
    from .runtime import Runtime

    if launched():
        raise click.UsageError("reproduce runs as one process per machine: spread cells with --shard I/K, or run "
                               "`landscape train` and `landscape analyze` under torchrun for one cell")
    started = time.perf_counter()
    runtime = Runtime(data_root, cache_dir, download, device, not quiet, click.echo)
    done = run_preset(preset, out, runtime, only=list(only), shard=shard, cifar10=cifar10, cifar100=cifar100,
                      seed=seed)
    if done.folders:
        click.echo(f"done in {time.perf_counter() - started:.0f} s: " + ", ".join(str(f) for f in done.folders))
    if done.report is not None:
        click.echo(f"report: {done.report}")


@main.command()
@click.argument("target", type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Where results go when TARGET is a checkpoint file or folder "
                   "(default: TARGET_analysis next to it).")
@click.option("--arch", default=None,
              help="Built-in architecture of checkpoint files (read off their keys if omitted).")
@click.option("--model", default=None, metavar="MODULE:CALLABLE",
              help="Your own network for checkpoint files: pkg.mod:fn or path/to/file.py:fn, "
                   "returning an nn.Module.")
@click.option("--model-kwargs", default=None, metavar="JSON",
              help='Keyword arguments for --model, a JSON object, e.g. \'{"width": 2}\'.')
@click.option("--dataset", default=None,
              help="Dataset of checkpoint files: cifar10, cifar100, folder:PATH or synthetic:...")
@click.option("--measure", "measurements", default=None,
              help="Comma-separated: dominance, probes, curvature, spectrum, second_order, surface, random_surface, "
                   "interpolation, trajectory (default: all but random_surface and spectrum).")
@click.option("--epochs", default=None, help="Checkpoint epochs to analyze (default: all).")
@click.option("--subset", type=COUNT, default=None, help="Balanced subset of N training examples (default: all).")
@click.option("--test-subset", type=COUNT0, default=_A.test_subset, show_default=True,
              help="Balanced subset of at most N test examples (0: the whole test split).")
@click.option("--seed", type=SEED, default=_A.seed, show_default=True, help="Seed for subsets and random directions.")
@click.option("--repeats", type=COUNT, default=_A.repeats, show_default=True,
              help="Measure dominance, probes, curvature and the second-order test on K disjoint subsets "
                   "of --subset examples (or K direction seeds when the set is too small to split).")
@click.option("--bn-stats", type=click.Choice(["recompute", "checkpoint"]), default=_A.bn_stats, show_default=True,
              help="Batch-norm statistics at each checkpoint: exact statistics of θ on the analyzed examples "
                   "(recompute), or the checkpoint's running averages.")
@click.option("--params", type=click.Choice(["all", "hidden"]), default=_A.params, show_default=True,
              help="Parameter subset moved by probes, curvature and surfaces.")
@click.option("--bn", type=click.Choice(["frozen", "batch"]), default=_A.bn, show_default=True,
              help="Batch norm: fixed statistics (frozen, see --bn-stats) or each batch's statistics.")
@click.option("--loss", type=click.Choice(["cross_entropy", "mse"]), default=_A.loss,
              help="Loss F is the mean of (default: the run's training loss).")
@click.option("--precision", type=click.Choice(["fp32", "fp64"]), default=_A.precision, show_default=True)
@click.option("--surface-precision", type=click.Choice(["fp32", "fp64", "bf16"]), default=None,
              help="Precision of surface grids (bf16 on CUDA only; default: --precision).")
@click.option("--batch-size", type=COUNT, default=None, help="Evaluation batch size (default 128 CPU, 1024 CUDA).")
@click.option("--gaussian", "probe_gaussian", type=COUNT0, default=_A.probe_gaussian, show_default=True, help="Gaussian probe directions.")
@click.option("--filter", "probe_filter", type=COUNT0, default=_A.probe_filter, show_default=True, help="Filter-normalized probe directions.")
@click.option("--probe-steps", type=COUNT, default=_A.probe_steps, show_default=True, help="Step magnitudes per sign.")
@click.option("--probe-range", default=f"{_A.probe_smallest:g},{_A.probe_largest:g}", show_default=True,
              help="Smallest,largest step as fractions of ||theta||.")
@click.option("--top", "curvature_top", type=COUNT, default=_A.curvature_top, show_default=True, help="Largest Hessian eigenpairs.")
@click.option("--curvature-subset", type=COUNT0, default=_A.curvature_subset, show_default=True,
              help="Hessian over a balanced subset of N of the analyzed examples (0: all of them).")
@click.option("--sigma", "curvature_sigma", type=NON_NEGATIVE, default=_A.curvature_sigma, show_default=True,
              help="Smoothing std for the smoothed Hessian (0: plain Hessian).")
@click.option("--smoothing-samples", "curvature_samples", type=COUNT, default=_A.curvature_samples, show_default=True)
@click.option("--eig-tol", "curvature_tol", type=NON_NEGATIVE, default=_A.curvature_tol, show_default=True)
@click.option("--eig-max-matvecs", "curvature_max_matvecs", type=COUNT, default=_A.curvature_max_matvecs, show_default=True,
              help="Most Hessian-vector products of the one Lanczos run for the top and most negative pairs.")
@click.option("--eig-max-basis", "curvature_max_basis", type=click.IntRange(min=4), default=_A.curvature_max_basis,
              show_default=True, help="Lanczos vectors held at once (memory: this many parameter vectors).")
@click.option("--alignment-k", type=COUNT0, default=_A.alignment_k, show_default=True,
              help="Share of the gradient in the top-k Hessian eigenspace (same Lanczos run; 0: off).")
@click.option("--spectrum-probes", type=COUNT, default=_A.spectrum_probes, show_default=True,
              help="spectrum: Rademacher probes of the stochastic Lanczos quadrature.")
@click.option("--spectrum-steps", type=COUNT, default=_A.spectrum_steps, show_default=True,
              help="spectrum: Lanczos steps per probe (probes × steps Hessian-vector products).")
@click.option("--trace-samples", type=COUNT0, default=_A.trace_samples, show_default=True, help="Hutchinson probes for tr(H) (0: skip).")
@click.option("--grid", "surface_points", type=click.IntRange(min=3), default=_A.surface_points, show_default=True, help="Surface points per axis.")
@click.option("--surface-range", type=POSITIVE, default=None, help="Surface half-width (default: the documented rule).")
@click.option("--interp-points", "interpolation_points", type=click.IntRange(min=3), default=_A.interpolation_points, show_default=True)
@click.option("--interp-bn", "interpolation_bn", type=click.Choice(["recompute", "interpolate", "batch"]),
              default=_A.interpolation_bn, show_default=True, help="Batch-norm statistics along interpolations.")
@click.option("--interp-pairs", "interpolation_pairs", default=_A.interpolation_pairs, show_default=True,
              help="init-final, consecutive, to-final (every checkpoint to the last) or A-B epoch pairs, comma-separated.")
@click.option("--ntk-examples", type=COUNT0, default=_A.ntk_examples, show_default=True,
              help="trajectory: drift of the empirical NTK from the first checkpoint on N examples (0: skip).")
@click.option("--budget", "budget_minutes", type=POSITIVE, default=None,
              help="Minutes the analysis may take: eigensolve, density, grid and probe settings shrink to fit "
                   "(the choice is printed and kept in analysis/budget.json).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@data_options
@device_option
def analyze(target, out, arch, model, model_kwargs, dataset, measurements, epochs, probe_range, budget_minutes,
            quiet, data_root, cache_dir, download, device, **options):
    """Measure gradient dominance, semi-smoothness, curvature, surfaces and interpolations.

    TARGET is a run directory made by `landscape train`, or a checkpoint file or a folder of them
    (ours, bearpaw/pytorch-classification's, Lightning's, plain state_dicts or .safetensors; epochs from
    the file names) together with --dataset and, for your own network, --model. Under
    `torchrun --nproc-per-node N` the analyzed examples are sharded across the N ranks, with the
    numbers of one process.
    """
    from pathlib import Path

    from . import distributed
    from .analysis import Analysis
    from .runtime import Runtime
    from .sources import is_checkpoint_target

    smallest, largest = (_float_list(probe_range) + [None, None])[:2]
    if smallest is None or largest is None or not 0 < smallest < largest < math.inf:
        raise click.BadParameter("--probe-range needs two increasing finite positive numbers, e.g. 1e-5,0.05")
    for name in ("test_subset", "curvature_subset"):  # 0: all of them
        options[name] = options[name] or None
    settings = AnalysisSettings(
        measurements=([m.strip() for m in measurements.split(",")] if measurements is not None
                      else list(DEFAULT_MEASUREMENTS)),
        epochs=_checked_list(epochs, _int_list, "--epochs needs epochs ≥ 0", lambda e: e >= 0), probe_smallest=smallest, probe_largest=largest, **options)
    target = Path(target)
    external = is_checkpoint_target(target)
    network = _network(arch, model, model_kwargs, external)
    with distributed.session(device) as group:
        runtime = Runtime(data_root, cache_dir, download, device, not quiet, click.echo, group)
        if external:
            run_dir = Path(out) if out else (target.with_suffix("").with_name(target.stem + "_analysis")
                                             if target.is_file() else target.with_name(target.name + "_analysis"))
            analysis = Analysis(run_dir, settings, runtime, checkpoint=target, arch=network, dataset=dataset,
                                budget_minutes=budget_minutes)
        else:
            analysis = Analysis(target, settings, runtime, budget_minutes=budget_minutes)
        analysis.run_all()
    if group.is_writer:
        click.echo(f"results in {analysis.run.analysis}")


def _network(arch: str | None, model: str | None, model_kwargs: str | None, external: bool):
    """The network of checkpoint files: a built-in --arch name, your --model (a ModelFactory), or None."""
    import json

    if model is None:
        if model_kwargs is not None:
            raise click.UsageError("--model-kwargs goes with --model")
        return arch
    if arch is not None:
        raise click.UsageError("give --arch (a built-in network) or --model (your own), not both")
    if not external:
        raise click.UsageError("--model is for checkpoint files or folders; a run directory knows its network")
    try:
        kwargs = json.loads(model_kwargs) if model_kwargs is not None else {}
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON ({exc.msg} at character {exc.pos})",
                                 param_hint="--model-kwargs") from None
    if not isinstance(kwargs, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"width\": 2}'", param_hint="--model-kwargs")
    from .checkpoint import ModelFactory

    return ModelFactory.of(model, kwargs)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the figures (default: RUN_DIR/figures).")
@click.option("--epochs", default=None,
              help="Checkpoint epochs for the per-checkpoint figures (surfaces, probes), comma-separated "
                   f"(default: those of the paper's Figure 1, {FIGURE_EPOCHS_TEXT}, present in a full-length "
                   "run; otherwise every analyzed epoch).")
@click.option("--floor", type=NON_NEGATIVE, default=None,
              help="Points with F at or below this do not set the envelope constant c (default 0.01).")
def figures(run_dir, out, epochs, floor):
    """Draw the figures of a run from its stored results (PNG and PDF).

    Figure 1 of the paper (F over the gradient / most-negative-curvature plane, 3D and
    contour), ||grad F||^2 against F with the envelope c*F, the semi-smoothness probes, the
    interpolations and the training curves with the extreme Hessian eigenvalues. Nothing is
    recomputed; a figure whose results are absent is skipped and said so.
    """
    from .plots import make_figures
    from .sources import refuse_cell_folder
    from .verdicts import DOMINANCE_F_FLOOR

    refuse_cell_folder(run_dir, "figures")
    result = make_figures(run_dir, out, _int_list(epochs),
                          floor=DOMINANCE_F_FLOOR if floor is None else floor, echo=click.echo)
    if not result.paths:
        raise click.ClickException(f"{run_dir} holds no results to draw: run `landscape train` and "
                                   f"`landscape analyze` first")
    click.echo(f"{len(result.paths)} files in {result.paths[0].parent}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for report.md/.html/.json (default: RUN_DIR for one run, the runs' common "
                   "parent for several).")
@click.option("--figures", "figure_mode", type=click.Choice(["auto", "redraw", "keep"]), default="auto",
              show_default=True,
              help="auto: draw the figures unless those in place were drawn from the current results; redraw: always; "
                   "keep: embed those already there.")
@click.option("--epochs", default=None, help="Checkpoint epochs for the per-checkpoint figures, when drawn.")
@click.option("--floor", type=NON_NEGATIVE, default=None,
              help="Gradient dominance: points with F at or below this do not set c (default 0.01).")
def report(run_dirs, out, figure_mode, epochs, floor):
    """Write the verdict report of one run, or a combined report of several (one section per cell).

    For each claim of the paper (gradient dominance, semi-smoothness, little help from
    second-order information, monotone interpolation, accuracy reached) it gives the verdict
    (holds / fails / not measured), the numbers, the threshold and what they were computed on.
    Writes report.md, a self-contained report.html (figures embedded) and report.json.
    """
    from .report import write_report
    from .sources import refuse_cell_folder
    from .verdicts import DOMINANCE_F_FLOOR

    for run_dir in run_dirs:
        refuse_cell_folder(run_dir, "report")

    written = write_report(list(run_dirs), out, figures={"auto": "auto", "redraw": True, "keep": False}[figure_mode],
                           epochs=_int_list(epochs), floor=DOMINANCE_F_FLOOR if floor is None else floor)
    cells = written["cells"]
    for name, verdicts in cells:
        prefix = f"{name}: " if len(cells) > 1 else ""
        for claim in verdicts.claims:
            click.echo(f"{prefix}{claim.title}: {claim.verdict} ({claim.summary})")
    click.echo(f"report in {written['markdown']} and {written['html']}")


@main.command()
@click.option("--preset", type=click.Choice(["theorem", "theorem-n", "theorem-depth", "resnet20", "smoke"]),
              default=None,
              help="A ready sweep: theorem (bias-free ReLU MLPs, m = 16…512, 5 seeds, on δ-separated unit vectors, "
                   "ℓ2 loss, η ∝ 1/m), theorem-n (sample sizes 16…256 at one width), theorem-depth (depths 1…8), "
                   "resnet20 (widths ¼…2 on a CIFAR-10 subset), smoke (seconds, for tests).")
@click.option("--arch", default=None, help="resnetD or mlpL[_dD] (--depths replaces D or L).")
@click.option("--dataset", default=None, help="cifar10, folder:PATH or synthetic:separated?n=..&d=..&delta=...")
@click.option("--widths", default=None, help="Width multipliers, comma-separated (e.g. 0.5,1,2,4; an mlp's m is "
                                             "64 × width, so a multiple of 1/64).")
@click.option("--depths", default=None, help="Depths, comma-separated (default: the depth in --arch).")
@click.option("--seeds", default=None, help="Seeds, comma-separated (the spread of every slope).")
@click.option("--target-loss", type=NON_NEGATIVE, default=None, help="Train every cell to this training loss.")
@click.option("--max-epochs", type=COUNT, default=None, help="Stop there if the target is not reached.")
@click.option("--lr", type=POSITIVE, default=None, help="Learning rate (at the smallest width, see --lr-scaling).")
@click.option("--lr-scaling", type=click.Choice(["constant", "theorem"]), default=None,
              help="constant: --lr at every width; theorem: η = lr·(smallest width)/width, the theorem's η ∝ 1/m "
                   "(default of the theorem presets: theorem).")
@click.option("--sizes", default=None, help="Sample sizes n, comma-separated: the sample-size axis (synthetic data).")
@click.option("--compare", type=click.Path(file_okay=False), default=None,
              help="Another sweep's folder (e.g. the same grid at the other --lr-scaling): the report lists "
                   "which verdicts change against it.")
@click.option("--momentum", type=_Number(0.0, below=1.0), default=None)
@click.option("--batch-size", type=COUNT, default=None)
@click.option("--train-subset", type=COUNT, default=None, help="Balanced subset of N training examples.")
@click.option("--loss", type=click.Choice(["cross_entropy", "mse"]), default=None)
@click.option("--train", "train_params", type=click.Choice(["all", "hidden"]), default=None)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder of the sweep's cells and report.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@data_options
@device_option
def sweep(preset, arch, dataset, widths, depths, seeds, target_loss, max_epochs, lr, lr_scaling, sizes, compare,
          momentum, batch_size, train_subset, loss, train_params, out, quiet, data_root, cache_dir, download, device):
    """Train and analyze a network at several widths (and depths) and judge each trend against the theory.

    Every cell is trained to the same target loss; the report states, per quantity, the direction
    the theory predicts for wider networks and whether the measured log-log slope agrees, with
    its spread over seeds. Rerun the command to resume.
    """
    import dataclasses
    import time

    from .runtime import Runtime
    from .sweep import SweepConfig, run_sweep, sweep_preset

    given = dict(arch=arch, dataset=dataset,
                 widths=_widths(widths),
                 depths=_checked_list(depths, _int_list, "--depths needs positive integers", lambda d: d >= 1),
                 seeds=_checked_list(seeds, _int_list, "--seeds needs integers ≥ 0", lambda s: s >= 0),
                 sizes=_checked_list(sizes, _int_list, "--sizes needs integers ≥ 2", lambda n: n >= 2),
                 target_loss=target_loss, max_epochs=max_epochs, lr=lr, lr_scaling=lr_scaling, momentum=momentum,
                 batch_size=batch_size, train_subset=train_subset, loss=loss, train_params=train_params)
    given = {k: v for k, v in given.items() if v is not None}
    if preset:
        config = dataclasses.replace(sweep_preset(preset), **given)
    else:
        missing = [k for k in ("arch", "dataset", "widths") if k not in given]
        if missing:
            raise click.UsageError(f"--{missing[0]} is required without --preset")
        config = SweepConfig(**given)
    started = time.perf_counter()
    summary = run_sweep(config, out, Runtime(data_root, cache_dir, download, device, not quiet, click.echo), compare)
    for q, info in summary["quantities"].items():
        click.echo(f"{info['label']}: predicted {info['predicted']} with width; measured: {info['judgement']}")
    click.echo(f"done in {time.perf_counter() - started:.0f} s; report: {out}/report.md")
