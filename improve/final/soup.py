"""`loop.average_top_k`: at the end of a run, a greedy soup of the weights in the incumbent's basin.

Rounds that continue from the incumbent's weights (trainer.warm_start) form a lineage: each ends a cosine cycle
that started from its parent's weights, so they lie in one basin and their mean is a flatter solution that
usually generalises better than any one of them (stochastic weight averaging over the rounds' cycles), at one
model's inference cost. The ingredients are the incumbent's nearest ancestors and the reverted rounds that
continued from one of them (a further cycle with another tweak: their training is not wasted), all with the
incumbent's image size and nearly its validation accuracy (within WITHIN); each round's rounds/NN/init.json names
its parent and rounds/NN/init.ckpt holds the parent's weights. Starting from the incumbent, ingredients are added
best first, each only if the average's validation accuracy does not drop (the greedy soup of Wortsman et al.,
"Model soups", 2022), BatchNorm statistics recomputed on the training images each time
(torch.optim.swa_utils.update_bn). The soup is kept only when it beats the incumbent on the validation images
under the run's acceptance rule. Kept, it is the final model (best/best.ckpt; best/averaged/averaged.json names
the rounds): the test split, predict, export and an ensemble use it.
"""
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from omegaconf import OmegaConf

from improve.config.paths import round_checkpoint, round_dir
from improve.final.end_of_run import EndOfRun
from improve.pipeline.inference import Predictor, as_tensor, predict_split, split_images
from improve.refine.runner import Runner
from improve.refine.state import State
from improve.refine.warm_start import init_checkpoint, parent_round

BN_BATCH = 128  # training images per forward pass while BatchNorm statistics are recomputed
BN_IMAGES = 2048  # at most about this many training images (evenly spaced) recompute them: the statistics settle fast
FAILURES = (ValueError, RuntimeError, OSError)  # what a soup's try may raise (a bad file, out of memory)
TRIALS = 2  # the soup tries at most this many ingredients per member it may hold (each try is a BatchNorm pass)
WITHIN = 0.05  # an ancestor more than this below the incumbent's validation accuracy ends the lineage: averaging
# with a much weaker, earlier model drags the average down (SWA averages converged snapshots only)


def lineage(state: State, run_dir: Path, incumbent_checkpoint: Path, k: int) -> List[Tuple[int, Path]]:
    """(round, weights) of the incumbent and its nearest warm-start ancestors of the same image size and within
    WITHIN of its validation accuracy, at most k."""
    inc = state.incumbent
    size = inc["pipeline"]["augment"]["image_size"]
    members = [(inc["round"], Path(incumbent_checkpoint))]
    r = inc["round"]
    while len(members) < k:
        pipeline = state.proposals.get(r, {}).get("pipeline")
        if pipeline is None or init_checkpoint(run_dir, pipeline, round_dir(run_dir, r)) is None:
            break  # round r trained from scratch (or another candidate of its round warm-started)
        parent = parent_round(run_dir, r)
        pipeline = state.proposals.get(parent, {}).get("pipeline")
        if pipeline is None or pipeline["augment"]["image_size"] != size or parent in [m for m, _ in members]:
            break
        if (state.decisions.get(parent, {}).get("val_acc") or 0.0) < inc["val_acc"] - WITHIN:
            break
        members.append((parent, round_dir(run_dir, r) / "init.ckpt"))  # the parent's weights, as this round began
        r = parent
    return members


def offspring(state: State, run_dir: Path, members: List[Tuple[int, Path]]) -> List[Tuple[int, Path]]:
    """(round, weights) of the other finished rounds that continued from a member's weights (so with the incumbent's
    model, up to dropout) at the incumbent's image size, within WITHIN of its validation accuracy."""
    inc = state.incumbent
    parents, found = {r for r, _ in members}, []
    for r, d in state.decisions.items():
        pipeline = state.proposals.get(r, {}).get("pipeline")
        checkpoint = round_checkpoint(run_dir, r)
        if (r in parents or pipeline is None or not checkpoint.is_file()
                or init_checkpoint(run_dir, pipeline, round_dir(run_dir, r)) is None  # trained from scratch
                or (d.get("val_acc") or 0.0) < inc["val_acc"] - WITHIN
                or pipeline["augment"]["image_size"] != inc["pipeline"]["augment"]["image_size"]):
            continue
        if parent_round(run_dir, r) in parents:
            found.append((r, checkpoint))
    return found


