"""Pre-flight: a candidate is built and run once on two images before it may train.

First the model is built on torch's `meta` device, which allocates nothing, to count its
parameters: a model over the constraints or over what this machine's memory can train is
rejected before any real allocation. Then the transforms run on a dummy image, the
normalisation is checked against the channel count, the real model does forward and backward
passes and optimiser steps, and single-image latency is measured. Whatever a library raises on
the way (timm raises KeyError and AssertionError for some bad kwargs) is a rejection with a
message the author can act on, never a crash of the loop.

The cost of a round is measured too: the transforms' seconds per training image (a few images at
the training size) and, when the round trains on this CPU, the seconds of one training step of the
model. A pipeline whose estimated round would not fit the round's time limit or the budget left is
rejected before it trains. The estimate is a lower bound: the transforms spread over every loader,
each step of a full batch costing no more than the measured step of two images, no validation, no
data loading; so only what surely cannot fit is rejected.

These checks run on agent-written values; `validator.py` runs them in a bounded child process.
"""
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from improve.pipeline.augment import check_transform_output, normalization, train_augment
from improve.pipeline.models import build_model, count_parameters
from improve.pipeline.optim import build_optimizer
from improve.refine.edits import EditRejected, check_agent_limits, check_group, parse_edit


@dataclass
class Preflight:
    """What pre-flight measured on a candidate before any training."""

    num_params: int
    latency_ms: float
    seconds: float
    augment_ms: Optional[float] = None  # the training transforms, per image at the training size
    step_ms: Optional[float] = None  # one training step of the model on two images, on this CPU
    round_s: Optional[float] = None  # the round's training seconds at least (see the module's docstring)


@dataclass
class RoundCost:
    """What one round may cost, for pre-flight's estimate."""

    train_images: int  # images one epoch trains on
    limit_s: float  # seconds the round may take
    limit: str  # where that limit comes from, named in the rejection ("loop.round_timeout=900")
    step_counts: bool = True  # the round trains on this CPU, so the model's measured step is part of its cost
    loaders: int = 1  # processes that run the transforms in parallel while training


COST_IMAGES = 4  # images the transforms are timed on


BYTES_PER_TRAINED_PARAM = 16  # fp32 weights, gradients and two Adam moments


MEMORY_SHARE = 0.5  # of this machine's RAM that the model's training state may take


