"""The schema's per-field metadata put to use: range checks, the JSON schema the LLMs receive, field docs."""
import operator
from dataclasses import MISSING as DC_MISSING
from dataclasses import fields, is_dataclass
from typing import Any, Dict, List, Union, get_args, get_origin, get_type_hints

from omegaconf import MISSING, OmegaConf

from improve.config.schema import GROUP_SCHEMAS


def field_docs(schema: type) -> Dict[str, Dict[str, Any]]:
    """Field name -> {type, default, help, rules} for one group: docs and LLM prompts."""
    out = {}
    for f in fields(schema):
        default = None
        if f.default is not DC_MISSING and f.default is not MISSING:
            default = f.default
        elif f.default_factory is not DC_MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        meta = dict(f.metadata)
        out[f.name] = {"type": str(f.type), "default": default, "help": meta.pop("help", ""), **meta}
    return out


DERIVED_KEYS = {
    "num_classes": "num_classes comes from the dataset and cannot be set",
    "in_chans": "in_chans comes from the dataset (dataset.channels) and cannot be set",
}

_RULES = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "le": (operator.le, "<="), "lt": (operator.lt, "<")}


def check_ranges(group: str, values: Any) -> None:
    """Raise ValueError naming `group.key`, the value and the rule, for unknown keys and values out of range.

    `values` is a mapping (DictConfig or dict) of one group.
    """
    schema = GROUP_SCHEMAS[group]
    problems = []
    known = {f.name for f in fields(schema)}
    for key in values:
        if key not in known:
            why = DERIVED_KEYS.get(key, f"known keys are {sorted(known)}")
            problems.append(f"{group}.{key} is not a setting of '{group}'; {why}")
    for f in fields(schema):
        if is_dataclass(f.type) or f.name not in values:
            continue
        value = values[f.name]
        meta = f.metadata
        key = f"{group}.{f.name}"
        if "choices" in meta and value not in meta["choices"]:
            problems.append(f"{key}={value!r} is not one of {meta['choices']}")
            continue
        if isinstance(value, (list, tuple, dict)) or OmegaConf.is_config(value):
            problems += _size_problems(key, value, meta)
            continue
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        for rule, (test, word) in _RULES.items():
            if rule in meta and not test(value, meta[rule]):
                problems.append(f"{key}={value!r} must be {word} {meta[rule]} ({meta['help']})")
    if problems:
        raise ValueError("; ".join(problems))


def check_relations(group: str, values: Any) -> None:
    """Rules between keys of one group (min_lr below lr, ...): ValueError naming both keys and values."""
    problems = [msg for test in RELATIONS.get(group, ()) if (msg := test(values))]
    if problems:
        raise ValueError("; ".join(problems))


def _size_problems(key: str, value: Any, meta: Dict[str, Any]) -> List[str]:
    """`min_items`/`max_items` for lists and mappings; `items` rules for every number in a list."""
    problems = []
    if "min_items" in meta and len(value) < meta["min_items"]:
        problems.append(f"{key} has {len(value)} entries; it needs at least {meta['min_items']}")
    if "max_items" in meta and len(value) > meta["max_items"]:
        problems.append(f"{key} has {len(value)} entries; at most {meta['max_items']} are allowed")
    if isinstance(value, dict) or OmegaConf.is_dict(value):
        return problems
    for i, item in enumerate(value):
        for rule, bound in meta.get("items", {}).items():
            test, word = _RULES[rule]
            if isinstance(item, (int, float)) and not isinstance(item, bool) and not test(item, bound):
                problems.append(f"{key}[{i}]={item!r} must be {word} {bound} ({meta['help']})")
    return problems


def _below(group: str, low: str, high: str, why: str, or_equal: bool = False):
    """A rule: `group.low` must be smaller than `group.high` (or equal to it)."""
    def test(values) -> str:
        a, b = values.get(low), values.get(high)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not (a <= b if or_equal else a < b):
            return f"{group}.{low}={a} must be {'at most' if or_equal else 'below'} {group}.{high}={b} ({why})"
        return ""
    return test


def _same_length(values) -> str:
    mean, std = values.get("mean"), values.get("std")
    if mean is not None and std is not None and len(mean) != len(std):
        return f"augment.mean has {len(mean)} values and augment.std {len(std)}; give one per channel in both"
    return ""


RELATIONS = {  # rules between keys of one group, for agents' edits: test(values) -> the problem, or ""
    "trainer": [_below("trainer", "min_lr", "lr", "the cosine schedule's floor must lie under its peak"),
                _below("trainer", "warmup_epochs", "epochs", "warm-up cannot outlast training", or_equal=True),
                _below("trainer", "freeze_epochs", "epochs", "the whole network must train for at least one epoch")],
    "augment": [_same_length],
}


def _json_type(tp: Any) -> Dict[str, Any]:
    origin, args = get_origin(tp), get_args(tp)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        schema = _json_type(inner[0]) if len(inner) == 1 else {}
        if type(None) in args and "type" in schema:
            schema = {**schema, "type": [schema["type"], "null"]}
        return schema
    if origin in (list, List):
        return {"type": "array", "items": _json_type(args[0]) if args else {}}
    if origin in (dict, Dict):
        return {"type": "object"}
    return {int: {"type": "integer"}, float: {"type": "number"}, bool: {"type": "boolean"},
            str: {"type": "string"}}.get(tp, {})


def group_json_schema(group: str) -> Dict[str, Any]:
    """JSON schema of one group, from its dataclass: types, help as descriptions, ranges, choices.

    This is what the LLM APIs' structured-output mechanisms receive.
    """
    schema = GROUP_SCHEMAS[group]
    hints = get_type_hints(schema)
    props = {}
    for f in fields(schema):
        prop = {**_json_type(hints[f.name]), "description": f.metadata.get("help", "")}
        for rule, key in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"), ("lt", "exclusiveMaximum")):
            if rule in f.metadata:
                prop[key] = f.metadata[rule]
        if "choices" in f.metadata:
            prop["enum"] = list(f.metadata["choices"])
        is_object = prop.get("type") == "object" or "object" in (prop.get("type") or [])
        for rule, key in (("min_items", "minProperties" if is_object else "minItems"),
                          ("max_items", "maxProperties" if is_object else "maxItems")):
            if rule in f.metadata:
                prop[key] = f.metadata[rule]
        if "items" in f.metadata and isinstance(prop.get("items"), dict):
            prop["items"] = {**prop["items"], **{key: f.metadata["items"][rule] for rule, key in
                                                 (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"))
                                                 if rule in f.metadata["items"]}}
        props[f.name] = prop
    if group == "augment":
        props["train_transforms"]["items"] = {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "description": "albumentations transform class name"}},
            "additionalProperties": True}
    required = [f.name for f in fields(schema) if f.default is MISSING]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}
