"""Train any lit_memo experiment from its config: ``python train.py --config synthetic_narrow.yaml``.

LightningCLI with ``run=False``: ``build_cli(args)`` instantiates model, datamodule and trainer
and runs nothing; ``main(args)`` fits, then tests when the datamodule has a test split.
Each run gets its own folder ``<output_dir>/<config name>/<time>`` holding the resolved config,
the checkpoints, ``metrics.csv`` (every logged metric) and the offline W&B files.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import warnings
from unittest import mock
from pathlib import Path
from typing import Optional

from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger

from lit_memo.data.base import MemoDataModule
from lit_memo.modules.base import MemorizationModule

# expected, not actionable: no val split (memorization runs often have none), and a Lightning /
# torch version notice about pytree internals
warnings.filterwarnings("ignore", message="Total length of .* across ranks is zero")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
RUN_DIR_ENV = "LIT_MEMO_RUN_DIR"  # hands rank 0's run folder to the DDP processes it launches
WANDB_MODES = ("auto", "online", "offline", "disabled")


def resolve_config_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Map each bare ``--config NAME`` that is not an existing path onto ``configs/NAME``.

    Returns the new arguments and the resolved config paths, in order.
    """
    out, configs = list(args), []
    for i, arg in enumerate(out):
        if arg == "--config" and i + 1 < len(out):
            out[i + 1] = _resolve_config(out[i + 1])
            configs.append(out[i + 1])
        elif arg.startswith("--config="):
            configs.append(_resolve_config(arg.split("=", 1)[1]))
            out[i] = "--config=" + configs[-1]
    return out, configs


def _resolve_config(name: str) -> str:
    if Path(name).exists():
        return name
    for candidate in (CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
        if candidate.is_file():
            return str(candidate)
    available = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"--config {name}: no such file, and no {CONFIG_DIR / name}; available configs: {available}")


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


class MemoCLI(LightningCLI):
    """LightningCLI plus the run folder, the loggers and the data -> model links."""

    def __init__(self, *args, run_name: str = "default", **kwargs) -> None:
        self.run_name = run_name
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for key in ("input_shape", "num_outputs", "task"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")
        parser.add_argument("--ckpt_path", type=Optional[str], default=None, help="checkpoint to resume fit from")
        parser.add_argument("--run_test", type=bool, default=True, help="evaluate the test split after fit")
        parser.add_argument("--output_dir", type=str, default="runs", help="runs go to <output_dir>/<config>/<time>")
        parser.add_argument("--wandb_project", type=str, default="lit_memo")
        parser.add_argument("--wandb_mode", type=str, default="auto", help=f"one of {WANDB_MODES}")

    def before_instantiate_classes(self) -> None:
        cfg = self.config
        if cfg.ckpt_path is not None and not Path(cfg.ckpt_path).is_file():
            raise FileNotFoundError(f"--ckpt_path {cfg.ckpt_path}: no such checkpoint file")
        if cfg.wandb_mode not in WANDB_MODES:
            raise ValueError(f"--wandb_mode must be one of {WANDB_MODES}, got {cfg.wandb_mode!r}")
        # A top-level `optimizer:` / `lr_scheduler:` would make LightningCLI replace the module's
        # configure_optimizers with one over model.parameters(), losing the hidden/outer groups
        # and their learning rates; hand them to the module's own factories instead.
        for key in ("optimizer", "lr_scheduler"):
            if cfg.get(key) is not None:
                cfg.model.init_args[key] = cfg[key]
                cfg[key] = None

    @staticmethod
    def _make_run_dir(parent: Path) -> Path:
        inherited = os.environ.get(RUN_DIR_ENV)
        if inherited and int(os.environ.get("LOCAL_RANK", "0")) > 0:
            return Path(inherited)  # a DDP process launched by rank 0: share its folder
        job = os.environ.get("SLURM_JOB_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
        stem = f"job{job}" if job else time.strftime("%Y%m%d-%H%M%S")
        run_dir, k = parent / stem, 1
        if not job:
            while run_dir.exists():  # never reuse another run's folder
                run_dir, k = parent / f"{stem}-{k}", k + 1
        run_dir.mkdir(parents=True, exist_ok=bool(job))
        os.environ[RUN_DIR_ENV] = str(run_dir)
        return run_dir

    def instantiate_trainer(self, **kwargs):
        # model and data built fine: only now make the run folder, so a bad config leaves none
        self.run_dir = self._make_run_dir(Path(self.config.output_dir) / self.run_name)
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        loggers = trainer_cfg.get("logger")
        if loggers is not False:
            # CSV first: trainer.log_dir is the first logger's, so config.yaml lands in the run folder
            user = [] if loggers in (None, True) else list(loggers) if isinstance(loggers, (list, tuple)) else [loggers]
            csv: list[Logger] = [] if any(isinstance(lg, CSVLogger) for lg in user) else [
                CSVLogger(save_dir=str(self.run_dir), name="", version="")]
            for logger in csv:
                logger.experiment  # claim the empty folder before W&B writes into it (else CSVLogger warns)
            if loggers in (None, True):
                mode = wandb_mode(self.config.wandb_mode)
                if mode != "disabled":
                    user = [WandbLogger(save_dir=str(self.run_dir), project=self.config.wandb_project,
                                        name=f"{self.run_name}/{self.run_dir.name}", mode=mode)]
            kwargs["logger"] = csv + user
        callbacks = list(trainer_cfg.get("callbacks") or [])
        if not any(isinstance(cb, ModelCheckpoint) for cb in callbacks):
            kwargs["callbacks"] = callbacks + [ModelCheckpoint(dirpath=self.run_dir / "checkpoints", save_last=True)]
        kwargs.setdefault("default_root_dir", str(self.run_dir))
        return super().instantiate_trainer(**kwargs)


def build_cli(args: Optional[list[str]] = None) -> MemoCLI:
    """Parse ``args`` (default: ``sys.argv[1:]``) and instantiate model, data and trainer."""
    args, configs = resolve_config_args(sys.argv[1:] if args is None else list(args))
    run_name = Path(configs[-1]).stem if configs else "default"
    # LightningCLI warns when it gets args and sys.argv holds others too (pytest's, or ours
    # before config names were resolved); args is the whole truth here, so hide sys.argv
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        return _build(args, run_name)


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


def _build(args: list[str], run_name: str) -> MemoCLI:
    return MemoCLI(
        MemorizationModule,
        MemoDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,  # our choice: reproducible by default
        save_config_kwargs={"overwrite": False},
        parser_kwargs={"description": __doc__, "epilog": _help_epilog()},
        run=False,
        args=args,
        run_name=run_name,
    )


def main(args: Optional[list[str]] = None) -> MemoCLI:
    try:
        cli = build_cli(args)
    except (ValueError, FileNotFoundError) as err:  # a bad config: say why, without a traceback
        raise SystemExit(f"error: {err}") from err
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    if cli.config.run_test and cli.datamodule.has_test:
        cli.trainer.test(cli.model, datamodule=cli.datamodule)
    return cli


if __name__ == "__main__":
    main()