def release(state: State, run_dir: Path) -> None:
    """Delete the checkpoints of reverted rounds that were kept only as soup ingredients."""
    for r, d in state.decisions.items():
        if d.get("decision") != "kept" and parent_round(run_dir, r) is not None:
            round_checkpoint(run_dir, r).unlink(missing_ok=True)


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
    images = images[::max(1, len(images) // BN_IMAGES)]
    batches = [as_tensor(images[i:i + BN_BATCH]) for i in range(0, len(images), BN_BATCH)]
    torch.optim.swa_utils.update_bn(batches, predictor.model)
    predictor.model.eval()


def average(members: List[Tuple[int, Path]], config, out: Path, train_images: np.ndarray) -> Path:
    """Write the members' averaged weights, BatchNorm refreshed on `train_images`, as a checkpoint of the incumbent's
    model."""
    checkpoint = torch.load(members[0][1], map_location="cpu", weights_only=True)
    checkpoint = {k: v for k, v in checkpoint.items() if k not in ("optimizer_states", "lr_schedulers", "callbacks",
                                                                   "loops")}
    checkpoint["state_dict"] = mean_state([c for _, c in members])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "best.ckpt"
    torch.save(checkpoint, path)
    predictor = Predictor(config, path)
    refresh_batchnorm(predictor, train_images)
    checkpoint["state_dict"] = predictor.classifier.state_dict()
    torch.save(checkpoint, path)
    return path


@dataclass
class Soup:
    """What a greedy soup made: its members (the incumbent first), its checkpoint (None: the incumbent alone), the
    validation predictions it scored, and why it stopped early (None: it tried every ingredient it could)."""

    members: List[Tuple[int, Path]]
    checkpoint: Optional[Path]
    scored: Dict[str, Any]
    stopped: Optional[str] = None


def soup(ingredients: List[Tuple[int, Path]], config, out: Path, start: Dict[str, Any], k: int,
         min_delta: float) -> Soup:
    """Greedy soup: from the incumbent (ingredients[0], validated as `start`), add each other ingredient in turn while
    the average's validation accuracy stays within min_delta of the best so far, at most k members. A try that fails
    (out of memory, a bad file) ends the soup with what joined before it; a failure before anything joined is
    raised."""
    made = Soup(ingredients[:1], None, start)
    train_images = split_images(config, "train")[0]  # every try recomputes BatchNorm on the same images
    for candidate in ingredients[1:]:
        if len(made.members) >= k:
            break
        try:
            trial = average([*made.members, candidate], config, out / "trial", train_images)
            scored = predict_split(config, trial, "val")
        except FAILURES as err:
            if made.checkpoint is None:
                raise
            made.stopped = f"round {candidate[0]} could not be tried ({_failure(err)}); the soup so far stands"
            break
        if scored["acc"] - made.scored["acc"] >= min_delta:
            made = Soup([*made.members, candidate], out / "best.ckpt", scored)
            trial.replace(made.checkpoint)
    shutil.rmtree(out / "trial", ignore_errors=True)
    return made


def _failure(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err)[:300]}"


def judge(state: State, run_dir: Path, incumbent_checkpoint: Path, rule: EndOfRun,
          runner: Runner) -> Optional[Dict[str, Any]]:
    """Make the incumbent's greedy soup (rule.average_top_k rounds at most) and judge it; the journal fields (with
    `checkpoint` when kept), or None when averaging is off or there is nothing to average (a run without
    warm-started rounds)."""
    out = Path(run_dir) / "best" / "averaged"
    shutil.rmtree(out, ignore_errors=True)  # a resumed run judges again from scratch
    if rule.average_top_k < 2 or state.incumbent is None or state.folds >= 2:
        return None
    members = lineage(state, run_dir, incumbent_checkpoint, rule.average_top_k)
    members += offspring(state, run_dir, members)
    if len(members) < 2:
        return None
    ingredients = [members[0]] + sorted(members[1:], key=lambda m: -(state.decisions.get(m[0], {}).get("val_acc")
                                                                      or 0.0))
    ingredients = ingredients[:TRIALS * rule.average_top_k]  # bounded work: each try recomputes BatchNorm
    tried = [r for r, _ in ingredients]
    config = OmegaConf.create(runner.config(state.incumbent["pipeline"], Path(run_dir) / "best"))
    single = predict_split(config, incumbent_checkpoint, "val")
    try:
        made = soup(ingredients, config, out, single, rule.average_top_k, rule.min_delta)
    except FAILURES as err:  # the run's own result stands: say why and go on without
        shutil.rmtree(out, ignore_errors=True)
        return {"decision": "skipped", "members": tried,
                "reason": f"{_failure(err)} (set loop.average_top_k=0 to skip averaging)"}
    verdict, fields = rule.against_single(made.scored, single)
    kept = verdict.decision == "kept" and made.checkpoint is not None  # no ingredient joined: the incumbent alone
    judged = {"decision": "kept" if kept else "reverted", "members": [r for r, _ in made.members], "tried": tried,
              **fields, **({"stopped": made.stopped} if made.stopped else {})}
    if kept:
        (out / "averaged.json").write_text(json.dumps(judged, indent=1))
        return {**judged, "checkpoint": str(made.checkpoint)}
    shutil.rmtree(out, ignore_errors=True)
    return judged
