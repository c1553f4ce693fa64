"""The offline expert: plays every role with an ML engineer's rules of thumb. Deterministic for a seed.

What the errors say comes first: a structural finding (`refine/diagnoses.py`: mirror-image pairs under a
flip, colour-only pairs under a colour change, detail lost at the image size, rare classes unbalanced) is
acted on before anything the curves suggest, once. When three rounds in a row were not kept and the errors name
no cause, it ablates: the incumbent with one augmentation removed (a losing one is pruned early). Then it reads the incumbent's learning curves: overfitting (train >> val) -> stronger augmentation,
MixUp/CutMix, dropout/drop-path, weight decay, label smoothing; underfitting -> more capacity,
more epochs, a higher learning rate; unstable or NaN -> lower learning rate, clipping, warm-up.
Far from the ceiling its steps are decisive and coherent (`moves.py`); a group whose change was
just kept gets the next round too, and one that failed twice in a row yields; while continuing
training from the incumbent's weights keeps gaining (CONTINUE_GAIN), it continues again. It plans
within the budget: no move whose round would outlast the time left or the round timeout, and the
cheapest moves first when little is left. It never proposes a group config already tried.
"""
import copy
import random
from typing import Any, Dict, List, Optional, Tuple

import yaml

from improve.agents.base import DIAGNOSES, Choice, Context, Edit, FirstPipeline
from improve.agents.moves import (
    MOVES,
    PRETRAINED_LADDER,
    SCRATCH_LADDER,
    Move,
    fixes,
    flips_allowed,
    relative_cost,
    rotation_allowed,
    side,
)
from improve.config.diff import canonical

STALE_AFTER = 2  # reverted changes in a row after which a group has stopped paying off
ABLATE_AFTER = 3  # rounds in a row not kept, whatever their group, after which an augmentation is ablated
GROUP_ORDER = {  # which group to try first, by diagnosis of the incumbent's curves
    "overfit": ["augment", "model", "trainer"],
    "underfit": ["trainer", "model", "augment"],
    "unstable": ["trainer", "model", "augment"],
    "ok": ["augment", "trainer", "model"],
}
CONTINUE_GAIN = 0.02  # a kept round that continued training and gained this much: continue again
TIGHT = 3.0  # fewer incumbent-rounds of time (or runs) left than this: the cheapest moves first


def _fit_epochs(trainer: Dict[str, Any], max_epochs: int) -> None:
    """At most `max_epochs`, and a warm-up no longer than training."""
    trainer["epochs"] = min(trainer["epochs"], max_epochs)
    trainer["warmup_epochs"] = min(trainer["warmup_epochs"], trainer["epochs"])


def _dump(values: Dict[str, Any]) -> str:
    return yaml.safe_dump(values, sort_keys=False, default_flow_style=None)


def _round_limit(ctx: Context) -> float:
    """Seconds a round may take: the round timeout, and under a time budget the time left."""
    return min(ctx.round_timeout, ctx.seconds_left) if ctx.seconds_left is not None else ctx.round_timeout


