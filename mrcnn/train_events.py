"""The JSON-lines event stream of ``mrcnn train``: event names, fields, and the writer.

TensorFlow- and Qt-free: the viewer (``viewer/training``) imports the names from here instead of
repeating string literals. stdout of a training process carries these events only, one JSON
object per line, flushed at once; logs go to stderr::

    {"event": "start", "run_dir", "epochs", "initial_epoch", "initial_step", "steps_per_epoch",
     "strategy", ...}     initial_step: global steps done before this session (a resume's)
    {"event": "step", "step", "epoch", "loss", "<each loss>", "weight_decay", "lr",
     "images_per_s", "eta_s"}          losses of that step (not the epoch's running mean)
    {"event": "epoch", "epoch", "step", "loss", ..., "val_loss", "val_<each loss>", "time_s"}
    {"event": "checkpoint", "path", "epoch", "step", "partial"}
    {"event": "error", "message"}
    {"event": "end", "status": "finished"|"stopped"|"failed", "reason"}

Steps count from 1 over the whole run; epochs count from 1 (epoch 3 = the third pass). The
"step" and "epoch" records also go to the run directory's ``metrics.jsonl`` (``mrcnn.runs``).
NaN and Inf numbers are written as null (JSON has neither).
"""

from __future__ import annotations

import json
import logging
import math

from mrcnn.runs import FAILED, FINISHED, STOPPED

log = logging.getLogger("mrcnn.train")

# Event names (the "event" field).
START = "start"
STEP = "step"
EPOCH = "epoch"
CHECKPOINT = "checkpoint"
ERROR = "error"
END = "end"
EVENTS = (START, STEP, EPOCH, CHECKPOINT, ERROR, END)

# The "status" of an "end" event: the run statuses of mrcnn.runs a process can end with.
END_STATUSES = (FINISHED, STOPPED, FAILED)

# The five losses the trainer reports (mrcnn.trainer.MaskRCNNTrainer), in this order.
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
              "mrcnn_mask_loss")
TOTAL_LOSS = "loss"
# The numbers of a "step" record taken from the trainer's logs: total, each loss, weight decay.
STEP_LOSSES = (TOTAL_LOSS,) + LOSS_NAMES + ("weight_decay",)
VAL_PREFIX = "val_"  # "epoch" records name validation losses val_<name>

# Exit codes of a training process.
EXIT_OK = 0        # finished or stopped
EXIT_FAILED = 1    # NaN loss, bad data, any other failure
EXIT_USAGE = 2     # bad arguments

# Test hook: the loss of this global step reads as NaN, to exercise the NaN path without
# waiting for a real divergence.
NAN_HOOK_ENV = "MRCNN_TEST_FORCE_NAN_AT_STEP"


class EventWriter:
    """Writes one JSON object per line to ``stream`` and flushes it at once.

    A reader that went away (broken pipe, closed stream) stops the events, not the run: the run
    directory still records everything that matters.
    """

    def __init__(self, stream):
        self.stream = stream

    def emit(self, event, **fields) -> dict:
        """Write ``{"event": event, **fields}`` (if the reader is there); returns the record."""
        record = {"event": event, **fields}
        if self.stream is not None:
            try:
                self.stream.write(json.dumps(record, default=_jsonable) + "\n")
                self.stream.flush()
            except (OSError, ValueError) as error:  # ValueError: write to a closed file
                log.warning("stdout is gone (%s); no more JSON events, training goes on", error)
                self.stream = None
        return record


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def json_number(value):
    """A float for JSON: NaN and Inf become None (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None
