"""What the training dialog asks for: one ``mrcnn train`` command, Qt-free and TF-free."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field


@dataclass
class TrainRequest:
    """A ``mrcnn train`` child process to start.

    ``args`` are the command-line arguments after ``train`` (``--run-dir`` included), ``env``
    the variables added to the child's environment (e.g. ``CUDA_VISIBLE_DEVICES``), and
    ``description`` one line for the runs list ("shapes · heads · 3 epochs · GPU 0").
    """

    run_dir: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def program(self) -> tuple[str, list[str]]:
        """(executable, arguments): this interpreter running ``mrcnn.train``, so the child uses
        the same environment as the viewer whether or not the entry point is on PATH.
        ``--stop-with-parent PID``: if the viewer dies, the run checkpoints and stops."""
        args = [*self.args]
        if "--stop-with-parent" not in args:
            args += ["--stop-with-parent", str(os.getpid())]
        return sys.executable, ["-u", "-m", "mrcnn.train", *args]

    def resume(self) -> "TrainRequest":
        """The same run continued from its last good checkpoint (``--resume``)."""
        args = self.args if "--resume" in self.args else [*self.args, "--resume"]
        return TrainRequest(self.run_dir, list(args), dict(self.env), self.description)
