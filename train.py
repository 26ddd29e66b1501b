"""Train any lit_memo experiment from its config: ``python train.py --config synthetic_narrow.yaml``.

LightningCLI with ``run=False``: ``build_cli(args)`` instantiates model, datamodule and trainer
and runs nothing; ``main(args)`` fits, then tests when the datamodule has a test split, and ends
with a summary block (also written as ``summary.json``). Each run gets its own folder
``<output_dir>/<experiment>/<time>`` (experiment: ``--name``, else a config's ``name:``, else the
first config's file name)
holding the resolved config, the checkpoints, ``metrics.csv`` and the offline W&B files.

This file imports only the standard library and PyYAML at the top: mistakes that need no model
(a config name, a YAML typo, the output folder, W&B's mode) are reported before torch loads.
"""

from __future__ import annotations

import os
import re
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Optional

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
WANDB_MODES = ("auto", "online", "offline", "disabled")
WANDB_ENV_MODES = ("online", "offline", "disabled", "dryrun", "run", "shared")  # what wandb itself accepts
LINKED = ("input_shape", "num_outputs", "task")  # set from the DataModule (see lit_memo/cli.py)
HELP = "see `python train.py --help`"
TRACEBACK_ENV = "LIT_MEMO_TRACEBACK"  # set to 1 to see the traceback behind an `error:` line


class ConfigError(ValueError):
    """A bad input, reported as one ``error: ...`` line before a run folder exists."""


# -- arguments, before anything heavy is imported -------------------------------------------
def resolve_config_args(args: list[str]) -> tuple[list[str], list[str]]:
    """Map each bare ``--config NAME`` / ``-c NAME`` that is not an existing path onto ``configs/NAME``.

    Returns the new arguments and the resolved config paths, in order. Each config file is
    read here, so a YAML syntax error names its file and line.
    """
    out, configs = list(args), []
    _YAML_CACHE.clear()  # each command reads its files afresh
    for i, arg in enumerate(out):
        if arg in ("--config", "-c") and i + 1 < len(out):
            out[i + 1] = _resolve_config(out[i + 1])
            configs.append(out[i + 1])
        elif arg.startswith(("--config=", "-c=")):
            flag, name = arg.split("=", 1)
            configs.append(_resolve_config(name))
            out[i] = f"{flag}={configs[-1]}"
    return out, configs


def _resolve_config(name: str) -> str:
    if Path(name).exists():
        path = name
    else:
        found = [c for c in (CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml") if c.is_file()]
        if not found:
            available = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
            raise ConfigError(f"--config {name}: no such file, and no {CONFIG_DIR / name}; available configs: {available}")
        path = str(found[0])
    _load_yaml(path)
    return path


_YAML_CACHE: dict[tuple[str, int, int], Any] = {}  # (path, mtime_ns, size) -> parsed file, for one command


def _load_yaml(path: str) -> Any:
    """The parsed file, read once per command (the front reads a config up to 7 times); callers
    must not modify it."""
    import yaml

    if Path(path).is_dir():
        raise ConfigError(f"--config {path} is a folder; give a YAML file")
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)  # an edited file is read again
    if key in _YAML_CACHE:
        return _YAML_CACHE[key]
    try:
        _YAML_CACHE[key] = parsed = yaml.safe_load(Path(path).read_text())
        return parsed
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else path
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}; fix the file (a missing ']' or a bad indent?)") from err


