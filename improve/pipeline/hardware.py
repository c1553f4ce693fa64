"""The `hardware` group made concrete for this machine: data workers and precision when set to auto, and the
model's memory layout and compilation.

`hardware=default` says `num_workers: -1` and `precision: auto`: on a GPU machine that is one data-loading
worker per spare CPU core (at most 8 per device), so albumentations runs beside the GPU instead of in front of
it, and bf16 mixed precision where the GPU supports it, else fp16; on a CPU-only machine it is no worker
processes (the training process decodes batches itself: fastest on few cores) and 32-bit.
"""
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)
MAX_WORKERS_PER_DEVICE = 8


@dataclass
class Resolved:
    """What `auto` means on this machine."""

    precision: str
    num_workers: int
    gpu: bool


def _uses_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def _device_count(devices: Any) -> int:
    if isinstance(devices, int) and devices > 0:
        return devices
    if isinstance(devices, (list, tuple)) or hasattr(devices, "__len__") and not isinstance(devices, str):
        return max(1, len(devices))
    return max(1, torch.cuda.device_count())


def resolve(hw: Any) -> Resolved:
    """`hardware.precision=auto` and `hardware.num_workers=-1` made concrete for this machine."""
    gpu = _uses_gpu(str(hw.accelerator)) and torch.cuda.is_available()
    precision = str(hw.precision)
    if precision == "auto":
        precision = ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed") if gpu else "32-true"
    workers = int(hw.num_workers)
    if workers < 0:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        per_device = max(0, cpus // _device_count(hw.devices) - 1)  # one core stays with the training process
        workers = min(MAX_WORKERS_PER_DEVICE, per_device) if gpu else 0
    return Resolved(precision, workers, gpu)


def prepare_model(model: torch.nn.Module, hw: Any) -> torch.nn.Module:
    """`hardware.channels_last` (NHWC weights: faster convolutions on tensor-core GPUs) and `hardware.compile`
    (torch.compile; Lightning unwraps it for checkpoints). Returns the module to fit."""
    if hw.get("channels_last", False):
        model = model.to(memory_format=torch.channels_last)
    if hw.get("compile", False):
        log.info("hardware.compile=true: the first steps are slow while torch.compile builds its kernels")
        return torch.compile(model)
    return model
