"""Checks that need the built model, data and trainer, run before a run folder exists.

Each failure is a :class:`ConfigError` whose message names the field or file and the fix;
``train.py`` prints it as one ``error:`` line. Without these checks the same mistakes surface
deep inside ``fit``, after the run folder and an offline W&B run were created.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import pytorch_lightning as pl
import torch

from lit_memo.data.image import starts_ranks_by_multiprocessing
from lit_memo.modules.projected import unanchored_groups

# options that define the constraint sets: resuming with another value changes the problem solved
CONSTRAINT_OPTIONS = ("regime", "radius", "zeta", "gamma")
ALLOW_FLAG = "--allow_resume_changes=true"


class ConfigError(ValueError):
    """A bad input, reported as one ``error: ...`` line before a run folder exists."""


class DataNotFound(ConfigError):
    """The dataset is not where the config says (tests that only build a config skip on it)."""


def check_links(model: pl.LightningModule, datamodule: pl.LightningDataModule, given: Mapping[str, Any]) -> None:
    """Model options linked from the data (input_shape, num_outputs, task) must agree when given."""
    for key, value in given.items():
        data_value = getattr(datamodule, key)
        same = (tuple(value) == tuple(data_value)) if isinstance(value, (list, tuple)) else value == data_value
        if not same:
            raise ConfigError(f"model.init_args.{key}={value!r} disagrees with the data's {key}={data_value!r}; "
                              f"drop model.init_args.{key}: it is set from the DataModule")


def check_optimizer(model: pl.LightningModule) -> None:
    """Build the module's optimizer (and scheduler) once, so its own checks (lr >= 0, ...) run now."""
    try:
        model.configure_optimizers()
    except (ValueError, TypeError) as err:
        raise ConfigError(f"the optimizer rejects its settings: {err}; fix model.init_args.optimizer (or the "
                          "top-level optimizer:, lr_hidden, lr_outer, lr_scheduler)") from err
    except Exception:  # noqa: BLE001 - e.g. a scheduler that needs the attached trainer: checked in fit
        pass


def check_trainer_flags(trainer_cfg: Mapping[str, Any]) -> None:
    """Flags Lightning rejects only deep in Trainer(...), with a traceback."""
    max_steps = trainer_cfg.get("max_steps")
    if max_steps is not None and max_steps < -1:
        raise ConfigError(f"trainer.max_steps={max_steps} must be >= 0, or -1 for no limit")
    accelerator = trainer_cfg.get("accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator}: no CUDA GPU is visible on this machine; "
                          "use --trainer.accelerator=cpu (or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps: MPS is not available here; use --trainer.accelerator=cpu (or auto)")


def check_launch(trainer: pl.Trainer) -> None:
    """train.py keeps the run's summary, metrics.csv and test phase in its own process: a strategy that
    starts the ranks as child processes of it (ddp_spawn, ddp_fork, ddp_notebook) would leave these
    empty (a fit of N steps summarised as 0 steps) and fail at the test launch."""
    if starts_ranks_by_multiprocessing(trainer):
        from pytorch_lightning.strategies.launchers.xla import _XLALauncher  # a subclass: TPU ranks start this way too

        if isinstance(trainer.strategy.launcher, _XLALauncher):
            raise ConfigError(f"trainer.strategy: {type(trainer.strategy).__name__} starts its TPU ranks as child "
                              "processes of train.py, which then never sees their metrics, summary or test results; "
                              "train.py does not support TPUs: use the modules from your own script")
        method = getattr(trainer.strategy.launcher, "_start_method", "multiprocessing")
        raise ConfigError(f"trainer.strategy: {type(trainer.strategy).__name__} with start method {method} (ddp_spawn, "
                          "ddp_fork, ddp_notebook) runs the ranks as child processes of train.py, which then never sees "
                          "their metrics, summary or test results; use --trainer.strategy=ddp (train.py starts itself "
                          "once per rank), or start the ranks with torchrun")


