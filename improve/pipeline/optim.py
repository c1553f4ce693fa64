"""The optimiser from the `trainer` group: any of timm's registry by name, built by timm's factory."""
import difflib
from functools import lru_cache
from typing import Tuple

import torch.nn as nn
from timm.optim import create_optimizer_v2, list_optimizers

from improve.config.names import UnknownName

# registry entries that need packages this project does not install (bitsandbytes, NVIDIA apex)
NEEDS_EXTRA_PACKAGES = ("bnb", "fused")


@lru_cache(maxsize=1)
def optimizer_names() -> Tuple[str, ...]:
    return tuple(n for n in list_optimizers() if not n.startswith(NEEDS_EXTRA_PACKAGES))


def check_optimizer_name(name: str) -> None:
    if name not in optimizer_names():
        close = difflib.get_close_matches(name, optimizer_names(), n=5, cutoff=0.5)
        raise UnknownName("optimizer", f"trainer.optimizer={name!r} is not a timm optimiser usable here"
                          + (f"; did you mean one of {close}?" if close else "")
                          + f". Choose from {list(optimizer_names())}")


def build_optimizer(net: nn.Module, optimizer: str, lr: float, weight_decay: float, momentum: float,
                    layer_decay: float = 1.0):
    """timm.optim.create_optimizer_v2 from the `trainer` group's keys (layer_decay < 1: timm's layer-wise lr decay)."""
    check_optimizer_name(optimizer)
    return create_optimizer_v2(net, opt=optimizer, lr=lr, weight_decay=weight_decay, momentum=momentum,
                               layer_decay=layer_decay if layer_decay < 1.0 else None)
