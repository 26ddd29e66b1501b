"""Ends a Lightning fit when PerturbedGD (Jin et al. 2017; Ge et al. 2019 App. B) stops, and logs it."""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info

from .namespaces import Callback
from lit_memo.optim.perturbed_gd import PerturbedGD


def perturbed_gd_optimizers(trainer: pl.Trainer) -> list[PerturbedGD]:
    return [opt for opt in trainer.optimizers if isinstance(opt, PerturbedGD)]


class PerturbedGDCallback(Callback):
    """Logs ``pgd/perturbations`` after every batch and, once the optimizer's stopping rule has
    fired, ``pgd/stopped`` = 1 and ``pgd/stop_step``, prints why it stopped and sets
    ``trainer.should_stop``: the fit ends with the module at the remembered point (the
    algorithm's output). Does nothing when no optimizer is a :class:`PerturbedGD`.

    lit_memo's modules attach it themselves (``configure_callbacks``); in another Lightning
    project pass it to the Trainer. Under DDP every rank's optimizer stops at the same step (its
    decisions read the all-reduced loss and DDP's averaged gradients), so every rank ends the fit.
    """

    def __init__(self) -> None:
        self.reported = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if perturbed_gd_optimizers(trainer) and trainer.world_size > 1:
            bases = {cls.__name__ for cls in type(trainer.strategy).__mro__}
            if "DDPStrategy" not in bases or "DeepSpeedStrategy" in bases:
                # sharded parameters would give each rank its own ball and gradient norm
                raise RuntimeError(f"PerturbedGD runs on one process or under DDP (each rank a full copy of the "
                                   f"parameters), not under {type(trainer.strategy).__name__}; set trainer.strategy: ddp")
        self.reported = False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        for i, opt in enumerate(perturbed_gd_optimizers(trainer)):
            prefix = "pgd" if i == 0 else f"pgd_{i}"
            pl_module.log(f"{prefix}/perturbations", float(opt.perturbations), on_step=True, on_epoch=False)
            if opt.stopped:
                pl_module.log(f"{prefix}/stopped", 1.0, on_step=True, on_epoch=False)
                pl_module.log(f"{prefix}/stop_step", float(opt.t), on_step=True, on_epoch=False)
                if not self.reported:
                    rank_zero_info(f"PerturbedGD stopped at step {opt.t}: {opt.stop_reason}")
                    self.reported = True
                trainer.should_stop = True