def _flag_value(args: list[str], flag: str) -> Optional[str]:
    """The last value given to ``flag`` on the command line (``--flag=v`` or ``--flag v``)."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def _config_value(configs: list[str], *keys: str) -> Any:
    """The value of ``keys`` in the last config file that sets it (None if none does)."""
    value = None
    for path in configs:
        node = _load_yaml(path)
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            value = node
    return value


def run_name(args: list[str], configs: list[str]) -> str:
    """The experiment: ``--name``, else the last config file's ``name:``, else the first config's
    file name (override files given after it do not rename the run). The command line wins over
    the files wherever ``--name`` stands."""
    name, where = _flag_value(args, "--name"), "--name"
    if name is None:
        name, where = _config_value(configs, "name"), "name: in the config"
    if name is not None:
        name = str(name)  # YAML reads `name: 2024` as a number
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            raise ConfigError(f"{where} {name!r}: use letters, digits and _ . + - only (it names a folder)")
        return name
    return Path(configs[0]).stem if configs else "default"


def check_output_dir(path: str) -> None:
    """The run folder goes under ``path``: it must be a folder (or creatable) and writable."""
    target = Path(path).expanduser().absolute()
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--output_dir {path}: {existing} is a file, not a folder; choose another --output_dir")
    if not os.access(existing, os.W_OK | os.X_OK) or _read_only_fs(existing):
        raise ConfigError(f"--output_dir {path}: {existing} is not writable; choose a writable --output_dir")


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_wandb(requested: Optional[str]) -> None:
    """``--wandb_mode`` and the ``WANDB_MODE`` environment variable, checked before wandb sees them."""
    if requested is not None and requested not in WANDB_MODES:
        raise ConfigError(f"--wandb_mode={requested!r} must be one of {', '.join(WANDB_MODES)}")
    env = os.environ.get("WANDB_MODE")
    if env and env not in WANDB_ENV_MODES:
        raise ConfigError(f"the environment variable WANDB_MODE={env!r} is not a W&B mode; unset it or set one of "
                          f"{', '.join(WANDB_ENV_MODES)}")


def quick_checks(args: list[str], configs: list[str]) -> None:
    """Everything checkable from the arguments alone (no torch needed)."""
    check_wandb(_flag_value(args, "--wandb_mode") or _config_value(configs, "wandb_mode"))
    check_output_dir(_flag_value(args, "--output_dir") or _config_value(configs, "output_dir") or "runs")
    max_steps = _flag_value(args, "--trainer.max_steps")
    if max_steps is not None and re.fullmatch(r"-\d+", max_steps) and int(max_steps) < -1:
        raise ConfigError(f"--trainer.max_steps={max_steps} must be >= 0, or -1 for no limit")


def given_links(args: list[str], configs: list[str]) -> dict[str, Any]:
    """Model options the DataModule sets (``LINKED``) that the user gave anyway: checked, not dropped."""
    import yaml

    given = {}
    for key in LINKED:
        value = _config_value(configs, "model", "init_args", key)
        flag = _flag_value(args, f"--model.init_args.{key}")
        if flag is not None:
            value = yaml.safe_load(flag)
        if value is not None:
            given[key] = value
    return given


# -- building and running --------------------------------------------------------------------
def build_cli(args: Optional[list[str]] = None, check_data: bool = True):
    """Parse ``args`` (default: ``sys.argv[1:]``) and instantiate model, data and trainer.

    Raises :class:`ConfigError` (or jsonargparse's ``ArgumentError``) for a bad input, before
    the run folder exists. ``check_data``: locate and set up the training data now (what fit
    would do first; cached); ``False`` only builds the objects, e.g. to inspect a config.
    """
    args, configs = resolve_config_args(sys.argv[1:] if args is None else list(args))
    name = run_name(args, configs)
    if not any(a in ("-h", "--help", "--print_config") or a.startswith(("--print_config=", "--model.help", "--data.help"))
               for a in args):
        quick_checks(args, configs)
    links = given_links(args, configs)

    from unittest import mock  # here, not at the top: asyncio's import would slow every early error

    from lit_memo.cli import MemoCLI, install_inf_loader

    install_inf_loader()
    # LightningCLI warns when it gets args and sys.argv holds others too (pytest's, or ours
    # before config names were resolved); args is the whole truth here, so hide sys.argv
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        return MemoCLI(args=args, run_name=name, given_links=links, config_checks=_config_checks,
                       description=__doc__, check_data=check_data)


def cached_help(args: list[str]) -> Optional[Path]:
    """Where the text of a plain ``train.py --help`` is cached (None for any other command).

    The help lists the signatures of every class, so producing it imports torch and Lightning
    (seconds); the text only changes with the code and the installed versions, which key the file.
    """
    if args not in (["--help"], ["-h"]):
        return None
    import hashlib
    import importlib.metadata as metadata
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("lit_memo")  # locates the package without importing it
    roots = [Path(__file__).resolve().parent / "callbacks"]
    if spec is not None and spec.origin:
        roots.append(Path(spec.origin).parent)
    h = hashlib.sha256(f"{sys.version}|{shutil.get_terminal_size()}|{os.environ.get('COLUMNS')}".encode())
    for package in ("torch", "pytorch_lightning", "jsonargparse"):
        h.update(f"{package}={metadata.version(package)}".encode())
    for path in sorted([Path(__file__).resolve()] + [p for root in roots for p in root.rglob("*.py")]):
        stat = path.stat()
        h.update(f"{path}|{stat.st_mtime_ns}|{stat.st_size}".encode())
    cache = Path(os.environ.get("LIT_MEMO_CACHE", Path.home() / ".cache" / "lit_memo"))
    return cache / f"help-{h.hexdigest()[:20]}.txt"


def _print_help(args: list[str]) -> bool:
    """Print the cached ``--help`` text if there is one, else produce it, cache it and print it."""
    import contextlib
    import io

    path = cached_help(args)
    if path is None:
        return False
    if path.is_file():
        sys.stdout.write(path.read_text())
        return True
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            build_cli(args)
        except SystemExit as done:
            if done.code not in (0, None):
                raise
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(buffer.getvalue())
    except OSError:
        pass  # an unwritable cache only costs the next --help its seconds
    sys.stdout.write(buffer.getvalue())
    return True


def _config_checks(config) -> None:
    """quick_checks on the parsed config (values may come from any config file)."""
    check_wandb(config.wandb_mode)
    check_output_dir(config.output_dir)


def one_line(message: str) -> str:
    """jsonargparse's nested parse error as one line: the option's full key and the complaint."""
    lines = [line.strip().lstrip("- ").strip() for line in message.splitlines() if line.strip()]
    keys = re.findall(r'Parser key "([^"]+)"', message)
    nested = re.findall(r"NestedArg\(key='([^']+)'", message)
    skip = ("Does not validate against", "Subtypes:", "Errors:", "Given value", "Expected a <class 'NoneType'>",
            'Parser key "', "Problem with given class_path", "Validation failed")
    complaints = [line for line in lines if not line.startswith(skip)]
    if not keys:
        return (complaints or lines or [message])[0]
    key = keys[0]
    rest = keys[1:] or nested[:1]
    if rest and "class_path" in message:
        key += ".init_args." + ".".join(rest)
    complaint = complaints[-1] if complaints else lines[-1]
    complaint = re.sub(r"<class '([\w.]+)'>", r"\1", complaint)
    return f"{key}: {complaint}"


def main(args: Optional[list[str]] = None):
    """What ``python train.py`` does: build, fit, test, summarize; bad input is one ``error:`` line."""
    args = sys.argv[1:] if args is None else list(args)
    if _print_help(args):
        raise SystemExit(0)
    try:
        cli = build_cli(args)
    except Exception as err:  # noqa: BLE001 - anything raised while building is a bad input
        from jsonargparse import ArgumentError

        if any(c.__name__ == "ConfigError" for c in type(err).__mro__):  # ours (train.py's or lit_memo.preflight's)
            _exit(err, "error: " + " ".join(str(err).split()))
        if isinstance(err, ArgumentError):
            _exit(err, f"error: {one_line(str(err))} ({HELP})")
        root = err  # a class's own ValueError, wrapped (multi-line) by jsonargparse: its message is the one to show
        while root.__cause__ is not None and "\n" in str(root).strip():
            root = root.__cause__
        message = " ".join(str(root).split()) if root is not err else one_line(str(err))
        _exit(err, f"error: {message or type(root).__name__}")
    return run(cli)


def _exit(err: BaseException, line: str):
    if os.environ.get(TRACEBACK_ENV) == "1":
        traceback.print_exception(err)
    raise SystemExit(line) from err


def run(cli):
    """Fit, test, and close the run folder: summary on success, a ``FAILED`` file otherwise."""
    from lit_memo.callbacks.divergence import diverged_at
    from lit_memo.run_summary import build_summary, finish_run, format_summary, mark_failed

    trainer, run_dir = cli.trainer, cli.run_dir
    start = time.perf_counter()
    status, test_metrics = "completed", {}
    try:
        trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
        if trainer.interrupted:
            raise KeyboardInterrupt
        if diverged_at(trainer) is not None:  # lit_memo.callbacks.DivergenceStop ended the fit on a NaN/inf loss
            status = "diverged"
        if cli.config.run_test and cli.datamodule.has_test:
            (test_metrics,) = trainer.test(cli.model, datamodule=cli.datamodule, verbose=False) or [{}]
    except (KeyboardInterrupt, SystemExit) as err:
        if not trainer.interrupted and not isinstance(err, KeyboardInterrupt):
            raise
        status = "interrupted"
        ckpt = cli.last_checkpoint()
        resume = f"resume with --ckpt_path {ckpt}" if ckpt else "no checkpoint was written yet"
        reason = f"interrupted (Ctrl-C) at GD step {trainer.global_step}; {resume}"
        if trainer.is_global_zero:
            mark_failed(run_dir, reason)
            print(f"lit_memo: {reason}", file=sys.stderr)
        cli.close_loggers(failed=True)
        raise SystemExit(1)
    except BaseException as err:
        if trainer.is_global_zero:
            mark_failed(run_dir, f"failed at GD step {trainer.global_step}: {type(err).__name__}: {err}\n\n"
                        + traceback.format_exc())
            print(f"lit_memo: run failed at GD step {trainer.global_step}; {run_dir}/FAILED says why", file=sys.stderr)
        cli.close_loggers(failed=True)
        raise
    if trainer.is_global_zero:
        summary = build_summary(cli.tracker, run_dir, status, trainer.global_step, time.perf_counter() - start,
                                test_metrics)
        finish_run(run_dir, summary)
        from lit_memo.report.summary import log_summary  # summary.png, also to W&B when on (issue 12)

        log_summary(trainer, run_dir)
        print(format_summary(summary))
    cli.close_loggers(failed=False)
    return cli


def __getattr__(name: str):
    # heavy names on demand: `train.MemoCLI`, `train.wandb_mode` import Lightning only when asked for
    if name in ("MemoCLI", "wandb_mode", "install_inf_loader"):
        import lit_memo.cli

        return getattr(lit_memo.cli, name)
    raise AttributeError(name)


if __name__ == "__main__":
    main()
