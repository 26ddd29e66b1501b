"""Time to first output of ``train.py``: ``--help`` and argument errors, this train.py vs an older one.

    python benchmarks/bench_cli_startup.py [--rev 66993f8] [--repeats 5]

The older train.py (git revision ``--rev``, default: the one before issue 8) is copied into a
temporary folder next to a link to ``configs/`` and run with the same interpreter and package,
interleaved with the current one; prints the median wall time of each command and the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "--help (first call)": ["--help"],  # LIT_MEMO_CACHE points at an empty folder for each call
    "--help (cached)": ["--help"],
    "unknown config name": ["--config", "no_such_config"],
    "YAML syntax error": ["--config", "{bad_yaml}"],
    "bad float value (parser)": ["--config", "synthetic_narrow.yaml", "--model.init_args.radius=abc"],
}


def wall(script: Path, args: list[str], cache: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(script), *args], cwd=script.parent, capture_output=True, timeout=300,
                   env={**os.environ, "LIT_MEMO_CACHE": cache})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rev", default="66993f8")
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_dir = Path(tmp)
        old = old_dir / "train.py"
        old.write_text(subprocess.run(["git", "show", f"{opts.rev}:train.py"], cwd=ROOT, capture_output=True,
                                      text=True, check=True).stdout)
        (old_dir / "configs").symlink_to(ROOT / "configs")
        bad = old_dir / "bad.yaml"
        bad.write_text("model:\n  init_args:\n    width: [1, 2\n")
        print(f"{'command':<28} {'before (s)':>10} {'after (s)':>10} {'ratio':>7}")
        for name, args in COMMANDS.items():
            args = [a.replace("{bad_yaml}", str(bad)) for a in args]
            before, after = [], []
            for _ in range(opts.repeats):  # interleaved: both see the same machine load
                cache = str(old_dir / "help_cache") if "cached" in name else tempfile.mkdtemp(dir=tmp)
                if "cached" in name:
                    wall(ROOT / "train.py", args, cache)  # fill the cache
                before.append(wall(old, args, cache))
                after.append(wall(ROOT / "train.py", args, cache))
            b, a = statistics.median(before), statistics.median(after)
            print(f"{name:<28} {b:>10.2f} {a:>10.2f} {b / a:>6.1f}x")


if __name__ == "__main__":
    main()