def memory_param_limit() -> int:
    """The most parameters this machine can train: half its RAM over 16 bytes per parameter."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2 ** 30
    return int(total * MEMORY_SHARE / BYTES_PER_TRAINED_PARAM)


def _first_line(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def count_parameters_unallocated(model_cfg: Dict[str, Any], num_classes: int, channels: int) -> int:
    """Parameters of the model the `model` group describes, built on the meta device (no memory, no weights)."""
    try:
        with torch.device("meta"):
            net = build_model(**{**model_cfg, "pretrained": False, "pretrained_file": None},
                              num_classes=num_classes, in_chans=channels)
    except Exception as err:
        raise EditRejected("preflight", f"model {model_cfg['name']!r} with this `model` group cannot be built "
                                        f"({_first_line(err)}); change the offending option") from None
    return count_parameters(net)


def _augment_seconds(transform, side: int, channels: int) -> float:
    """Seconds per image of the training transforms, on COST_IMAGES random images of side x side."""
    if transform is None:
        return 0.0
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (side, side, channels), dtype=np.uint8) for _ in range(COST_IMAGES)]
    start = time.perf_counter()
    for img in images:
        transform(image=img)
    return (time.perf_counter() - start) / COST_IMAGES


def preflight(pipeline: Dict[str, Dict[str, Any]], num_classes: int, channels: int,
              constraints: Optional[Dict[str, Any]] = None, cost: Optional[RoundCost] = None) -> Preflight:
    """Check one pipeline as described above; returns what was measured or raises EditRejected."""
    start = time.perf_counter()
    constraints = constraints or {}
    augment, model_cfg, trainer = pipeline["augment"], pipeline["model"], pipeline["trainer"]
    size = augment["image_size"]
    n = count_parameters_unallocated(model_cfg, num_classes, channels)
    limit = memory_param_limit()
    if n > limit:
        raise EditRejected("too_large", f"model {model_cfg['name']!r} has {n:,} parameters; training it needs about "
                                        f"{n * BYTES_PER_TRAINED_PARAM / 2 ** 30:.0f} GiB, more than this machine can "
                                        f"give ({limit:,} parameters at most); pick a smaller model or smaller kwargs")
    problems = _constraint_problems(n, None, constraints)
    if problems:
        raise EditRejected("constraint", "; ".join(problems))
    try:
        geometry = train_augment(augment)
        check_transform_output(geometry.transform, size, channels, input_size=geometry.input_size)
        normalization(augment["mean"], augment["std"], channels)
        augment_s = _augment_seconds(geometry.transform, geometry.input_size, channels)
    except ValueError as err:
        raise EditRejected("preflight", str(err)) from None
    try:
        model = build_model(**model_cfg, num_classes=num_classes, in_chans=channels)
        optimizer = build_optimizer(model, trainer["optimizer"], trainer["lr"], trainer["weight_decay"],
                                    trainer["momentum"])
        x = torch.randn(2, channels, size, size)
        model.train()
        target = torch.tensor([0, num_classes - 1])
        for _ in range(2):  # the second step is timed: the first pays for lazy allocations
            t = time.perf_counter()
            optimizer.zero_grad()
            F.cross_entropy(model(x), target).backward()
            optimizer.step()
            step_s = time.perf_counter() - t
        model.eval()
        with torch.no_grad():
            one = x[:1]
            model(one)
            t = time.perf_counter()
            model(one)
            latency = (time.perf_counter() - t) * 1000
    except Exception as err:  # anything timm, torch or an optimiser raises for this pipeline
        raise EditRejected("preflight", f"pre-flight of model {model_cfg['name']!r} with optimizer "
                                        f"{trainer['optimizer']!r} at {size}px failed: {_first_line(err)}") from None
    problems = _constraint_problems(n, latency, constraints)
    if problems:
        raise EditRejected("constraint", "; ".join(problems))
    round_s = _round_seconds(pipeline, augment_s, step_s, cost) if cost else None
    return Preflight(num_params=n, latency_ms=round(latency, 2), seconds=round(time.perf_counter() - start, 3),
                     augment_ms=round(augment_s * 1000, 3), step_ms=round(step_s * 1000, 3),
                     round_s=None if round_s is None else round(round_s, 1))


def _round_seconds(pipeline: Dict[str, Dict[str, Any]], augment_s: float, step_s: float, cost: RoundCost) -> float:
    """The round's training seconds at least; EditRejected when they exceed cost.limit_s."""
    epochs, batch = pipeline["trainer"]["epochs"], pipeline["trainer"]["batch_size"]
    steps = math.ceil(cost.train_images / batch)
    epoch_s = cost.train_images * augment_s / max(cost.loaders, 1) + (steps * step_s if cost.step_counts else 0.0)
    estimate = epochs * epoch_s
    if estimate > cost.limit_s:
        parts = f"{augment_s * 1000:.1f} ms an image for the transforms" + \
            (f", {steps} steps of at least {step_s * 1000:.0f} ms" if cost.step_counts else "")
        raise EditRejected("too_slow", f"this pipeline would train for at least {estimate:,.0f} s ({epochs} epochs x "
                                       f"{cost.train_images:,} images; {parts}), more than {cost.limit} "
                                       f"({cost.limit_s:,.0f} s); use fewer or cheaper transforms (smaller counts "
                                       f"and kernels), a smaller model or image size, or fewer epochs")
    return estimate


def _constraint_problems(num_params: int, latency_ms: Optional[float], constraints: Dict[str, Any]) -> List[str]:
    problems = []
    max_params = constraints.get("max_params")
    if max_params and num_params > max_params:
        problems.append(f"constraints.max_params={max_params:,} exceeded: the model has {num_params:,} parameters "
                        f"({num_params / max_params:.1f}x); pick a smaller model")
    max_latency = constraints.get("max_latency_ms")
    if max_latency and latency_ms is not None and latency_ms > max_latency:
        problems.append(f"constraints.max_latency_ms={max_latency} exceeded: one image takes {latency_ms:.1f} ms "
                        f"(+{latency_ms - max_latency:.1f} ms); pick a smaller model or image size")
    return problems


def validate_edit(text: str, group: str, pipeline: Dict[str, Dict[str, Any]], num_classes: int, channels: int,
                  constraints: Optional[Dict[str, Any]] = None, max_epochs: Optional[int] = None,
                  cost: Optional[RoundCost] = None):
    """Every layer for one agent's group edit: returns (new pipeline, Preflight) or raises EditRejected.
    Unbounded: the loop calls it through `validator.Validator.edit`, in a bounded child."""
    data = parse_edit(text, group)
    values = check_group(group, data, pipeline.get(group))
    check_agent_limits(group, values, pipeline[group], max_epochs)
    candidate = {**pipeline, group: values}
    return candidate, preflight(candidate, num_classes, channels, constraints, cost)
