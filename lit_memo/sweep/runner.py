"""Run every cell of a sweep in worker processes and keep the results table up to date.

Cells that vary only what batching supports (learning rates, seed, radius: the model's batched
trainer says which) and whose config is batchable train as stacked groups (``group.py``);
everything else runs one train.py run per cell (``worker.py``). Finished cells are skipped on a re-run; a cell or group killed midway
resumes from its checkpoint. SIGTERM/SIGINT stop the workers at once: only runs in flight
are lost, and they resume next time.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from lit_memo.sweep.spec import SweepSpec, cell_id
from lit_memo.sweep.table import ResultsTable
from lit_memo.sweep.worker import RESULT, init_worker, load_train, read_result, run_cell, write_result

# Members per batched group (our choice). Stacking shares each step's few dozen small ops between
# the members; it pays while one member's working set (activations + weights, ``member_bytes``) is
# small next to a core's L2 (2 MiB on the project machine): up to MEMBER_BYTES, in groups of up to
# GROUP_BYTES; a larger member trains alone. Measured per member-step on one quiet core, the 49
# learning-rate pairs of a Fig. 4 cell at n = 1000 (``benchmarks/bench_sweep.py --width W
# --group_sizes 1 5 20 49``; benchmarks/README.md, "Sweeps"): width 100 (0.4 MB) 164 us alone,
# 139 us in one group of 49; width 200 (0.8 MB) 248 us alone, 284-311 us in groups of 5-49; width
# 400 (1.6 MB) 448 us alone, 528-976 us stacked. Ge et al.'s MNIST net (5.7 MB, mostly its
# weights) ran at 0.56x stacked 9 at a time, 0.75-0.87x in pairs, 0.88-0.97x alone
# (benchmarks/bench_sweep_quadratic.py --preset mnist --group_size G).
MEMBER_BYTES = 2**19
GROUP_BYTES = 16 * 2**20


def members_per_group(member: int) -> int:
    """How many members of ``member`` bytes each train in one stacked group."""
    return 1 if member > MEMBER_BYTES else max(1, GROUP_BYTES // member)


# glibc settings for the spawned workers (unless the user set them): keep freed tensors in the heap
# instead of returning each large one to the OS and faulting its pages in again at the next step.
# Our choice: the whole runner on a 49-pair Fig. 4 cell went from 98 s to 81 s with them
# (benchmarks/bench_sweep.py --end_to_end; benchmarks/README.md "Sweeps")
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def table_path(spec: SweepSpec) -> Path:
    return spec.root / "results.csv"


def open_table(spec: SweepSpec) -> ResultsTable:
    return ResultsTable(table_path(spec), spec.columns.values())


def _label(spec: SweepSpec, cell: dict[str, Any]) -> dict[str, Any]:
    return {spec.columns[k]: v for k, v in cell.items()}


def plan(spec: SweepSpec, cells: list[dict[str, Any]], batching: str) -> tuple[list[list[dict]], Optional[str]]:
    """Split pending cells into batched groups; returns (groups, None), or (one cell per group, why
    they cannot batch)."""
    if batching == "off":
        return [[c] for c in cells], "batching off"
    train = load_train()
    from lit_memo.sweep.group import batch_blocker, batchable_keys, member_bytes

    with tempfile.TemporaryDirectory() as tmp:
        try:
            cli = train.build_cli([*spec.train_args(cells[0]), f"--output_dir={tmp}"], check_data=False)  # hparams only
        except BaseException as err:  # noqa: BLE001 - the cell itself will report it
            return [[c] for c in cells], f"config does not build: {err}"
        reason = batch_blocker(cli)
    if reason:
        return [[c] for c in cells], reason
    keys = batchable_keys(cli)  # what the model's batched trainer lets members differ in
    by_rest: dict[str, list[dict]] = {}
    for cell in cells:
        rest = {k: v for k, v in cell.items() if k not in keys}
        by_rest.setdefault(cell_id(rest), []).append(cell)
    groups = []
    for members in by_rest.values():
        per = members_per_group(member_bytes(cli, members[0]))
        groups += [members[i:i + per] for i in range(0, len(members), per)]
    return groups, None


def run_sweep(spec: SweepSpec, jobs: int = 1, batching: Optional[str] = None, compile: str = "auto",
              progress: bool = True, threads: int = 1, retry_failed: bool = False) -> ResultsTable:
    """Run the missing cells of ``spec`` (and the failed ones with ``retry_failed``); returns the
    results table (also on disk).

    ``threads``: torch threads per worker. One by default: these nets are small, and on a shared
    machine a 2-thread OpenMP region waits on the busy core (measured 10-70x slower steps)."""
    if jobs < 0:
        raise ValueError(f"--jobs must be >= 1 (or 0: run the cells in this process), got {jobs}")
    if compile not in ("auto", "on", "off"):
        raise ValueError(f"--compile must be auto, on or off, got {compile!r}")
    table = open_table(spec)
    cells = spec.cells()
    cells_dir = spec.root / "cells"
    if retry_failed:  # forget the failures (rows and result files); their run folders stay, to resume from
        failed = [cid for cid, row in table.rows.items() if row.get("status") == "failed"]
        for cid in failed:
            (cells_dir / cid / RESULT).unlink(missing_ok=True)
            del table.rows[cid]
        if failed:
            table.write()
    recovered = []
    for cell in cells:  # finished after the last table write (the sweep was killed in between)
        cid = cell_id(cell)
        if not table.finished(cid):
            row = read_result(cells_dir / cid)
            if row is not None and row.get("status") in ("done", "failed", "diverged"):
                recovered.append({**_label(spec, cell), **row})
    if recovered:
        table.put(recovered)
    pending = [c for c in cells if not table.finished(cell_id(c))]
    bar = tqdm(total=len(cells), initial=len(cells) - len(pending), desc=spec.name, unit="run", disable=not progress,
               dynamic_ncols=True)
    if not pending:
        bar.close()
        return table
    groups, why_single = plan(spec, pending, batching or spec.batching)
    batched = why_single is None
    if why_single and len(pending) > 1:
        bar.write(f"lit_memo.sweep: one run per cell ({why_single})")
    added = {} if jobs == 0 else {k: v for k, v in WORKER_MALLOC.items() if k not in os.environ}
    if jobs == 0:
        pool = _InProcess()
    else:
        os.environ.update(added)  # read by glibc when a worker starts; removed again below
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=(threads,))
    stop = _StopOnSignal()
    try:
        futures = {}
        for group in groups:
            futures[_submit(pool, spec, group, cells_dir, compile, batched)] = group
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                group = futures.pop(future)
                try:
                    rows = future.result()
                except Exception as err:  # a group that cannot batch after all: its cells run singly
                    if not batched:
                        raise
                    bar.write(f"lit_memo.sweep: group of {len(group)} failed to batch ({err}); running them singly")
                    for cell in group:
                        futures[_submit(pool, spec, [cell], cells_dir, compile, batched=False)] = [cell]
                    continue
                table.put({**_label(spec, cell), **row} for cell, row in zip(group, rows))
                bar.update(len(group))
    except BaseException:
        _kill(pool)
        raise
    finally:
        stop.restore()
        bar.close()
        for key in added:  # every worker has started: no later submit can spawn one
            os.environ.pop(key, None)
    pool.shutdown()
    return table


def _submit(pool, spec: SweepSpec, group: list[dict], cells_dir: Path, compile: str, batched: bool = True):
    """A batched group (even of one member: its written-out step beats train.py's), or one train.py run."""
    if not batched:
        cid = cell_id(group[0])
        return pool.submit(_single, cid, spec.train_args(group[0]), str(cells_dir / cid))
    ids = [cell_id(c) for c in group]
    # --compile auto leaves the step eager: batched groups train on the CPU, where the compiled in-place
    # step is slower (benchmarks/bench_sweep.py --step_only: 1.6-1.7x a plain autograd step compiled, 3.6-4.0x
    # eager), after seconds of compiling per group
    use_compile = compile == "on"
    return pool.submit(_group, ids, [spec.train_args(c) for c in group], str(cells_dir / ("group-" + ids[0])), use_compile)


def _single(cid: str, args: list[str], cell_dir: str) -> list[dict]:
    return [run_cell(cid, args, cell_dir)]


def _group(ids: list[str], args_list: list[list[str]], group_dir: str, compile: bool) -> list[dict]:
    from lit_memo.sweep.group import run_group

    rows = run_group(ids, args_list, group_dir, compile=compile)
    cells_dir = Path(group_dir).parent
    for row in rows:  # a member's result also sits where a single run of it would
        write_result(cells_dir / row["cell"], row)
    return rows


class _StopOnSignal:
    """SIGTERM ends the sweep the way Ctrl-C does (the workers are killed in ``run_sweep``)."""

    def __init__(self) -> None:
        self.previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self.previous = None

    @staticmethod
    def _handle(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


class _InProcess:
    """``--jobs 0``: each cell runs in this process when submitted (debugging, tests)."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:
            future.set_exception(err)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _kill(pool) -> None:
    """Stop the workers now (a running cell cannot be cancelled through the pool)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
