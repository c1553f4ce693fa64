"""Validation of an edit to ONE agent-editable group, before any training.

Agent output is untrusted input. Layers, cheapest first, each with its own message the
agent can act on:
  parse (empty, not YAML, YAML tags, not a mapping) -> scope (another group's keys)
  -> forbidden constructs (`_target_`, `${...}` interpolations) -> the group's typed schema
  (unknown keys, wrong types) -> ranges -> allowlists (timm and albumentations names and
  parameters) -> pre-flight (build transforms and model, one forward/backward on a tiny batch,
  parameter count, latency) -> constraints.
Nothing here imports, evaluates or instantiates anything named by the edit except through
timm's and albumentations' own registries.
"""
import time
from dataclasses import fields
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from .augment import build_train_transform, check_transform_output
from .candidate import Preflight
from .models import build_model, check_model_name, count_parameters
from .names import UnknownName
from .schema import EDITABLE_GROUPS, GROUP_SCHEMAS, RefineConfig, TrainConfig
from .schema_meta import check_ranges

# top-level keys of train.yaml and config.yaml that no group edit may set
OTHER_KEYS = ({f.name for f in fields(TrainConfig)} | {f.name for f in fields(RefineConfig)} | {"hydra"}) \
    - set(EDITABLE_GROUPS)


class EditRejected(ValueError):
    """An edit failed validation. `kind` is a short machine-readable reason; str() is the message."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def parse_edit(text: str, group: str) -> Dict[str, Any]:
    """Untrusted YAML text -> a plain mapping of `group`'s keys, or EditRejected."""
    if group not in EDITABLE_GROUPS:
        raise EditRejected("other_group", f"group {group!r} is not agent-editable; editable: {list(EDITABLE_GROUPS)}")
    if text is None or not str(text).strip():
        raise EditRejected("empty", f"the reply holds no YAML; return the whole '{group}' group as a YAML mapping")
    text = str(text)
    try:
        for token in yaml.scan(text):
            if isinstance(token, yaml.TagToken):
                tag = "".join(token.value)
                raise EditRejected("yaml_tag", f"YAML tags such as {tag!r} are not allowed; write plain values "
                                               f"(strings, numbers, booleans, lists, mappings)")
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise EditRejected("not_yaml", f"the reply is not valid YAML ({' '.join(str(err).split())[:300]}); "
                                       f"return only the '{group}' group as a YAML mapping") from None
    if not isinstance(data, dict):
        raise EditRejected("not_mapping", f"expected a YAML mapping of '{group}' settings, got "
                                          f"{type(data).__name__}: {str(data)[:100]!r}")
    if set(data) == {group} and isinstance(data[group], dict):  # tolerate `augment: {...}` wrapping
        data = data[group]
    others = sorted(k for k in data if k in OTHER_KEYS or (k in EDITABLE_GROUPS and k != group))
    if others:
        raise EditRejected("other_group", f"this round edits only the '{group}' group; the reply also sets {others}. "
                                          f"Return only '{group}' keys")
    _forbid_constructs(data, group)
    return data


