"""The `model` group made real: any timm model by name, from scratch or pretrained.

`num_classes` and `in_chans` come from the dataset, never from the config. Pretrained
weights come from timm's hub when online, or from `model.pretrained_file`; the head (and a
grayscale stem) are adapted by timm.
"""
import difflib
import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import timm
import torch.nn as nn

from improve.config.names import UnknownName

RESERVED_KWARGS = {"num_classes", "in_chans", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay",
                   "checkpoint_path", "features_only", "model_name"}


@lru_cache(maxsize=1)
def model_names() -> Tuple[str, ...]:
    return tuple(timm.list_models())


def close_model_names(name: str, n: int = 8) -> List[str]:
    """Names a typo most likely meant: shared family prefix first, then by similarity."""
    names = model_names()
    family = name.split("_")[0].rstrip("0123456789") or name
    pattern = [m for m in fnmatch.filter(names, f"*{family}*")]
    return difflib.get_close_matches(name, pattern or names, n=n, cutoff=0.3) or pattern[:n]


def check_model_name(name: str) -> None:
    if name not in model_names():
        close = close_model_names(name)
        raise UnknownName("model", f"model.name={name!r} is not a timm model"
                          + (f"; close matches: {close}" if close else "")
                          + ". See timm.list_models('*pattern*') for every name.")


def build_model(name: str, num_classes: int, in_chans: int, pretrained: bool = False,
                pretrained_file: Optional[str] = None, drop_rate: Optional[float] = None,
                drop_path_rate: Optional[float] = None, kwargs: Optional[Dict[str, Any]] = None) -> nn.Module:
    """timm.create_model from the `model` group's keys (call it as `build_model(**cfg.model, num_classes=..,
    in_chans=..)`), with errors that say which key to change. None means timm's default for that model."""
    check_model_name(name)
    extra = dict(kwargs or {})
    reserved = sorted(RESERVED_KWARGS & set(extra))
    if reserved:
        raise ValueError(f"model.kwargs may not set {reserved}: num_classes and in_chans come from the dataset, "
                         f"weights from model.pretrained / model.pretrained_file")
    options = {k: v for k, v in (("drop_rate", drop_rate), ("drop_path_rate", drop_path_rate)) if v is not None}
    options.update(extra)
    if pretrained and pretrained_file:
        file = Path(pretrained_file).expanduser()
        if not file.is_file():
            raise ValueError(f"model.pretrained_file={pretrained_file!r} does not exist; give the path of a "
                             f"weights file (.pth, .bin or .safetensors) for {name}")
        # num_classes=-1 in the overlay makes timm drop the checkpoint's head and keep the new one.
        options["pretrained_cfg_overlay"] = dict(file=str(file), num_classes=-1)
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans, **options)
    except TypeError as err:
        bad = [k for k in options if f"'{k}'" in str(err)]
        if bad:
            raise ValueError(f"model {name!r} does not accept {bad[0]}; remove model.{bad[0]} "
                             f"(or model.kwargs.{bad[0]}) or pick another model") from None
        raise
    except Exception as err:
        if pretrained and not pretrained_file and _looks_offline(err):
            raise RuntimeError(
                f"model.pretrained=true but the weights of {name!r} could not be downloaded "
                f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). This machine seems offline: "
                f"set model.pretrained=false to train from scratch, or download the weights elsewhere and set "
                f"model.pretrained_file=/path/to/weights.safetensors") from None
        raise


def _looks_offline(err: Exception) -> bool:
    names = {type(e).__name__ for e in _chain(err)}
    text = " ".join(str(e) for e in _chain(err)).lower()
    return bool(names & {"ConnectionError", "ConnectTimeout", "LocalEntryNotFoundError", "OfflineModeIsEnabled",
                         "URLError", "gaierror", "MaxRetryError", "NameResolutionError"}) \
        or "offline" in text or "connect" in text or "resolve" in text


def _chain(err: BaseException):
    while err is not None:
        yield err
        err = err.__cause__ or err.__context__


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
