"""The report's pictures: validation accuracy per round, the best round's curves, the confusion matrix."""
from pathlib import Path
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

GROUP_COLOURS = {"augment": "tab:blue", "model": "tab:orange", "trainer": "tab:green"}


def rounds_plot(decisions: List[Dict], path: Path, noise_floor: Optional[Dict] = None) -> Path:
    """Incumbent as a step line; each candidate a point coloured by group, hollow when reverted, with the 95% interval
    of its paired difference to the incumbent as an error bar; the noise floor as a band around round 0's score."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    first = next((d for d in decisions if d["round"] == 0 and d["val_acc"] is not None), None)
    if noise_floor and first:
        low, high = noise_floor["delta_interval"]
        ax.axhspan(first["val_acc"] + low, first["val_acc"] + high, color="gray", alpha=0.15,
                   label="noise floor (round 0, another seed)")
    best, xs, ys = None, [], []
    for d in sorted(decisions, key=lambda d: d["round"]):
        if d["decision"] == "kept":
            best = d["val_acc"]
        if best is not None:
            xs.append(d["round"])
            ys.append(best)
        if d["val_acc"] is None:
            continue
        colour = GROUP_COLOURS.get(d["group"], "tab:gray")
        hollow = d["decision"] != "kept"
        if d.get("delta_interval") and d.get("incumbent_val") is not None:
            low, high = (d["incumbent_val"] + x for x in d["delta_interval"])
            ax.vlines(d["round"], low, high, colors=colour, alpha=0.6, lw=1.2, zorder=2)
        ax.scatter([d["round"]], [d["val_acc"]], s=50, edgecolors=colour, facecolors="none" if hollow else colour,
                   linewidths=1.5, zorder=3)
    if xs:
        ax.step(xs, ys, where="post", color="black", lw=1.5, label="incumbent")
    for group, colour in GROUP_COLOURS.items():
        ax.scatter([], [], color=colour, label=group)
    ax.scatter([], [], facecolors="none", edgecolors="gray", label="reverted (hollow)")
    if any(d.get("delta_interval") for d in decisions):
        ax.plot([], [], color="gray", lw=1.2, label="95% interval, paired on the same images")
    ax.set_xlabel("round")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def curves_plot(metrics: Dict, title: str, path: Path) -> Optional[Path]:
    epochs = metrics.get("epochs") or []
    if not epochs:
        return None
    e = [x["epoch"] for x in epochs]
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=110)
    for key, ax in (("loss", loss), ("acc", acc)):
        ax.plot(e, [x[f"train_{key}"] for x in epochs], marker="o", label=f"train {key}")
        ax.plot(e, [x[f"val_{key}"] for x in epochs], marker="o", label=f"val {key}")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def confusion(y_true: List[int], y_pred: List[int], n: int) -> np.ndarray:
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return m


def confusion_plot(matrix: np.ndarray, classes: List[str], path: Path) -> Path:
    n = len(classes)
    size = min(12, 3 + 0.4 * n)
    fig, ax = plt.subplots(figsize=(size, size), dpi=110)
    ax.imshow(matrix, cmap="Blues")
    if n <= 30:
        ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def pairs_plot(rows: List[str], pairs: List[str], rates: List[List[float]], path: Path) -> Path:
    """A heatmap: the incumbent after each round (rows) against the most confused class pairs (columns)."""
    m = np.asarray(rates, float)
    fig, ax = plt.subplots(figsize=(min(12, 3 + 0.7 * len(pairs)), min(10, 1.5 + 0.35 * len(rows))), dpi=110)
    ax.imshow(m, cmap="Reds", vmin=0, vmax=max(0.5, float(m.max())), aspect="auto")
    ax.set_xticks(range(len(pairs)), pairs, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6)
    ax.set_title("confused pairs: share of their validation images mistaken for each other", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
