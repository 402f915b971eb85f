"""Later stages of a training run (matterport's "heads, then all") as continued CLI runs.

``mrcnn.train`` trains one layer selection per process, so each stage after the first one is a
``--resume`` of the same run directory with other ``--layers`` and a later ``--epochs``.
"""

from __future__ import annotations

from viewer.training.request import TrainRequest


def _replace_option(args, option, value) -> list[str]:
    """``args`` with ``option``'s value set to ``value`` (appended when absent)."""
    out, index = [], 0
    while index < len(args):
        arg = args[index]
        if arg == option:
            index += 2
            continue
        if arg.startswith(option + "="):
            index += 1
            continue
        out.append(arg)
        index += 1
    return out + [option, str(value)]


def stage_args(request: TrainRequest, layers: str, until_epoch: int,
               learning_rate: float | None = None) -> TrainRequest:
    """The request continuing ``request``'s run with ``layers`` until epoch ``until_epoch``.

    ``mrcnn.train --resume`` re-applies the run's saved arguments and these on top, restarts
    from the last good checkpoint (so it must run after the previous stage finished) and
    re-selects the trainable layers, so only --layers, --epochs (and --learning-rate) change.
    """
    args = _replace_option(request.args, "--layers", layers)
    args = _replace_option(args, "--epochs", int(until_epoch))
    if learning_rate is not None:
        args = _replace_option(args, "--learning-rate", f"{learning_rate:g}")
    if "--resume" not in args:
        args.append("--resume")
    head = request.description.split(" · ")[0] if request.description else "resume"
    device = request.description.split(" · ")[-1] if " · " in request.description else ""
    description = " · ".join(p for p in (head, layers, f"to epoch {until_epoch}", device) if p)
    return TrainRequest(request.run_dir, args, dict(request.env), description)
