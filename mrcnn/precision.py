"""Compute precision: Config.COMPUTE_DTYPE -> Keras dtype policy, and the ``--precision`` flag.

A model is built under one Keras dtype policy taken from its config (``build_policy``):
"float32", "mixed_bfloat16" or "mixed_float16". Under a mixed policy the convolutions and dense
layers compute in the low precision while their variables (the weights) stay float32, so weights
load and save as float32 whatever the precision. Layers that do box arithmetic, NMS, ROIAlign
coordinates and softmax are built with ``dtype=BOX_DTYPE`` (float32) explicitly, so they compute
in float32 under any policy; see ``float32_layer_kwargs``.

The policy is set only while the graph is built and restored afterwards (Keras keeps it per
thread), so models of different precisions can live side by side in one process.

``--precision {fp32,bf16,fp16,auto}``: ``auto`` picks bfloat16 where the CPU reports
``amx_bf16`` or ``avx512_bf16`` in /proc/cpuinfo or a GPU supports it (compute capability >= 8.0;
float16 on older tensor-core GPUs, 7.x), float32 elsewhere, and logs which and why.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import sys
from pathlib import Path
from typing import NamedTuple

from mrcnn.config import COMPUTE_DTYPES, Config

log = logging.getLogger(__name__)

PRECISION_CHOICES = ("fp32", "bf16", "fp16", "auto")
DTYPE_OF_CHOICE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
CHOICE_OF_DTYPE = {dtype: choice for choice, dtype in DTYPE_OF_CHOICE.items()}
# Keras dtype policy of each COMPUTE_DTYPE.
POLICY_OF_DTYPE = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# The dtype of box arithmetic, anchors, NMS, ROIAlign, softmax outputs and losses.
BOX_DTYPE = "float32"
# CPU flags (Linux /proc/cpuinfo) of native bfloat16 matrix arithmetic, best first.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# GPU compute capability from which bfloat16 (Ampere) and float16 tensor cores (Volta) exist.
GPU_BF16_CAPABILITY = (8, 0)
GPU_FP16_CAPABILITY = (7, 0)
CPUINFO = Path("/proc/cpuinfo")


def policy_name(compute_dtype: str) -> str:
    """Keras dtype policy name for a COMPUTE_DTYPE ("bfloat16" -> "mixed_bfloat16")."""
    if compute_dtype not in POLICY_OF_DTYPE:
        raise ValueError(f"COMPUTE_DTYPE: unknown dtype {compute_dtype!r}; "
                         f"expected one of {', '.join(COMPUTE_DTYPES)}")
    return POLICY_OF_DTYPE[compute_dtype]


@contextlib.contextmanager
def build_policy(compute_dtype: str):
    """Layers created inside take the policy of ``compute_dtype``; the previous one is restored."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy_name(compute_dtype))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def built_under_config_policy(build):
    """Decorator for ``build(config, ...)`` graph builders: build under config.COMPUTE_DTYPE."""

    @functools.wraps(build)
    def wrapper(config, *args, **kwargs):
        with build_policy(getattr(config, "COMPUTE_DTYPE", "float32")):
            return build(config, *args, **kwargs)

    return wrapper


def float32_layer_kwargs(kwargs: dict) -> dict:
    """``kwargs`` with dtype float32 unless given: for layers doing box math under any policy."""
    kwargs.setdefault("dtype", BOX_DTYPE)
    return kwargs


# ---- choosing a precision --------------------------------------------------------------------

class Resolution(NamedTuple):
    """A resolved --precision: the COMPUTE_DTYPE and the reason, for the log."""

    compute_dtype: str
    reason: str


def cpu_bf16_flags(cpuinfo_text: str) -> list[str]:
    """The CPU_BF16_FLAGS present in /proc/cpuinfo text, best first."""
    flags = set()
    for line in cpuinfo_text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return [flag for flag in CPU_BF16_FLAGS if flag in flags]


