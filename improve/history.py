"""What the agents see of past rounds: config diffs, learning-curve summaries, decisions.

Summaries are short and bounded (a few numbers per round), so the history stays small
however many rounds have run; the test split never appears here.
"""
import hashlib
import json
from collections import Counter
from typing import Any, Dict, List, Optional

OVERFIT_GAP = 0.05  # train accuracy above val accuracy by more than this: overfitting
UNDERFIT_TRAIN = 0.9  # train accuracy below this at the end: underfitting


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


def curve_summary(metrics: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A few numbers that say how training went, and a diagnosis: overfit, underfit, unstable, or ok."""
    if not metrics:
        return {"diagnosis": "failed"}
    epochs = metrics.get("epochs") or []
    if metrics.get("status") != "ok":
        unstable = metrics.get("error_type") == "NonFiniteLossError"
        return {"diagnosis": "unstable" if unstable else "failed", "epochs_run": len(epochs),
                "error": (metrics.get("error") or "")[:300]}
    best = max(epochs, key=lambda e: e["val_acc"] or 0)
    last = epochs[-1]
    gap = (best["train_acc"] or 0) - (best["val_acc"] or 0)
    peaked_late = best["epoch"] >= len(epochs) - 2 and len(epochs) > 2
    if (last["train_acc"] or 0) < UNDERFIT_TRAIN or (peaked_late and gap < OVERFIT_GAP):
        diagnosis = "underfit"
    elif gap > OVERFIT_GAP or (last["val_loss"] or 0) > 1.3 * (best["val_loss"] or 1e9):
        diagnosis = "overfit"
    else:
        diagnosis = "ok"
    return {
        "diagnosis": diagnosis, "best_val_acc": metrics["best_val_acc"], "best_epoch": best["epoch"],
        "epochs_run": len(epochs), "train_acc": round(last["train_acc"] or 0, 4),
        "train_val_gap": round(gap, 4), "val_acc_curve": [round(e["val_acc"] or 0, 3) for e in epochs][-8:],
        "seconds": round(metrics["timings"].get("fit_s") or 0, 1),
        "headroom": headroom(epochs),
        **({"lr_found": metrics["lr_find"]["lr"]} if metrics.get("lr_find") else {}),
    }


FAR_TRAIN = 0.8  # train accuracy below this: far from what the model can fit
RISING = 0.03  # validation gain per epoch over the last epochs above which training stopped too early
NEAR_ERROR = 0.02  # validation error at or below this: near any ceiling, whatever the curves say


def headroom(epochs: List[Dict[str, Any]]) -> str:
    """'far' from the ceiling when training accuracy is low or validation was still climbing fast at the end (a
    decisive step pays), else 'near' (small steps). A validation error of NEAR_ERROR or less is near: no ceiling
    is further away than that (augmentation can hold training accuracy low on an easy task)."""
    last = epochs[-1]
    if 1 - max(e["val_acc"] or 0 for e in epochs) <= NEAR_ERROR:
        return "near"
    if (last["train_acc"] or 0) < FAR_TRAIN:
        return "far"
    vals = [e["val_acc"] or 0 for e in epochs[-3:]]
    rising = (vals[-1] - vals[0]) / max(1, len(vals) - 1)
    return "far" if rising > RISING and vals[-1] >= max(vals) else "near"
