"""What the agents see of past rounds: config diffs, learning-curve summaries, decisions.

Summaries are short and bounded (a few numbers per round), so the history stays small
however many rounds have run; the test split never appears here.
"""
import hashlib
import json
from collections import Counter
from typing import Any, Dict, List


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def fingerprint(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()[:16]


def _short(value: Any) -> str:
    if isinstance(value, dict) and "name" in value:
        params = ", ".join(f"{k}={v}" for k, v in value.items() if k != "name")
        return f"{value['name']}({params})"
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def diff(old: Dict[str, Any], new: Dict[str, Any], prefix: str = "") -> List[str]:
    """Human-readable changes between two group configs, e.g. ['lr 0.003 -> 0.0015', '+CoarseDropout']."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "train_transforms":
            names_a = Counter(t.get("name") for t in a or [])
            names_b = Counter(t.get("name") for t in b or [])
            added, removed = list((names_b - names_a).elements()), list((names_a - names_b).elements())
            changes += [f"+{n}" for n in added] + [f"-{n}" for n in removed]
            if not added and not removed:
                changed = [_short(t) for t in b if t not in (a or [])]
                changes.append(f"transforms: {', '.join(changed) or 'reordered'}")
        elif isinstance(a, dict) and isinstance(b, dict):
            changes += diff(a, b, f"{prefix}{key}.")
        else:
            changes.append(f"{prefix}{key} {_short(a)} -> {_short(b)}")
    return changes


def pipeline_diff(old: Dict[str, Dict], new: Dict[str, Dict]) -> Dict[str, List[str]]:
    return {g: d for g in new if (d := diff(old.get(g, {}), new[g]))}