def read_cpuinfo(path: Path = CPUINFO) -> str:
    """/proc/cpuinfo's text, or "" where there is none (not Linux)."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def visible_gpus() -> list[tuple[str, tuple]]:
    """(name, compute capability) of each GPU TensorFlow sees; [] without one."""
    import tensorflow as tf

    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        gpus.append((details.get("device_name", device.name),
                     tuple(details.get("compute_capability", (0, 0)))))
    return gpus


def resolve_precision(choice: str, cpuinfo_text: str | None = None,
                      gpus: list | None = None) -> Resolution:
    """COMPUTE_DTYPE for a --precision choice; ``auto`` looks at the GPUs, then the CPU flags."""
    if choice not in PRECISION_CHOICES:
        raise ValueError(f"--precision: unknown value {choice!r}; expected one of "
                         f"{', '.join(PRECISION_CHOICES)}")
    if choice != "auto":
        return Resolution(DTYPE_OF_CHOICE[choice], f"--precision {choice}")
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        name, capability = gpus[0]
        if capability >= GPU_BF16_CAPABILITY:
            return Resolution("bfloat16", f"auto: GPU {name} (compute capability "
                                          f"{capability[0]}.{capability[1]}) has bfloat16")
        if capability >= GPU_FP16_CAPABILITY:
            return Resolution("float16", f"auto: GPU {name} (compute capability "
                                         f"{capability[0]}.{capability[1]}) has float16 tensor cores")
    text = read_cpuinfo() if cpuinfo_text is None else cpuinfo_text
    flags = cpu_bf16_flags(text)
    if flags:
        return Resolution("bfloat16", f"auto: the CPU reports {', '.join(flags)}")
    return Resolution("float32", "auto: no GPU with bfloat16/float16 and the CPU reports neither "
                                 f"{' nor '.join(CPU_BF16_FLAGS)}")


def with_compute_dtype(config: Config, compute_dtype: str) -> Config:
    """A copy of ``config`` with COMPUTE_DTYPE set, validated (the original is unchanged)."""
    changed = copy.copy(config)
    changed.COMPUTE_DTYPE = compute_dtype
    return changed.validate()


def apply_precision(config: Config, choice: str | None, cpuinfo_text: str | None = None,
                    gpus: list | None = None) -> Config:
    """``config`` with the COMPUTE_DTYPE of ``--precision choice``; None keeps the config's own."""
    if choice is None:
        return config
    resolution = resolve_precision(choice, cpuinfo_text, gpus)
    if choice == "auto" or resolution.compute_dtype != config.COMPUTE_DTYPE:
        _say(f"precision: {resolution.compute_dtype} ({resolution.reason})")
    if resolution.compute_dtype == "bfloat16" and choice == "bf16":
        text = read_cpuinfo() if cpuinfo_text is None else cpuinfo_text
        if not cpu_bf16_flags(text) and not (gpus if gpus is not None else visible_gpus()):
            _say(f"precision: bfloat16 on a CPU without {' or '.join(CPU_BF16_FLAGS)} is "
                 "emulated (slower than float32); results stay correct")
    return with_compute_dtype(config, resolution.compute_dtype)


def _say(message: str) -> None:
    """Log ``message``; on stderr when logging is not set up (detect, trace, evaluate)."""
    if logging.getLogger().handlers:
        log.info("%s", message)
    else:
        print(f"mrcnn: {message}", file=sys.stderr)


def training_choice(precision: str | None, mixed_precision: bool = False) -> str | None:
    """mrcnn train's choice: --precision, else "auto" for the older --mixed-precision flag
    (which used to mean mixed_float16 everywhere, slow on CPUs), else None (the config's)."""
    if precision is not None:
        return precision
    return "auto" if mixed_precision else None


def add_precision_argument(parser, default=None):
    """Add ``--precision {fp32,bf16,fp16,auto}`` to an argparse parser (None: the config's)."""
    parser.add_argument(
        "--precision", choices=PRECISION_CHOICES, default=default,
        help="compute precision of convolutions and dense layers: fp32, bf16 (CPUs with "
             "AMX/AVX512-BF16, Ampere+ GPUs), fp16 (GPUs) or auto (bf16 where the hardware has "
             "it, else fp32); default: the config's COMPUTE_DTYPE (float32)")
    return parser
