"""Run train.py's CLI (PerturbedGD configs) and save each rank's weights and optimizer state.

    python tests/optim/pgd_ddp_worker.py OUT_DIR [train.py flags ...]

Under ``--trainer.strategy=ddp`` Lightning's launcher re-runs this file once per extra rank.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import train  # noqa: E402


def main() -> None:
    out, args = Path(sys.argv[1]), sys.argv[2:]
    cli = train.main(args)
    opt = cli.trainer.optimizers[0]
    state = {"params": {k: v.detach().clone() for k, v in cli.model.named_parameters()},
             "global_step": cli.trainer.global_step, "t": opt.t, "t_noise": opt.t_noise,
             "perturbations": opt.perturbations, "stopped": opt.stopped, "remembered_loss": opt.remembered_loss}
    torch.save(state, out / f"rank{cli.trainer.global_rank}.pt")


if __name__ == "__main__":
    main()
