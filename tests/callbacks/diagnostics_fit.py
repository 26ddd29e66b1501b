"""A small synthetic fit with or without the diagnostic callbacks (not a test module).

Used in-process by the callback tests and, as a script, by test_ddp_callbacks.py: the DDP
launcher re-runs ``sys.argv``, so DDP must start from a script, never inside pytest.
``python diagnostics_fit.py OUT [--callbacks] [--ddp]`` writes OUT/metrics.csv and OUT/final.pt.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.loggers import CSVLogger  # noqa: E402

from lit_memo.callbacks import ConstraintBoundaryCallback, HessianEigenCallback, JacobianRankCallback, NTKDriftCallback  # noqa: E402
from lit_memo.data import SyntheticDataModule  # noqa: E402
from lit_memo.modules import ShallowNetModule  # noqa: E402

EVERY, MAX_STEPS = 3, 7
KEYS = {
    "jacobian": ["jacobian/sigma_min", "jacobian/sigma_max", "jacobian/rank", "jacobian/condition", "jacobian/seconds"],
    "constraint": ["constraint/hidden/distance", "constraint/hidden/ratio", "constraint/outer/min_abs",
                   "constraint/outer/spread", "constraint/seconds"],
    "constraint_active": ["constraint/hidden/active", "constraint/outer/active"],  # once a step was taken
    "hessian": ["hessian/lambda_min", "hessian/lambda_max", "hessian/seconds"],
    "ntk": ["ntk/drift", "ntk/seconds"],
}


def diagnostic_callbacks(every: int = EVERY) -> list[pl.Callback]:
    return [
        JacobianRankCallback(every_n_steps=every, num_probes=16),
        ConstraintBoundaryCallback(every_n_steps=every),
        HessianEigenCallback(every_n_steps=every, batch_size=32, num_iter=10),
        NTKDriftCallback(every_n_steps=every, num_probes=8),
    ]


def make_module(**kwargs) -> ShallowNetModule:
    defaults = dict(width=20, input_shape=(5,), num_outputs=1, regime="ours", radius=0.05, zeta=1e-3, gamma=100.0,
                    lr_hidden=0.5, lr_outer=0.5)
    return ShallowNetModule(**{**defaults, **kwargs})


def fit(out: Path, callbacks: list[pl.Callback], ddp: bool = False, max_steps: int = MAX_STEPS,
        module_kwargs: dict | None = None) -> ShallowNetModule:
    pl.seed_everything(0)
    data = SyntheticDataModule(n=64, d=5, batches_per_epoch=4)  # epochs end inside the run
    model = make_module(**(module_kwargs or {}))
    trainer = pl.Trainer(
        accelerator="cpu", devices=2 if ddp else 1, strategy="ddp" if ddp else "auto", max_steps=max_steps,
        logger=CSVLogger(str(out), name="", version=""), callbacks=callbacks, log_every_n_steps=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )
    trainer.fit(model, data)
    if trainer.is_global_zero:
        torch.save(model.state_dict(), out / "final.pt")
    return model


def read_metrics(out: Path) -> list[dict[str, str]]:
    with open(out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def steps_logged(rows: list[dict[str, str]], key: str) -> list[int]:
    return [int(row["step"]) for row in rows if row.get(key, "") != ""]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--callbacks", action="store_true")
    parser.add_argument("--ddp", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    fit(args.out, diagnostic_callbacks() if args.callbacks else [], ddp=args.ddp)
