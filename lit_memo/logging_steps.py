"""Which training batches Lightning logs: the one test lit_memo's module and callbacks share.

Work that needs a device sync or a DDP collective (reducing the training loss, checking it for
NaN) is done on these batches only, since Lightning's loggers drop what is logged on the others.
"""

from __future__ import annotations

from typing import Any


def logs_train_step(trainer: Any) -> bool:
    """Whether Lightning logs this training batch's step metrics: every ``log_every_n_steps``
    batches (and when the fit stops), and every batch under ``fast_dev_run``, as its
    ``LoggerConnector.update_train_step_metrics`` decides (its ``LearningRateMonitor`` reads the same)."""
    return bool(trainer._logger_connector.should_update_logs or trainer.fast_dev_run)
