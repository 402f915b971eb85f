"""Devices a training run can use, found without initialising CUDA or TensorFlow.

Importing TensorFlow (or creating a CUDA context) in the GUI process would take seconds and
hold GPU memory the training child then cannot use, so the GPUs are listed the way the driver
reports them: ``nvidia-smi`` when it is on PATH, else ``/proc/driver/nvidia/gpus/*/information``.
The choice reaches the child through its environment (``CUDA_VISIBLE_DEVICES``).

nvidia-smi numbers GPUs in PCI bus order while CUDA by default puts the fastest first, so every
GPU choice also sets ``CUDA_DEVICE_ORDER=PCI_BUS_ID``: "GPU 1" here is GPU 1 in the child.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=index,name,memory.total",
                    "--format=csv,noheader"]
NVIDIA_SMI_TIMEOUT_S = 3.0
PROC_GPUS = "/proc/driver/nvidia/gpus"
# CUDA_VISIBLE_DEVICES value that hides every GPU (TensorFlow then runs on the CPU).
NO_GPU = "-1"


@dataclass(frozen=True)
class Device:
    """One choice in the device list: a label for people and the child's environment."""

    label: str
    env: dict = field(default_factory=dict)
    gpu_indices: tuple = ()

    @property
    def is_cpu(self) -> bool:
        return not self.gpu_indices


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_mib: int | None = None


def cpu_device() -> Device:
    return Device("CPU", {"CUDA_VISIBLE_DEVICES": NO_GPU})


def gpu_device(gpus) -> Device:
    """The Device for one GPU or a set of GPUs (``gpus``: GpuInfo list, at least one)."""
    indices = tuple(gpu.index for gpu in gpus)
    env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID",
           "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in indices)}
    if len(gpus) == 1:
        gpu = gpus[0]
        memory = f" ({gpu.memory_mib / 1024:.0f} GiB)" if gpu.memory_mib else ""
        return Device(f"GPU {gpu.index}: {gpu.name}{memory}", env, indices)
    return Device(f"All {len(gpus)} GPUs ({', '.join(str(i) for i in indices)})", env, indices)


def list_devices(runner=None, which=shutil.which, proc_root=PROC_GPUS) -> list[Device]:
    """CPU first, then each GPU, then "all GPUs" when there are several.

    ``runner(command, timeout) -> stdout`` runs nvidia-smi (tests pass a fake); ``which`` finds
    it on PATH. Any failure of nvidia-smi falls back to ``proc_root``; no GPU found -> CPU only.
    """
    gpus = []
    if which("nvidia-smi"):
        try:
            gpus = parse_nvidia_smi((runner or _run)(NVIDIA_SMI_QUERY, NVIDIA_SMI_TIMEOUT_S))
        except (OSError, subprocess.SubprocessError, ValueError):
            gpus = []  # driver missing or hung: the /proc listing may still work
    if not gpus:
        gpus = read_proc_gpus(proc_root)
    devices = [cpu_device()] + [gpu_device([gpu]) for gpu in gpus]
    if len(gpus) > 1:
        devices.append(gpu_device(gpus))
    return devices


def _run(command, timeout) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """GpuInfo per line of ``index, name, memory.total`` CSV ("0, NVIDIA H100, 81559 MiB")."""
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < 2 or not parts[0].isdigit():
            raise ValueError(f"nvidia-smi: unexpected line {line!r}")
        memory = parts[2].split()[0] if len(parts) > 2 and parts[2] else ""
        gpus.append(GpuInfo(int(parts[0]), parts[1],
                            int(memory) if memory.isdigit() else None))
    return gpus


def read_proc_gpus(proc_root=PROC_GPUS) -> list[GpuInfo]:
    """GpuInfo from the driver's /proc entries, numbered in PCI bus order (as nvidia-smi)."""
    root = Path(proc_root)
    if not root.is_dir():
        return []
    gpus = []
    # Folder names are PCI bus ids ("0000:3b:00.0"), so sorting them gives PCI bus order.
    for index, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        name = "NVIDIA GPU"
        try:
            for line in (folder / "information").read_text(errors="replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip() == "Model" and value.strip():
                    name = value.strip()
        except OSError:
            pass
        gpus.append(GpuInfo(index, name))
    return gpus


def environment_note() -> str:
    """A hint when the viewer itself was started with CUDA_VISIBLE_DEVICES (choices override it)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return ""
    return f"The viewer was started with CUDA_VISIBLE_DEVICES={value}; the choice here replaces it."
