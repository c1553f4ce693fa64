"""Pre-flight: a candidate is built and run once on two images before it may train.

First the model is built on torch's `meta` device, which allocates nothing, to count its
parameters: a model over the constraints or over what this machine's memory can train is
rejected before any real allocation. Then the transforms run on a dummy image, the
normalisation is checked against the channel count, the real model does one forward and
backward pass and one optimiser step, and single-image latency is measured. Whatever a library
raises on the way (timm raises KeyError and AssertionError for some bad kwargs) is a rejection
with a message the author can act on, never a crash of the loop.
"""
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

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


def preflight(pipeline: Dict[str, Dict[str, Any]], num_classes: int, channels: int,
              constraints: Optional[Dict[str, Any]] = None) -> Preflight:
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
    except ValueError as err:
        raise EditRejected("preflight", str(err)) from None
    try:
        model = build_model(**model_cfg, num_classes=num_classes, in_chans=channels)
        optimizer = build_optimizer(model, trainer["optimizer"], trainer["lr"], trainer["weight_decay"],
                                    trainer["momentum"])
        x = torch.randn(2, channels, size, size)
        model.train()
        loss = F.cross_entropy(model(x), torch.tensor([0, num_classes - 1]))
        loss.backward()
        optimizer.step()
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
    return Preflight(num_params=n, latency_ms=round(latency, 2), seconds=round(time.perf_counter() - start, 3))


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
                  constraints: Optional[Dict[str, Any]] = None, max_epochs: Optional[int] = None):
    """Every layer for one agent's group edit: returns (new pipeline, Preflight) or raises EditRejected."""
    data = parse_edit(text, group)
    values = check_group(group, data, pipeline.get(group))
    check_agent_limits(group, values, pipeline[group], max_epochs)
    candidate = {**pipeline, group: values}
    return candidate, preflight(candidate, num_classes, channels, constraints)
