"""The installed package: every package folder is listed in setup.cfg, and callbacks live under lit_memo."""

from __future__ import annotations

import configparser
import subprocess
import sys

from conftest import ROOT


def _listed_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {line.strip() for line in cfg["options"]["packages"].splitlines() if line.strip()}


def test_every_package_folder_is_listed_in_setup_cfg():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "lit_memo").rglob("__init__.py")}
    found |= {"lit_memo.callbacks"}  # installed from the top-level callbacks/ folder (package_dir)
    assert found == _listed_packages()


def test_a_users_own_callbacks_module_does_not_shadow_ours(tmp_path):
    (tmp_path / "callbacks.py").write_text("MINE = True\n")
    code = "import callbacks, lit_memo.callbacks as ours; assert callbacks.MINE; print(ours.JacobianRankCallback.__module__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "lit_memo.callbacks.jacobian_rank"
