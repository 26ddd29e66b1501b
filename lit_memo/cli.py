"""The LightningCLI behind ``train.py``: run folder, loggers, checks before anything is written.

``train.py`` is the entry point (and keeps its own imports light); this module holds what needs
Lightning. Order of work in :meth:`MemoCLI.instantiate_trainer`: model-side checks (linked
options, optimizer, checkpoint) -> run folder reserved -> trainer built -> data located and set
up; if any of it fails the reserved folder is removed again, so a bad input leaves nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from lit_memo import preflight
from lit_memo.data.base import MemoDataModule
from lit_memo.modules.base import MemorizationModule
from lit_memo.preflight import ConfigError
from lit_memo.progress import GDStepProgressBar
from lit_memo.run_summary import MetricsTracker

# expected, not actionable: no val split (memorization runs often have none), and a Lightning /
# torch version notice about pytree internals
warnings.filterwarnings("ignore", message="Total length of .* across ranks is zero")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

RUN_DIR_ENV = "LIT_MEMO_RUN_DIR"  # hands rank 0's run folder to the DDP processes it launches
WANDB_MODES = ("auto", "online", "offline", "disabled")
_INF = re.compile(r"^[-+]?(?:inf|Inf|INF)$")  # what float() reads as infinity, besides YAML's .inf


def install_inf_loader() -> None:
    """Let every float option take ``inf`` as well as YAML's ``.inf``, in config files and flags.

    jsonargparse reads config files and ``--key=value`` values through one YAML loader class,
    whose float rule (YAML 1.1) knows only ``.inf``: ``inf`` stays a string, which a ``float``
    option rejects. Adding ``[-+]inf`` to that class's float rule fixes every float option at once.
    (The class is jsonargparse-internal; tests/test_cli_inf.py fails if it moves.)
    """
    from jsonargparse._loaders_dumpers import get_yaml_default_loader

    loader = get_yaml_default_loader()
    if getattr(loader, "_lit_memo_inf", False):
        return
    loader.add_implicit_resolver("tag:yaml.org,2002:float", _INF, list("-+iI"))
    loader._lit_memo_inf = True


def _wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def _wandb_reachable(timeout: float = 2.0) -> bool:
    try:
        socket.create_connection(("api.wandb.ai", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def wandb_mode(requested: str) -> str:
    """``auto``: online with credentials and a reachable server, else offline (never prompts)."""
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    os.environ.pop("WANDB_MODE", None)  # set but empty: wandb itself would reject it
    if _wandb_credentials() and _wandb_reachable():
        return "online"
    print("lit_memo: W&B runs offline (no credentials or no network); upload later with `wandb sync <run>/wandb`",
          file=sys.stderr)
    return "offline"


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint for a run folder of its own: a resumed run starts a new folder, so the old
    folder's bookkeeping (best and last paths) does not carry over, and Lightning's warning that
    it does not ("The dirpath has changed") would only repeat that on every resume."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath") == self.dirpath:
            super().load_state_dict(state_dict)


class RunConfigSaver(SaveConfigCallback):
    """Writes ``config.yaml`` into the run folder (the trainer's ``default_root_dir``), whatever the
    loggers. Lightning's own writes it to the first logger's folder: for a W&B logger its
    ``save_dir`` (the working directory by default), for a user's CSVLogger that logger's folder."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.already_saved:
            return
        path = Path(trainer.default_root_dir) / self.config_filename
        exists = trainer.strategy.broadcast(path.is_file() if trainer.is_global_zero else False)
        if exists and not self.overwrite:  # a requeued SLURM job's folder: refuse on every rank
            raise RuntimeError(f"{path} exists: not overwriting the config of an earlier run in the same folder")
        if trainer.is_global_zero:
            self.parser.save(self.config, str(path), skip_none=False, overwrite=self.overwrite,
                             multifile=self.multifile)
        self.already_saved = True


def _help_epilog() -> str:
    """--help cannot list a subclass's options before one is chosen: say how to see them."""
    import lit_memo.data
    import lit_memo.modules

    def names(package, base) -> str:
        return ", ".join(n for n in package.__all__ if isinstance(getattr(package, n), type)
                         and issubclass(getattr(package, n), base) and getattr(package, n) is not base)

    return (f"Models: {names(lit_memo.modules, MemorizationModule)}. "
            f"DataModules: {names(lit_memo.data, MemoDataModule)}. Their options: "
            "`--model.help ShallowNetModule`, `--data.help CIFAR10DataModule`, or `--config X --print_config`.")


class MemoCLI(LightningCLI):
    """LightningCLI plus the run folder, the loggers, the data -> model links and the checks."""

    def __init__(self, args: Optional[list[str]] = None, run_name: Optional[str] = None,
                 given_links: Optional[Mapping[str, Any]] = None,
                 config_checks: Optional[Callable[[Any], None]] = None, description: str = "",
                 check_data: bool = True) -> None:
        self.run_name = run_name
        self.check_data = check_data
        self.given_links = dict(given_links or {})
        self.config_checks = config_checks
        self.run_dir: Optional[Path] = None
        self.tracker: Optional[MetricsTracker] = None
        super().__init__(
            MemorizationModule,
            MemoDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,  # our choice: reproducible by default
            save_config_callback=RunConfigSaver,
            save_config_kwargs={"overwrite": False},
            # exit_on_error=False: train.py prints one line instead of the 45-line usage
            # prog fixed: the --help text is cached, and must not carry the first caller's argv[0]
            parser_kwargs={"prog": "train.py", "description": description, "epilog": _help_epilog(),
                           "exit_on_error": False},
            run=False,
            args=args,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for key in ("input_shape", "num_outputs", "task"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")
        parser.add_argument("--ckpt_path", type=Optional[str], default=None, help="checkpoint to resume fit from")
        parser.add_argument("--allow_resume_changes", type=bool, default=False,
                            help="resume although regime/radius/zeta/gamma changed or the ball has no anchor")
        parser.add_argument("--run_test", type=bool, default=True, help="evaluate the test split after fit")
        parser.add_argument("--output_dir", type=str, default="runs", help="runs go to <output_dir>/<name>/<time>")
        parser.add_argument("--name", type=Optional[str], default=None,
                            help="experiment name for the run folder (default: the first --config's file name)")
        parser.add_argument("--wandb_project", type=str, default="lit_memo")
        parser.add_argument("--wandb_mode", type=str, default="auto", help=f"one of {WANDB_MODES}")

    def before_instantiate_classes(self) -> None:
        cfg = self.config
        if self.config_checks is not None:
            self.config_checks(cfg)
        # train.py decided the name (--name, else a file's name:, else the first file's stem); the
        # saved config records it, so re-running that config.yaml files the run under the same name
        self.run_name = self.run_name or cfg.name or "default"
        cfg.name = self.run_name
        if cfg.ckpt_path is not None and not Path(cfg.ckpt_path).is_file():
            raise ConfigError(f"--ckpt_path {cfg.ckpt_path}: no such checkpoint file")
        if cfg.wandb_mode not in WANDB_MODES:
            raise ConfigError(f"--wandb_mode must be one of {WANDB_MODES}, got {cfg.wandb_mode!r}")
        preflight.check_trainer_flags(cfg.trainer)
        # A top-level `optimizer:` / `lr_scheduler:` would make LightningCLI replace the module's
        # configure_optimizers with one over model.parameters(), losing the hidden/outer groups
        # and their learning rates; hand them to the module's own factories instead.
        for key in ("optimizer", "lr_scheduler"):
            if cfg.get(key) is not None:
                cfg.model.init_args[key] = cfg[key]
                cfg[key] = None

    # -- run folder ------------------------------------------------------------------------
    @staticmethod
    def _make_run_dir(parent: Path) -> tuple[Path, Optional[Path]]:
        """The run folder, and the topmost folder this call created (removed again on failure)."""
        inherited = os.environ.get(RUN_DIR_ENV)
        if inherited and int(os.environ.get("LOCAL_RANK", "0")) > 0:
            return Path(inherited), None  # a DDP process launched by rank 0: share its folder
        job = os.environ.get("SLURM_JOB_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
        if job == "none":  # torchrun's default --rdzv-id: not an id, every run would share "jobnone"
            job = None
        if job and os.environ.get("SLURM_STEP_ID"):  # several srun steps in one job: one folder each
            job = f"{job}.{os.environ['SLURM_STEP_ID']}"
        stem = f"job{job}" if job else time.strftime("%Y%m%d-%H%M%S")
        run_dir, k = parent / stem, 1
        if not job:
            while run_dir.exists():  # never reuse another run's folder
                run_dir, k = parent / f"{stem}-{k}", k + 1
        created = run_dir
        while not created.parent.exists():
            created = created.parent
        if run_dir.exists():
            created = None
        try:
            run_dir.mkdir(parents=True, exist_ok=bool(job))
        except OSError as err:
            raise ConfigError(f"--output_dir {parent.parent}: cannot create the run folder {run_dir} "
                              f"({err.strerror}); choose a writable --output_dir") from err
        os.environ[RUN_DIR_ENV] = str(run_dir)
        return run_dir, created

    def instantiate_trainer(self, **kwargs):
        cfg = self.config
        preflight.check_links(self.model, self.datamodule, self.given_links)
        preflight.check_optimizer(self.model)
        ckpt = None
        if cfg.ckpt_path is not None:
            ckpt = preflight.check_checkpoint(cfg.ckpt_path, self.model, cfg.allow_resume_changes)
            if cfg.allow_resume_changes:  # accepted here: the mixin would refuse a ball without an anchor again
                self.model.allow_anchor_recapture = True
        self.run_dir, created = self._make_run_dir(Path(cfg.output_dir) / self.run_name)
        try:
            trainer = self._build_trainer(**kwargs)
            preflight.check_launch(trainer)
            if self.check_data:
                preflight.check_data(self.datamodule, trainer, ckpt)
        except BaseException:
            if created is not None and not any(p.is_file() for p in created.rglob("*")):
                shutil.rmtree(created, ignore_errors=True)  # nothing was written: leave no trace
            os.environ.pop(RUN_DIR_ENV, None)
            raise
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger):
                logger.experiment  # claim the empty folder before W&B writes into it (else CSVLogger warns)
        return trainer

    def _build_trainer(self, **kwargs):
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        loggers = trainer_cfg.get("logger")
        self.tracker = MetricsTracker(save_dir=str(self.run_dir))
        if loggers is False:
            kwargs["logger"] = [self.tracker]  # no files, but the summary and the progress bar still see metrics
        else:
            # CSV first: trainer.log_dir (the first logger's) is then the run folder, for callbacks that write there
            user = [] if loggers in (None, True) else list(loggers) if isinstance(loggers, (list, tuple)) else [loggers]
            for lg in user:
                if isinstance(lg, WandbLogger) and lg._experiment is None and lg.save_dir in (None, "."):
                    # save_dir left at its default, the working directory: the run's W&B files go in the
                    # run folder instead (private attributes: WandbLogger has no setter; read at experiment start)
                    lg._save_dir = lg._wandb_init["dir"] = str(self.run_dir)
            # the run folder's metrics.csv (summary, reports), also next to a user's CSVLogger writing elsewhere
            ours = any(isinstance(lg, CSVLogger) and Path(lg.log_dir).resolve() == self.run_dir.resolve()
                       for lg in user)
            csv: list[Logger] = [] if ours else [CSVLogger(save_dir=str(self.run_dir), name="", version="")]
            if loggers in (None, True):
                mode = wandb_mode(self.config.wandb_mode)
                if mode != "disabled":
                    user = [WandbLogger(save_dir=str(self.run_dir), project=self.config.wandb_project,
                                        name=f"{self.run_name}/{self.run_dir.name}", mode=mode)]
            kwargs["logger"] = csv + user + [self.tracker]
        callbacks = list(trainer_cfg.get("callbacks") or [])
        if not any(isinstance(cb, ModelCheckpoint) for cb in callbacks):
            # save_on_exception: a Ctrl-C leaves a last.ckpt at the step it stopped, to resume from
            callbacks.append(RunCheckpoint(dirpath=self.run_dir / "checkpoints", save_last=True,
                                             save_on_exception=True))
        if trainer_cfg.get("enable_progress_bar", True) is not False and not any(
                isinstance(cb, ProgressBar) for cb in callbacks):
            callbacks.append(GDStepProgressBar())
        kwargs["callbacks"] = callbacks
        kwargs["default_root_dir"] = str(self.run_dir)  # RunConfigSaver writes config.yaml here
        try:
            return super().instantiate_trainer(**kwargs)
        except (MisconfigurationException, ValueError, TypeError) as err:
            raise ConfigError(f"trainer: {err}") from err

    # -- after the run ---------------------------------------------------------------------
    def last_checkpoint(self) -> Optional[Path]:
        for cb in self.trainer.checkpoint_callbacks:
            if cb.dirpath:
                return preflight.last_checkpoint(Path(cb.dirpath))
        return None

    def close_loggers(self, failed: bool) -> None:
        """Finish W&B explicitly: a failed or interrupted run is marked so (exit code 1), never
        left looking like a finished one."""
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger) and getattr(logger, "_experiment", None) is not None:
                logger.experiment.finish(exit_code=1 if failed else 0)
