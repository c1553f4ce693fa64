"""`loop.average_top_k`: at the end of a run, average the weights of the incumbent and its warm-start ancestors.

Rounds that continue from the incumbent's weights (trainer.warm_start) form a lineage: each ends a cosine cycle
that started from its parent's weights, so the members lie in one basin and their mean is a flatter solution that
usually generalises better than any one of them (stochastic weight averaging over the rounds' cycles), at one
model's inference cost. The members are the incumbent and its nearest ancestors with its image size and nearly its
validation accuracy (within WITHIN): each round's rounds/NN/init.json names its parent and rounds/NN/init.ckpt holds
the parent's weights. BatchNorm statistics are then recomputed on the training images
(torch.optim.swa_utils.update_bn), and the averaged weights are kept only when they beat the incumbent on the
validation images under the run's acceptance rule. Kept, they are the final model (best/best.ckpt;
best/averaged/averaged.json names the rounds): the test split, predict, export and an ensemble use them.
"""
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from omegaconf import OmegaConf

from .ensemble import EnsembleRule, against_single
from .inference import Predictor, as_tensor, predict_split, split_images
from .journal import State
from .warm_start import init_checkpoint

BN_BATCH = 128  # training images per forward pass while BatchNorm statistics are recomputed
WITHIN = 0.05  # an ancestor more than this below the incumbent's validation accuracy ends the lineage: averaging
# with a much weaker, earlier model drags the average down (SWA averages converged snapshots only)


def lineage(state: State, run_dir: Path, incumbent_checkpoint: Path, k: int) -> List[Tuple[int, Path]]:
    """(round, weights) of the incumbent and its nearest warm-start ancestors of the same image size and within
    WITHIN of its validation accuracy, at most k."""
    inc = state.incumbent
    rounds = Path(run_dir) / "rounds"
    size = inc["pipeline"]["augment"]["image_size"]
    members = [(inc["round"], Path(incumbent_checkpoint))]
    r = inc["round"]
    while len(members) < k:
        pipeline = state.proposals.get(r, {}).get("pipeline")
        if pipeline is None or init_checkpoint(run_dir, pipeline, rounds / f"{r:02d}") is None:
            break  # round r trained from scratch (or another candidate of its round warm-started)
        parent = json.loads((rounds / f"{r:02d}" / "init.json").read_text())["from_round"]
        pipeline = state.proposals.get(parent, {}).get("pipeline")
        if pipeline is None or pipeline["augment"]["image_size"] != size or parent in [m for m, _ in members]:
            break
        if (state.decisions.get(parent, {}).get("val_acc") or 0.0) < inc["val_acc"] - WITHIN:
            break
        members.append((parent, rounds / f"{r:02d}" / "init.ckpt"))  # the parent's weights, as this round began
        r = parent
    return members


def mean_state(checkpoints: List[Path]) -> Dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' floating-point weights; integer buffers (BatchNorm's batch counts)
    come from the first."""
    states = [torch.load(c, map_location="cpu", weights_only=True)["state_dict"] for c in checkpoints]
    first = states[0]
    if any(s.keys() != first.keys() for s in states[1:]):
        raise ValueError(f"checkpoints {[str(c) for c in checkpoints]} hold different weights; only one model's "
                         f"rounds can be averaged (set loop.average_top_k=0)")
    return {k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v
            for k, v in first.items()}


def refresh_batchnorm(predictor: Predictor, images: np.ndarray) -> None:
    """Recompute the network's BatchNorm running statistics on `images` (uint8 N,H,W,C), as SWA does."""
    batches = [as_tensor(images[i:i + BN_BATCH]) for i in range(0, len(images), BN_BATCH)]
    torch.optim.swa_utils.update_bn(batches, predictor.model)
    predictor.model.eval()


def average(members: List[Tuple[int, Path]], config, out: Path) -> Path:
    """Write the members' averaged weights, BatchNorm refreshed, as a checkpoint of the incumbent's model."""
    checkpoint = torch.load(members[0][1], map_location="cpu", weights_only=True)
    checkpoint = {k: v for k, v in checkpoint.items() if k not in ("optimizer_states", "lr_schedulers", "callbacks",
                                                                   "loops")}
    checkpoint["state_dict"] = mean_state([c for _, c in members])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "best.ckpt"
    torch.save(checkpoint, path)
    predictor = Predictor(config, path)
    refresh_batchnorm(predictor, split_images(config, "train")[0])
    checkpoint["state_dict"] = predictor.classifier.state_dict()
    torch.save(checkpoint, path)
    return path


def judge(state: State, run_dir: Path, incumbent_checkpoint: Path, rule: EnsembleRule,
          train_config: Callable[[Dict[str, Dict], Path], Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """Average the incumbent's lineage (rule.average_top_k rounds at most) and judge it; the journal fields (with
    `checkpoint` when kept), or None when averaging is off or there is no lineage to average (a run without
    warm-started rounds)."""
    out = Path(run_dir) / "best" / "averaged"
    shutil.rmtree(out, ignore_errors=True)  # a resumed run judges again from scratch
    if rule.average_top_k < 2 or state.incumbent is None or state.folds >= 2:
        return None
    members = lineage(state, run_dir, incumbent_checkpoint, rule.average_top_k)
    if len(members) < 2:
        return None
    config = OmegaConf.create(train_config(state.incumbent["pipeline"], Path(run_dir) / "best"))
    try:
        path = average(members, config, out)
        averaged = predict_split(config, path, "val")
    except (ValueError, RuntimeError, OSError) as err:  # the run's own result stands: say why and go on without
        shutil.rmtree(out, ignore_errors=True)
        return {"decision": "skipped", "members": [r for r, _ in members],
                "reason": f"{type(err).__name__}: {str(err)[:300]} (set loop.average_top_k=0 to skip averaging)"}
    verdict, fields = against_single(averaged, predict_split(config, incumbent_checkpoint, "val"), rule)
    judged = {"decision": verdict.decision, "members": [r for r, _ in members], **fields}
    if verdict.decision == "kept":
        (out / "averaged.json").write_text(json.dumps(judged, indent=1))
        return {**judged, "checkpoint": str(path)}
    shutil.rmtree(out, ignore_errors=True)
    return judged
