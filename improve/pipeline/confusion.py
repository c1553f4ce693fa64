"""What a run's validation errors are, summarised: per-class accuracy and the most confused class pairs.

Read from a round's `val_predictions.json` (the best checkpoint's prediction for every validation image; the
test split is never read). The summary is what the agents see of the errors beside the curves: bounded in size
whatever the number of classes or the length of their names, so it fits the history every prompt carries.
"""
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

WORST_CLASSES = 5  # classes with the lowest validation accuracy the summary names
TOP_PAIRS = 5  # most confused class pairs the summary names
NAME_CHARS = 40  # a class name is cut to this many characters
MIN_PAIR_ERRORS = 3  # a pair with fewer confusions than this is noise, not a pattern


@dataclass
class Pair:
    """Two classes mistaken for each other (both directions counted): how often, out of how many images."""

    a: str
    b: str
    a_as_b: int  # validation images of a predicted as b
    b_as_a: int
    images: int  # validation images of a and b together
    share_of_errors: float  # of all validation errors, the part this pair accounts for

    @property
    def rate(self) -> float:
        return (self.a_as_b + self.b_as_a) / max(1, self.images)


@dataclass
class ConfusionSummary:
    """The validation errors of one round, in a size the history can carry."""

    images: int
    errors: int
    worst: List[Dict[str, Any]] = field(default_factory=list)  # {"class", "acc", "images"}, lowest first
    pairs: List[Pair] = field(default_factory=list)  # most confused first
    top_pairs_share: float = 0.0  # of all errors, the part the named pairs account for (near 1: structured)
    predicted_share: Dict[str, float] = field(default_factory=dict)  # the most over-predicted classes: share / truth

    def journal(self) -> Dict[str, Any]:
        out = asdict(self)
        out["pairs"] = [{**asdict(p), "rate": round(p.rate, 4)} for p in self.pairs]
        return out

    @classmethod
    def of(cls, data: Dict[str, Any]) -> "ConfusionSummary":
        pairs = [Pair(**{k: v for k, v in p.items() if k != "rate"}) for p in data.get("pairs", [])]
        return cls(**{**{k: v for k, v in data.items() if k != "pairs"}, "pairs": pairs})


def _name(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 1] + "…"


def confusion_summary(predictions: Dict[str, Any]) -> Optional[ConfusionSummary]:
    """The summary of a `val_predictions.json` ({"classes", "y_true", "y_pred"}); None when it holds no images."""
    classes = [_name(str(c)) for c in predictions.get("classes") or []]
    y_true = np.asarray(predictions.get("y_true") or [], dtype=np.int64)
    y_pred = np.asarray(predictions.get("y_pred") or [], dtype=np.int64)
    if not len(y_true) or len(y_true) != len(y_pred) or not classes:
        return None
    k = len(classes)
    if y_true.max() >= k or y_pred.max() >= k or min(y_true.min(), y_pred.min()) < 0:
        raise ValueError(f"val_predictions.json: a label outside the {k} classes (true {int(y_true.max())}, "
                         f"predicted {int(y_pred.max())}); the file belongs to another dataset: delete it and "
                         f"retrain the round")
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    per_class = matrix.sum(1)
    errors = int(len(y_true) - np.trace(matrix))
    acc = np.divide(np.diag(matrix), per_class, out=np.zeros(k), where=per_class > 0)
    present = np.flatnonzero(per_class)
    worst = sorted(present, key=lambda c: (acc[c], c))[:WORST_CLASSES]
    both = matrix + matrix.T
    iu = np.triu_indices(k, 1)
    counts = both[iu]
    order = np.argsort(-counts, kind="stable")[:TOP_PAIRS]
    pairs = [Pair(classes[iu[0][i]], classes[iu[1][i]], int(matrix[iu[0][i], iu[1][i]]),
                  int(matrix[iu[1][i], iu[0][i]]), int(per_class[iu[0][i]] + per_class[iu[1][i]]),
                  round(float(counts[i]) / max(1, errors), 4))
             for i in order if counts[i] >= MIN_PAIR_ERRORS]
    predicted = matrix.sum(0) / np.maximum(per_class, 1)
    over = [c for c in np.argsort(-predicted, kind="stable")[:3] if predicted[c] > 1.5 and per_class[c]]
    return ConfusionSummary(
        images=int(len(y_true)), errors=errors,
        worst=[{"class": classes[c], "acc": round(float(acc[c]), 4), "images": int(per_class[c])} for c in worst],
        pairs=pairs, top_pairs_share=round(sum(p.a_as_b + p.b_as_a for p in pairs) / max(1, errors), 4),
        predicted_share={classes[c]: round(float(predicted[c]), 2) for c in over})