class HeuristicAgent:
    """Offline expert agent (`llm=heuristic`)."""

    name = "heuristic"
    levers = True  # False: no EMA, TTA or RandAugment (the levers benchmark's control arm)

    def __init__(self, levers: bool = True):
        self.levers = levers

    def bind(self, run_dir, journal, notify=None) -> None:
        """The offline expert keeps no audit files and makes no calls to account for."""

    # ------------------------------------------------------------------ architect
    def architect(self, ctx: Context, defaults: Dict[str, Dict[str, Any]],
                  error: Optional[str] = None) -> FirstPipeline:
        p = ctx.profile
        pipeline = {g: self._initial(g, p, copy.deepcopy(defaults[g]), coordinated=True) for g in defaults}
        _fit_epochs(pipeline["trainer"], ctx.max_epochs)
        size, model = pipeline["augment"]["image_size"], pipeline["model"]["name"]
        why = (f"{p['train_images']} training images of about {side(p)}px, {p['channels']} channel(s): "
               f"{model}{' (pretrained)' if pipeline['model']['pretrained'] else ' from scratch'} at {size}px; "
               f"flips {'allowed' if flips_allowed(p) else 'excluded (they would change the label)'}; "
               f"{pipeline['trainer']['epochs']} epochs of {pipeline['trainer']['optimizer']} with a cosine schedule.")
        return FirstPipeline(pipeline={g: _dump(v) for g, v in pipeline.items()}, rationale=why)

    def init_group(self, group: str, ctx: Context, current: Dict[str, Any]) -> Edit:
        values = self._initial(group, ctx.profile, copy.deepcopy(current), coordinated=False)
        if group == "trainer":
            _fit_epochs(values, ctx.max_epochs)
        return Edit(yaml=_dump(values), rationale=f"initial {group} from the dataset profile alone")

    def _initial(self, group: str, p: Dict[str, Any], v: Dict[str, Any], coordinated: bool) -> Dict[str, Any]:
        width, rgb = side(p), p["channels"] == 3
        pretrained = p.get("pretrained_reachable") and width > 96 and rgb
        size = 32 if width <= 40 else 64 if width <= 96 else (224 if pretrained else 128)
        if group == "augment":
            v["image_size"] = size
            transforms = []
            if size >= 64 and rgb:
                transforms.append({"name": "RandomResizedCrop", "size": [size, size], "scale": [0.5, 1.0], "p": 1.0})
            transforms.append({"name": "Affine", "scale": [0.9, 1.1], "translate_percent": [-0.06, 0.06],
                               "rotate": [-10, 10] if rotation_allowed(p) else 0, "p": 0.5})
            if flips_allowed(p):
                transforms.append({"name": "HorizontalFlip", "p": 0.5})
            v["train_transforms"] = transforms
            if not pretrained:
                v["mean"], v["std"] = p["pixel_mean"], [max(s, 0.05) for s in p["pixel_std"]]
        elif group == "model":
            v.update(pretrained=bool(pretrained), drop_rate=0.1, drop_path_rate=0.0, pretrained_file=None)
            v["name"] = "convnext_nano" if pretrained else ("resnet10t" if width <= 40 else "resnet18d")
            if pretrained:
                v["drop_path_rate"] = 0.1
        elif group == "trainer":
            n = p["train_images"]
            v.update(epochs=12 if n <= 3000 else 8 if n <= 20000 else 5, optimizer="adamw",
                     lr=2e-4 if (pretrained and coordinated) else 3e-3, weight_decay=0.05, scheduler="cosine",
                     warmup_epochs=1.0, label_smoothing=0.0, grad_clip=0.0, early_stopping=0)
            v["batch_size"] = 32 if size >= 128 else 64
            v["balance"] = "sampler" if p.get("imbalance_ratio", 1.0) > 3 else v.get("balance", "none")  # skewed data
            if pretrained and coordinated:  # fine-tuning: the head first, lower layers slower
                v.update(freeze_epochs=min(1, v["epochs"] - 1), layer_decay=0.75)
        return v

    # ------------------------------------------------------------------ analyst
    def analyst(self, ctx: Context) -> Choice:
        s = ctx.incumbent.get("summary", {})
        diagnosis = s.get("diagnosis", "ok")
        last = ctx.rounds[-1] if ctx.rounds else None
        if last and last.get("summary", {}).get("diagnosis") == "unstable":
            return Choice("trainer", f"round {last['round']} diverged (NaN/inf loss): lower the learning rate, "
                                     f"clip gradients, warm up longer", "unstable")
        fix = self._finding(ctx)
        if fix is not None:
            return Choice(fix["group"], f"the errors say {fix['rule']}: {fix['edit']} ({fix['evidence'][:240]})",
                          diagnosis if diagnosis in DIAGNOSES else "ok", finding=fix["rule"])
        ablate = self._ablation(ctx)
        if ablate is not None:
            return Choice("augment", f"ablation: the incumbent without {ablate}: the last {ABLATE_AFTER} rounds were "
                                     f"not kept and the errors name no cause, so find out whether this augmentation "
                                     f"holds the pipeline back (a round behind the incumbent is pruned early: cheap)",
                          diagnosis if diagnosis in DIAGNOSES else "ok", ablate=ablate)
        warm = ctx.incumbent.get("pipeline", {}).get("trainer", {}).get("warm_start")
        if (warm and last and last.get("decision") == "kept" and last.get("group") == "trainer"
                and (last.get("delta") or 0.0) >= CONTINUE_GAIN):
            return Choice("trainer", f"round {last['round']} continued training and gained {last['delta']:+.3f}: "
                                     f"more training still pays, continue again", "underfit")
        order = list(GROUP_ORDER.get(diagnosis, GROUP_ORDER["ok"]))
        far = s.get("headroom") == "far"
        if warm:
            order.remove("model")  # settled: a new model restarts from scratch and cannot catch up
            order.append("model")
        stale = {g: self._reverts_in_a_row(ctx, g) for g in order}
        fresh = [g for g in order if stale[g] < STALE_AFTER]
        # while underfitting, push what just worked; once the curves say overfit or ok, their order decides again
        paid = (diagnosis == "underfit" and last and last.get("decision") == "kept" and last.get("group") in fresh
                and last["round"] > 0)
        group = last["group"] if paid else fresh[0] if fresh else min(order, key=lambda g: (stale[g], order.index(g)))
        why = {
            "overfit": f"the incumbent overfits (train-val gap {s.get('train_val_gap')}): regularise",
            "underfit": f"the incumbent underfits (train acc {s.get('train_acc')}, val still rising): "
                        + ("far from the ceiling, take a decisive step" if far else "add capacity or training"),
            "ok": "the incumbent fits well: look for a better optimum",
        }.get(diagnosis, "improve validation accuracy")
        if paid:
            why += f"; round {last['round']}'s {group} change paid off, so {group} again"
        elif group != order[0]:
            why += f"; {order[0]} stopped paying off ({stale[order[0]]} reverted changes in a row)"
        return Choice(group, why, diagnosis if diagnosis in DIAGNOSES else "ok")

    @staticmethod
    def _finding(ctx: Context) -> Optional[Dict[str, Any]]:
        """The structural finding to act on first: actionable, and not already tried and reverted (a fix gets one
        round; the errors found a cause, they do not promise the fix wins)."""
        tried = {(r.get("rationale") or "").split(":")[0] for r in ctx.rounds if r.get("decision") != "kept"}
        for f in sorted(ctx.findings, key=lambda f: -(f.get("share_of_errors") or 0.0)):
            if f.get("actionable") and f["rule"] not in tried:
                return f
        return None

    @staticmethod
    def _ablation(ctx: Context) -> Optional[str]:
        """The augmentation to ablate when the loop is stuck: the last ABLATE_AFTER rounds after round 0 were not kept,
        no structural finding is left to act on, and the incumbent has a transform not ablated yet (MLE-STAR's
        ablation, one component of ours at a time); None otherwise."""
        recent = [r for r in ctx.rounds if r.get("round")][-ABLATE_AFTER:]
        if len(recent) < ABLATE_AFTER or any(r.get("decision") == "kept" for r in recent):
            return None
        if any(f.get("actionable") for f in ctx.findings):
            return None
        done = {(r.get("rationale") or "").split("ablation: without ", 1)[-1].split(" ")[0]
                for r in ctx.rounds if (r.get("rationale") or "").startswith("ablation: without ")}
        names = [t["name"] for t in ctx.incumbent.get("pipeline", {}).get("augment", {}).get("train_transforms", [])]
        return next((n for n in names if n not in done), None)

    @staticmethod
    def _reverts_in_a_row(ctx: Context, group: str) -> int:
        count = 0
        for r in reversed(ctx.rounds):
            if group not in (r.get("group") or "").split("+"):
                continue
            if r.get("decision") == "kept":
                break
            count += 1
        return count

    # ------------------------------------------------------------------ engineer
    def engineer(self, choice: Choice, ctx: Context, current: Dict[str, Any], tried: List[Dict[str, Any]],
                 error: Optional[str] = None) -> Edit:
        group, diagnosis = choice.group, choice.diagnosis
        seen = {canonical(t) for t in tried} | {canonical(current)}
        fits = self._budget(ctx, group, current)
        if choice.ablate and group == "augment":
            ablated = {**copy.deepcopy(current), "train_transforms": [t for t in current["train_transforms"]
                                                                      if t["name"] != choice.ablate]}
            if canonical(ablated) not in seen and fits(ablated):
                return Edit(yaml=_dump(ablated), rationale=f"ablation: without {choice.ablate} (the incumbent "
                                                           f"otherwise unchanged): kept if it held the pipeline back")
        for move in self.moves(ctx, group, current, diagnosis):
            candidate = move.make(copy.deepcopy(current))
            if canonical(candidate) not in seen and fits(candidate):
                return Edit(yaml=_dump(candidate), rationale=move.why)
        rng = random.Random(f"{ctx.seed}-{ctx.round}-{group}")
        for _ in range(100):
            candidate, why = self._perturb(group, copy.deepcopy(current), rng, ctx)
            if canonical(candidate) not in seen and fits(candidate):
                return Edit(yaml=_dump(candidate), rationale=why)
        return Edit(yaml=_dump(current), rationale="no untried change left for this group")

    def moves(self, ctx: Context, group: str, current: Dict[str, Any], diagnosis: str) -> List[Move]:
        """The group's moves, best first; when little budget is left, the cheapest first (gain per second)."""
        moves = MOVES[group](ctx, current, diagnosis, self.levers)
        seconds = ctx.incumbent.get("summary", {}).get("seconds") or 0.0
        tight = (ctx.runs_left is not None and ctx.runs_left < TIGHT) or (
            ctx.seconds_left is not None and seconds and ctx.seconds_left < TIGHT * seconds)
        if tight:  # what the errors call for stays first: it fixes a cause, whatever it costs (if it fits)
            fix = {m.why for m in fixes(ctx, group)}
            moves.sort(key=lambda m: (m.why not in fix, relative_cost(group, current, m.make(copy.deepcopy(current)))))
        return moves

    @staticmethod
    def _budget(ctx: Context, group: str, current: Dict[str, Any]):
        """Whether a group config's round fits in the time a round may take (estimated from the incumbent's)."""
        seconds = ctx.incumbent.get("summary", {}).get("seconds") or 0.0
        limit = _round_limit(ctx)
        return lambda values: not seconds or seconds * relative_cost(group, current, values) <= limit

    @staticmethod
    def _perturb(group: str, v: Dict[str, Any], rng: random.Random, ctx: Context) -> Tuple[Dict[str, Any], str]:
        """A random step around the current values, when the rules have nothing untried left."""
        if group == "trainer":
            v["lr"] = float(f"{v['lr'] * rng.choice([0.4, 0.7, 1.4, 2.0]):.3g}")
            v["weight_decay"] = rng.choice([0.0, 0.01, 0.02, 0.05, 0.1])
            v["label_smoothing"] = rng.choice([0.0, 0.05, 0.1])
            return v, f"explore: lr {v['lr']}, weight decay {v['weight_decay']}, smoothing {v['label_smoothing']}"
        if group == "model":
            ladder = PRETRAINED_LADDER if v["pretrained"] else SCRATCH_LADDER
            v["name"] = rng.choice(ladder[:4])
            v["drop_rate"] = rng.choice([0.0, 0.1, 0.2, 0.3, 0.4])
            v["drop_path_rate"] = rng.choice([0.0, 0.05, 0.1])
            return v, f"explore: {v['name']}, dropout {v['drop_rate']}, drop-path {v['drop_path_rate']}"
        v["mixup_alpha"] = rng.choice([0.0, 0.1, 0.2, 0.4])
        v["cutmix_alpha"] = rng.choice([0.0, 0.5, 1.0])
        v["mix_prob"] = rng.choice([0.3, 0.5, 1.0])
        return v, f"explore: MixUp {v['mixup_alpha']}, CutMix {v['cutmix_alpha']} on {v['mix_prob']:.0%} of batches"
