"""K-fold cross-validation of one pipeline, for datasets too small for one validation split to judge.

`loop.folds=K` trains every round (and every confirmation run) K times, once per stratified fold of
train+validation (`dataset.folds`, `dataset.fold`), and scores it on the pooled out-of-fold
predictions: every train+validation image is predicted once, by the model that did not see it. A
round's `val_predictions.json` then covers all those images, so the paired decision rules compare
candidate and incumbent on K times more images than one split gives. The round's checkpoint (what
a kept round passes on and what is tested and exported at the end) is fold 0's model; its learning
curves are fold 0's. Folds 1..K-1 live in `rounds/NN/foldI/` and train first; a finished fold is
not trained again when an interrupted round is resumed.
"""
import json
from pathlib import Path
from typing import Any, Callable, Dict, List

from improve.files import write_json
from improve.pipeline.process import failed

Run = Callable[[Dict[str, Any], Path, set], Dict[str, Any]]  # run(config, output_dir, keep) -> metrics


def fold_config(config: Dict[str, Any], folds: int, fold: int, output_dir: Path) -> Dict[str, Any]:
    """The train config whose validation split is fold `fold` of `folds`, writing into `output_dir`."""
    logger = config.get("logger") or {}
    if fold and logger.get("run_name"):
        logger = {**logger, "run_name": f"{logger['run_name']}_fold{fold}"}
    return {**config, "dataset": {**config["dataset"], "folds": folds, "fold": fold},
            "paths": {**config["paths"], "output_dir": str(output_dir)}, "logger": logger}


def _finished(rd: Path) -> bool:
    metrics = rd / "metrics.json"
    return (rd / "val_predictions.json").is_file() and metrics.is_file() and \
        json.loads(metrics.read_text()).get("status") == "ok"


def pool_predictions(parts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One prediction per image from the folds' validation predictions, in image order."""
    rows = sorted((i, t, p) for part in parts for i, t, p in zip(part["index"], part["y_true"], part["y_pred"]))
    index = [i for i, _, _ in rows]
    if len(set(index)) != len(index):
        raise ValueError("the folds' validation splits overlap: they must partition the images")
    y_true, y_pred = [t for _, t, _ in rows], [p for _, _, p in rows]
    return {"classes": parts[0]["classes"], "index": index, "y_true": y_true, "y_pred": y_pred,
            "acc": sum(t == p for t, p in zip(y_true, y_pred)) / len(rows) if rows else None, "folds": len(parts)}


def train_folds(config: Dict[str, Any], rd: Path, folds: int, run: Run, keep: set = frozenset()) -> Dict[str, Any]:
    """Train `config` on each of `folds` folds; fold 0 in `rd`, the others in `rd/foldI`. Returns fold 0's metrics
    with `best_val_acc` the pooled out-of-fold accuracy and `cv` the per-fold scores; rd/val_predictions.json holds
    the pooled predictions. Any failed fold fails the round, naming the fold."""
    others = [rd / f"fold{i}" for i in range(1, folds)]
    for i, fd in enumerate(others, start=1):
        if not _finished(fd):
            metrics = run(fold_config(config, folds, i, fd), fd, set())
            if metrics.get("status") != "ok":
                return failed(rd, f"fold {i} of {folds}: {metrics.get('error')}", metrics.get("error_type", "Crash"))
    metrics = run(fold_config(config, folds, 0, rd), rd, set(keep) | {fd.name for fd in others})
    if metrics.get("status") != "ok":
        return metrics
    parts = [json.loads((d / "val_predictions.json").read_text()) for d in [rd, *others]]
    pooled = pool_predictions(parts)
    write_json(rd / "fold0_val_predictions.json", parts[0])
    write_json(rd / "val_predictions.json", pooled)
    fold_acc = [json.loads((d / "metrics.json").read_text())["best_val_acc"] for d in [rd, *others]]
    metrics.update(best_val_acc=round(pooled["acc"], 6),
                   cv={"folds": folds, "fold_val_acc": fold_acc, "images": len(pooled["index"])})
    write_json(rd / "metrics.json", metrics)
    return metrics