def check_data(datamodule: pl.LightningDataModule, trainer: pl.Trainer, ckpt: Optional[dict[str, Any]] = None) -> None:
    """Locate (or download) and set up the training data now: a missing folder, a subset larger
    than the dataset, a failed download or a checkpoint ``ckpt`` trained on other data is
    reported before anything is written.

    Set up on the trainer's device (the DataModule caches it: fit's own ``setup`` is then free).
    DDP processes other than local rank 0 set up in fit, after Lightning's ``prepare_data`` barrier.
    """
    if trainer.local_rank > 0:  # the trainer's cluster environment knows it (SLURM sets no LOCAL_RANK)
        return
    datamodule.trainer = trainer
    hparams = getattr(datamodule, "hparams", {})
    try:
        datamodule.prepare_data()
        datamodule.setup("fit")
        if ckpt is not None and hasattr(datamodule, "check_checkpoint"):
            datamodule.check_checkpoint(ckpt)  # resuming on other training data
    except FileNotFoundError as err:
        raise DataNotFound(str(err)) from err
    except ValueError as err:
        raise ConfigError(str(err)) from err
    except Exception as err:  # noqa: BLE001 - torchvision's download errors are RuntimeError, URLError, ...
        if hparams.get("download"):
            raise ConfigError(
                f"data.init_args.download=true: downloading failed ({type(err).__name__}: {' '.join(str(err).split())[:200]}); "
                "check the network, or fetch the files elsewhere and point data.init_args.data_dir at them") from err
        raise


def read_checkpoint(path: str) -> dict[str, Any]:
    """Load ``path`` on the CPU or say, naming the file, that it is not a Lightning checkpoint."""
    try:
        # memory-mapped: only what the checks touch is read; fit loads the file itself afterwards
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, garbage bytes, pickle errors...
        raise ConfigError(f"--ckpt_path {path}: not a readable checkpoint ({type(err).__name__}: "
                          f"{str(err).strip().splitlines()[0][:120] if str(err).strip() else 'no message'}); the file is "
                          "truncated or not a .ckpt written by train.py: pass a run's checkpoints/last.ckpt") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ConfigError(f"--ckpt_path {path}: no 'state_dict' inside, so not a Lightning checkpoint; "
                          "pass a run's checkpoints/last.ckpt")
    return ckpt


def check_checkpoint(path: str, model: pl.LightningModule, allow_changes: bool) -> dict[str, Any]:
    """The checkpoint must fit the model (names and shapes) and keep its constraint sets; returns it."""
    ckpt = read_checkpoint(path)
    config = Path(path).resolve().parent.parent / "config.yaml"
    hint = f"resume with the checkpoint's own config (--config {config})" if config.is_file() else \
        "resume with the config the checkpoint was trained with"
    saved, here = ckpt["state_dict"], model.state_dict()
    for key, value in here.items():
        if key not in saved:
            raise ConfigError(f"--ckpt_path {path} has no {key}: it was trained with another model; {hint}")
        if tuple(saved[key].shape) != tuple(value.shape):
            raise ConfigError(f"--ckpt_path {path}: {key} is {list(saved[key].shape)} in the checkpoint but "
                              f"{list(value.shape)} in this model (another width or dataset?); {hint}")
    extra = sorted(set(saved) - set(here))
    if extra:
        raise ConfigError(f"--ckpt_path {path} holds {extra[0]}, which this model lacks: another model; {hint}")
    _check_resume_changes(path, ckpt, model, allow_changes)
    return ckpt


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


def _check_resume_changes(path: str, ckpt: Mapping[str, Any], model: pl.LightningModule, allow: bool) -> None:
    """A resume that changes the constraint sets, or would anchor a ball at the resume point, is
    refused unless ``--allow_resume_changes=true``; other changed options are named in a warning."""
    saved: Mapping[str, Any] = ckpt.get("hyper_parameters") or {}
    now = dict(model.hparams)
    changed = {k: (saved[k], now[k]) for k in now if k in saved and not _same(saved[k], now[k])}
    problems = [f"{k} {changed[k][0]!r} -> {changed[k][1]!r}" for k in CONSTRAINT_OPTIONS if k in changed]
    groups = model.constraint_groups() if hasattr(model, "constraint_groups") else {}
    unanchored = unanchored_groups(groups, ckpt)
    if unanchored:
        problems.append(f"constraint group(s) {', '.join(unanchored)} have no anchor in the checkpoint, so the ball "
                        "would be centred on the resume point instead of the initial weights")
    if problems and not allow:
        raise ConfigError(f"--ckpt_path {path}: resuming would change the constraints: {'; '.join(problems)}. "
                          f"Resume with the original settings, or pass {ALLOW_FLAG} to accept this")
    others = [f"{k} {v[0]!r} -> {v[1]!r}" for k, v in changed.items() if k not in CONSTRAINT_OPTIONS]
    if problems or others:
        warnings.warn(f"resuming {path} with changed options: {'; '.join(problems + others)}", stacklevel=2)


def last_checkpoint(checkpoint_dir: Path) -> Optional[Path]:
    """The checkpoint a stopped run resumes from: ``last.ckpt`` if written, else the newest."""
    last = checkpoint_dir / "last.ckpt"
    if last.is_file():
        return last
    ckpts = sorted(checkpoint_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    return ckpts[-1] if ckpts else None
