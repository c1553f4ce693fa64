"""Validation of an edit to ONE agent-editable group, before any training.

Agent output is untrusted input. Layers, cheapest first, each with its own message the
agent can act on:
  parse (empty, not YAML, YAML tags, not a mapping) -> scope (another group's keys)
  -> forbidden constructs (`_target_`, `${...}` interpolations) -> the group's typed schema
  (unknown keys, wrong types) -> ranges and relations -> allowlists (timm models and optimisers,
  albumentations names and parameters) -> what only the user may set and the loop's limits
  (`check_agent_limits`) -> pre-flight (`preflight.py`: parameters counted before any allocation,
  transforms, one forward/backward and optimiser step, latency, constraints).
Parsing is bounded: a reply over MAX_REPLY_CHARS, nesting over MAX_DEPTH and YAML anchors/aliases (the "billion
laughs" expansion) are refused before the YAML is built.
Nothing here imports, evaluates or instantiates anything named by the edit except through
timm's and albumentations' own registries.
"""
from dataclasses import fields
from typing import Any, Dict, Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from improve.config.fields import check_ranges, check_relations
from improve.config.names import UnknownName
from improve.config.schema import EDITABLE_GROUPS, GROUP_SCHEMAS, RefineConfig, TrainConfig
from improve.pipeline.augment import build_train_transform
from improve.pipeline.models import check_model_name
from improve.pipeline.optim import check_optimizer_name

MAX_REPLY_CHARS = 20_000  # far above any real group (a few hundred characters)
MAX_DEPTH = 32  # nesting of lists and mappings; a real group nests 4-6 deep (a OneOf's transforms' parameters)
OPENS = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken, yaml.BlockSequenceStartToken,
         yaml.BlockMappingStartToken)
CLOSES = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)
USER_ONLY = {"model": ("pretrained_file",)}  # paths on the user's disk: agents choose `pretrained` only

# top-level keys of train.yaml and config.yaml that no group edit may set
OTHER_KEYS = ({f.name for f in fields(TrainConfig)} | {f.name for f in fields(RefineConfig)} | {"hydra"}) \
    - set(EDITABLE_GROUPS)


class EditRejected(ValueError):
    """An edit failed validation. `kind` is a short machine-readable reason; str() is the message."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def load_plain_yaml(text: str, what: str, fix: str) -> Any:
    """Plain YAML values from untrusted text, bounded: at most MAX_REPLY_CHARS, no tags, no anchors or aliases
    (which expand without bound). `what` names the text and `fix` says what to do, in the EditRejected message."""
    if len(text) > MAX_REPLY_CHARS:
        raise EditRejected("too_long", f"{what} is {len(text):,} characters long (at most {MAX_REPLY_CHARS:,}); {fix}")
    try:
        depth = 0
        for token in yaml.scan(text):
            depth += isinstance(token, OPENS) - isinstance(token, CLOSES)
            if depth > MAX_DEPTH:  # refused as it opens: scanning and building deeper nesting costs quadratic time
                raise EditRejected("too_deep", f"{what} nests lists and mappings over {MAX_DEPTH} levels deep; "
                                               f"{fix}, of plain values")
            if isinstance(token, yaml.TagToken):
                tag = "".join(token.value)
                raise EditRejected("yaml_tag", f"YAML tags such as {tag!r} are not allowed; write plain values "
                                               f"(strings, numbers, booleans, lists, mappings)")
            if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
                raise EditRejected("yaml_alias", f"YAML anchors and aliases (&{token.value}, *{token.value}) are not "
                                                 f"allowed; write every value out")
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise EditRejected("not_yaml", f"{what} is not valid YAML ({' '.join(str(err).split())[:300]}); "
                                       f"{fix}") from None


def parse_edit(text: str, group: str) -> Dict[str, Any]:
    """Untrusted YAML text -> a plain mapping of `group`'s keys, or EditRejected."""
    if group not in EDITABLE_GROUPS:
        raise EditRejected("other_group", f"group {group!r} is not agent-editable; editable: {list(EDITABLE_GROUPS)}")
    if text is None or not str(text).strip():
        raise EditRejected("empty", f"the reply holds no YAML; return the whole '{group}' group as a YAML mapping")
    data = load_plain_yaml(str(text), "the reply", f"return only the '{group}' group as a YAML mapping")
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
        if group == "trainer":
            check_optimizer_name(values["optimizer"])
        if group == "augment":
            build_train_transform(values["train_transforms"])
    except UnknownName as err:
        raise EditRejected(f"unknown_{err.kind}", str(err)) from None
    except ValueError as err:
        raise EditRejected("bad_transform_params", str(err)) from None
    return values


def check_agent_limits(group: str, values: Dict[str, Any], current: Dict[str, Any],
                       max_epochs: Optional[int] = None) -> None:
    """What an agent may not do that a person may: set the user's own keys, exceed `loop.max_epochs`, or break a
    rule between keys that training would accept but that spoils it (min_lr over lr, a warm-up outlasting training).
    """
    try:
        check_relations(group, values)
    except ValueError as err:
        raise EditRejected("out_of_range", str(err)) from None
    for key in USER_ONLY.get(group, ()):
        if values.get(key) != current.get(key):
            raise EditRejected("user_setting", f"{group}.{key} is the user's setting ({current.get(key)!r}); leave it "
                                               f"as it is (choose {group}.pretrained true/false instead)")
    if group == "trainer" and max_epochs is not None and values["epochs"] > max_epochs:
        raise EditRejected("over_limit", f"trainer.epochs={values['epochs']} is over loop.max_epochs={max_epochs}; "
                                         f"use at most {max_epochs} epochs")
