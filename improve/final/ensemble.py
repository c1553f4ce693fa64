"""`loop.ensemble_top_k`: at the end of a run, average the predictions of its best finished rounds.

The members are the incumbent and the next best rounds by validation accuracy that finished with a checkpoint
and share its image size and channels (an ensemble is one model taking one input). The ensemble is kept only
when it beats the incumbent alone on the validation images under the run's acceptance rule (paired: the same
images, exact McNemar; `confirm` judges as `paired`, as an ensemble has no seed to retrain). A kept ensemble
lives in best/ensemble/ (each member's config.yaml and best.ckpt, and ensemble.json); predict and export use it.
"""
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from omegaconf import OmegaConf

from improve.config.paths import round_checkpoint, round_dir
from improve.files import atomic_copy
from improve.final.end_of_run import EndOfRun
from improve.pipeline.inference import EnsemblePredictor, Predictor, predict_split
from improve.refine.runner import Runner
from improve.refine.state import State


@dataclass
class Member:
    round: int
    config: Dict[str, Any]  # the round's complete train config
    checkpoint: Path
    val_acc: float


def pick_members(state: State, run_dir: Path, incumbent_checkpoint: Path, k: int, runner: Runner) -> List[Member]:
    """The incumbent, then the best other finished rounds with a checkpoint and the incumbent's geometry."""
    inc = state.incumbent
    first = Member(inc["round"], runner.config(inc["pipeline"], run_dir / "best"), incumbent_checkpoint,
                   inc["val_acc"])
    size = first.config["augment"]["image_size"]
    others = sorted((d for r, d in state.decisions.items() if r != inc["round"] and d.get("val_acc") is not None),
                    key=lambda d: (-d["val_acc"], d["round"]))
    members = [first]
    for d in others:
        if len(members) >= k:
            break
        r = d["round"]
        checkpoint = round_checkpoint(run_dir, r)
        pipeline = state.proposals.get(r, {}).get("pipeline")
        if pipeline and checkpoint.is_file() and pipeline["augment"]["image_size"] == size:
            members.append(Member(r, runner.config(pipeline, round_dir(run_dir, r)), checkpoint,
                                  d["val_acc"]))
    return members


def predictor(members: List[Member]) -> EnsemblePredictor:
    return EnsemblePredictor([Predictor(OmegaConf.create(m.config), m.checkpoint) for m in members])


def judge(state: State, run_dir: Path, incumbent_checkpoint: Path, rule: EndOfRun,
          runner: Runner) -> Optional[Dict[str, Any]]:
    """Build and judge the ensemble; write best/ensemble/ when it is kept. Returns the journal fields, or None when
    ensembling is off."""
    out = run_dir / "best" / "ensemble"
    shutil.rmtree(out, ignore_errors=True)  # a resumed run judges again from scratch
    if rule.ensemble_top_k < 2 or state.incumbent is None:
        return None
    if state.folds >= 2:
        return {"decision": "skipped", "reason": "loop.folds scores rounds by cross-validation: no single "
                                                 "validation split to judge an ensemble on"}
    members = pick_members(state, run_dir, incumbent_checkpoint, rule.ensemble_top_k, runner)
    if len(members) < 2:
        return {"decision": "skipped", "members": [m.round for m in members],
                "reason": "no other finished round with the incumbent's image size to ensemble with"}
    config = OmegaConf.create(members[0].config)
    single = predict_split(config, incumbent_checkpoint, "val")
    ensemble = predict_split(config, None, "val", predictor(members))
    verdict, fields = rule.against_single(ensemble, single)
    if verdict.decision == "kept":
        for m in members:
            folder = out / f"{m.round:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "config.yaml").write_text(yaml.safe_dump({**m.config, "test": True}, sort_keys=False))
            atomic_copy(m.checkpoint, folder / "best.ckpt")
        (out / "ensemble.json").write_text(json.dumps({"members": [m.round for m in members],
                                                       "val_acc": ensemble["acc"]}, indent=1))
    return {"decision": verdict.decision, "members": [m.round for m in members],
            "member_val_acc": [m.val_acc for m in members], **fields}
