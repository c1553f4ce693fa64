"""The schema's per-field metadata put to use: range checks, the JSON schema the LLMs receive, field docs."""
import operator
from dataclasses import MISSING as DC_MISSING
from dataclasses import fields, is_dataclass
from typing import Any, Dict, List, Union, get_args, get_origin, get_type_hints

from omegaconf import MISSING

from .schema import GROUP_SCHEMAS


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
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        for rule, (test, word) in _RULES.items():
            if rule in meta and not test(value, meta[rule]):
                problems.append(f"{key}={value!r} must be {word} {meta[rule]} ({meta['help']})")
    if problems:
        raise ValueError("; ".join(problems))


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
        props[f.name] = prop
    if group == "augment":
        props["train_transforms"]["items"] = {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "description": "albumentations transform class name"}},
            "additionalProperties": True}
    required = [f.name for f in fields(schema) if f.default is MISSING]
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}
