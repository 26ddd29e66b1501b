"""Every command of the README's ```bash blocks runs as written, with a short budget.

Commands are read from README.md, so a command added there is tested without touching this file
when it is a ``python train.py ...`` line. Each runs from a fresh folder (so ``runs/...`` paths
are relative to it) with ``--trainer.max_steps`` capped and W&B disabled (conftest). Lines that
need what CI lacks are skipped with the reason (``SKIP`` below); any other command fails until a
rule for it is added there, so nothing in the README goes untested by accident.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import train
from conftest import ROOT

STEPS = 2  # GD steps per command: enough to build, train, checkpoint and summarize (a ResNet-18 step on CPU takes seconds)
# command prefix -> why it is not run here
SKIP = {
    "pip install": "needs the package index (network); the environment is installed already",
    "pytest": "runs the test suite itself",
    "wandb sync": "uploads to the W&B server (network)",
    "python benchmarks/": "a benchmark: minutes of CPU, run by hand (benchmarks/README.md)",
    "git clone": "needs the network",
    "cd ": "changes folder only",
    "python -m lit_memo.dashboard": "writes a W&B workspace: needs a W&B account and the network",
    "python -m lit_memo.report": "reads the results table of a full sweep (hours); the report is tested in tests/report/",
}


def readme_commands() -> list[str]:
    """Each command of each ```bash block: continuation lines joined, ``&&`` chains split, comments cut."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands += [part.strip() for part in line.split("&&")]
    return commands


def skip_reason(argv: list[str], command: str) -> str | None:
    for prefix, reason in SKIP.items():
        if command.startswith(prefix):
            return reason
    gpu = any(a in ("--trainer.accelerator=gpu", "--trainer.accelerator=cuda") for a in argv)
    if gpu and not torch.cuda.is_available():
        return "needs a GPU"
    return None


def fill_placeholders(argv: list[str], cwd: Path) -> list[str]:
    """``runs/<name>/<time>/...``: the newest run folder of that experiment (made by a short run if none)."""
    out = []
    for arg in argv:
        match = re.search(r"runs/([^/]+)/<time>", arg)
        if match:
            name = match.group(1)
            folders = sorted((cwd / "runs" / name).glob("*/config.yaml"))
            if not folders:
                train.main(["--config", name, f"--trainer.max_steps={STEPS}"])
                folders = sorted((cwd / "runs" / name).glob("*/config.yaml"))
            arg = arg.replace(f"runs/{name}/<time>", str(folders[-1].parent))
        assert not re.search(r"<\w+>", arg), f"README placeholder {arg!r}: teach fill_placeholders about it"
        out.append(arg)
    return out


COMMANDS = readme_commands()


def test_readme_has_commands():
    assert any(c.startswith("python train.py") for c in COMMANDS)


def _marked(commands: list[str]) -> list:
    """The first train.py command (the quickstart) runs in the quick suite; each of the others
    costs seconds of diagnostics (the synthetic configs measure J, H and the NTK at start and end),
    so they are ``slow`` (still run in CI)."""
    first = next((c for c in commands if c.startswith("python train.py")), None)
    return [c if c == first or not c.startswith("python train.py") else pytest.param(c, marks=pytest.mark.slow)
            for c in commands]


@pytest.mark.parametrize("command", _marked(COMMANDS), ids=lambda c: c[:70])
def test_readme_command(command, tmp_path, monkeypatch):
    argv = shlex.split(command)
    reason = skip_reason(argv, command)
    if reason:
        pytest.skip(reason)
    assert argv[:2] == ["python", "train.py"], (
        f"README command {command!r} has no rule: add how to run it (or why to skip it) in tests/test_cli_readme.py")
    monkeypatch.chdir(tmp_path)
    args = fill_placeholders(argv[2:], tmp_path)
    # later flags win: cap the budget (a resume must go past its checkpoint's step)
    budget = 2 * STEPS if any(a.startswith("--ckpt_path") for a in args) else STEPS
    args += [f"--trainer.max_steps={budget}", "--trainer.limit_test_batches=1", "--trainer.enable_progress_bar=false"]
    before = set((tmp_path / "runs").glob("*/*/summary.json"))
    if "--trainer.strategy=ddp" in args:  # several processes: run it as a user would
        env = {k: v for k, v in os.environ.items() if k != "LIT_MEMO_RUN_DIR"}
        subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, env=env, check=True, timeout=300)
    else:
        train.main(args)
    (summary,) = set((tmp_path / "runs").glob("*/*/summary.json")) - before
    assert '"status": "completed"' in summary.read_text()
