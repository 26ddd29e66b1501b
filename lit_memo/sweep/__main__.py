"""``python -m lit_memo.sweep SWEEP.yaml [--jobs N] [--summary] [--write_wandb]`` (also ``lit-memo-sweep``)."""

from __future__ import annotations

import sys
from typing import Optional

from jsonargparse import ActionYesNo, ArgumentParser

from lit_memo.sweep.runner import open_table, run_sweep, table_path
from lit_memo.sweep.spec import load_sweep
from lit_memo.sweep.summary import format_summary, summarize
from lit_memo.sweep.wandb_sweep import write_wandb_sweeps


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m lit_memo.sweep", description=__doc__)
    parser.add_argument("sweep", type=str, help="the sweep file (YAML: config, flags, grid, zip)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (cells in flight); 0: in this process")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (jobs x threads <= cores)")
    parser.add_argument("--output_dir", type=Optional[str], default=None, help="overrides the sweep file's output_dir")
    parser.add_argument("--batching", type=Optional[str], default=None, help="auto or off (default: the sweep file's)")
    parser.add_argument("--compile", type=str, default="auto", help="torch.compile batched steps: auto, on or off")
    parser.add_argument("--summary", action=ActionYesNo, default=False, help="print the summary queries and run nothing")
    parser.add_argument("--eps", type=float, default=1e-3, help="'memorizes' means final train loss < eps")
    parser.add_argument("--write_wandb", action=ActionYesNo, default=False, help="write the W&B sweep file(s) next to the sweep file")
    parser.add_argument("--progress", action=ActionYesNo, default=True, help="tqdm bar over cells (--no_progress: none)")
    parser.add_argument("--retry_failed", action=ActionYesNo, default=False,
                        help="run the failed cells again (from their last.ckpt where one exists), e.g. after a fix")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        spec = load_sweep(args.sweep, args.output_dir)
        if args.write_wandb:
            for path in write_wandb_sweeps(spec):
                print(path)
            return 0
        if args.summary:
            table = open_table(spec)
            if not table.rows:
                raise FileNotFoundError(f"no results at {table_path(spec)}: run the sweep first")
            print(format_summary(summarize(spec, table, args.eps), args.eps))
            return 0
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from err
    try:
        table = run_sweep(spec, jobs=args.jobs, batching=args.batching, compile=args.compile, progress=args.progress,
                          threads=args.threads, retry_failed=args.retry_failed)
    except KeyboardInterrupt:
        print(f"lit_memo.sweep: interrupted; finished runs are in {table_path(spec)}, re-run to resume", file=sys.stderr)
        return 130
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    failed = sum(r.get("status") == "failed" for r in table.rows.values())
    print(f"{len(table.rows)} runs in {table_path(spec)} ({failed} failed"
          + ("; --retry_failed runs them again)" if failed else ")"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