def _forbid_constructs(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            if str(key) in ("_target_", "_partial_", "_recursive_", "_convert_", "_args_"):
                raise EditRejected("forbidden_target", f"{where}.{key}: instantiation keys like '{key}' are not allowed; "
                                                       f"settings are plain values only")
            if not isinstance(key, str):
                raise EditRejected("wrong_type", f"{where}: key {key!r} must be a string")
            _forbid_constructs(inner, f"{where}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            _forbid_constructs(inner, f"{where}[{i}]")
    elif isinstance(value, str) and "${" in value:
        raise EditRejected("interpolation", f"{where}={value!r}: '${{...}}' interpolations are not allowed "
                                            f"(they can read the environment); write the literal value")


def check_group(group: str, data: Dict[str, Any], current: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Schema, ranges and library names for one group; returns the complete group as a plain dict.

    Keys the edit leaves out keep their `current` values (else the schema defaults).
    """
    schema = OmegaConf.structured(GROUP_SCHEMAS[group])
    try:
        merged = OmegaConf.merge(schema, current or {}, data)
    except OmegaConfBaseException as err:
        key = f"{group}.{err.full_key}" if getattr(err, "full_key", None) else group
        msg = getattr(err, "msg", str(err)).splitlines()[0]
        kind = "unknown_key" if isinstance(err, ConfigKeyError) else "wrong_type"
        known = sorted(GROUP_SCHEMAS[group].__dataclass_fields__)
        hint = f"; '{group}' keys are {known}" if kind == "unknown_key" else ""
        raise EditRejected(kind, f"{key}: {msg}{hint}") from None
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise EditRejected("wrong_type", f"{group}: required value(s) missing: {missing}")
    values = OmegaConf.to_container(merged)
    try:
        check_ranges(group, values)
    except ValueError as err:
        raise EditRejected("out_of_range", str(err)) from None
    try:
        if group == "model":
            check_model_name(values["name"])
        if group == "augment":
            build_train_transform(values["train_transforms"])
    except UnknownName as err:
        raise EditRejected(f"unknown_{err.kind}", str(err)) from None
    except ValueError as err:
        raise EditRejected("bad_transform_params", str(err)) from None
    return values


def preflight(pipeline: Dict[str, Dict[str, Any]], num_classes: int, channels: int,
              constraints: Optional[Dict[str, Any]] = None) -> Preflight:
    """Build transforms and model, run one forward/backward on 2 images; check constraints."""
    start = time.perf_counter()
    augment, model_cfg = pipeline["augment"], pipeline["model"]
    size = augment["image_size"]
    try:
        check_transform_output(build_train_transform(augment["train_transforms"]), size, channels)
    except ValueError as err:
        raise EditRejected("preflight", str(err)) from None
    try:
        model = build_model(**model_cfg, num_classes=num_classes, in_chans=channels)
        x = torch.randn(2, channels, size, size)
        model.train()
        loss = F.cross_entropy(model(x), torch.tensor([0, num_classes - 1]))
        loss.backward()
        model.eval()
        with torch.no_grad():
            one = x[:1]
            model(one)
            t = time.perf_counter()
            model(one)
            latency = (time.perf_counter() - t) * 1000
    except (RuntimeError, ValueError, TypeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise EditRejected("preflight", f"pre-flight of model {model_cfg['name']!r} at {size}px failed: {first}") from None
    n = count_parameters(model)
    problems = _constraint_problems(n, latency, constraints or {})
    if problems:
        raise EditRejected("constraint", "; ".join(problems))
    return Preflight(num_params=n, latency_ms=round(latency, 2), seconds=round(time.perf_counter() - start, 3))


def _constraint_problems(num_params: int, latency_ms: float, constraints: Dict[str, Any]) -> List[str]:
    problems = []
    max_params = constraints.get("max_params")
    if max_params and num_params > max_params:
        problems.append(f"constraints.max_params={max_params:,} exceeded: the model has {num_params:,} parameters "
                        f"({num_params / max_params:.1f}x); pick a smaller model")
    max_latency = constraints.get("max_latency_ms")
    if max_latency and latency_ms > max_latency:
        problems.append(f"constraints.max_latency_ms={max_latency} exceeded: one image takes {latency_ms:.1f} ms "
                        f"(+{latency_ms - max_latency:.1f} ms); pick a smaller model or image size")
    return problems


def validate_edit(text: str, group: str, pipeline: Dict[str, Dict[str, Any]], num_classes: int, channels: int,
                  constraints: Optional[Dict[str, Any]] = None):
    """All layers for one group edit: returns (new pipeline, Preflight) or raises EditRejected."""
    data = parse_edit(text, group)
    values = check_group(group, data, pipeline.get(group))
    candidate = {**pipeline, group: values}
    return candidate, preflight(candidate, num_classes, channels, constraints)
