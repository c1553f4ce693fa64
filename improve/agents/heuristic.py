"""The offline expert: plays every role with an ML engineer's rules of thumb. Deterministic for a seed.

It reads the incumbent's learning curves: overfitting (train >> val) -> stronger augmentation,
MixUp/CutMix, dropout/drop-path, weight decay, label smoothing; underfitting -> more capacity,
more epochs, a higher learning rate; unstable or NaN -> lower learning rate, clipping, warm-up.
Dataset cues decide what is label-safe (orientation, text, digits: no flips). It never proposes
a group config already tried and moves on from a group after two changes that did not pay off.
"""
import copy
import random
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

from ..history import canonical
from .base import DIAGNOSES, Choice, Context, Edit, Proposal

NO_FLIP_WORDS = ("orientation", "rotat", "direction", "angle", "arrow", "text", "digit", "letter", "number",
                 "handwrit", "character", "sign", "flip", "chirality", "left", "right")
NO_ROTATE_WORDS = ("orientation", "rotat", "direction", "angle", "arrow", "upright")
SCRATCH_LADDER = ["test_resnet", "resnet10t", "resnet14t", "resnet18d", "resnet26d", "resnet34d"]
PRETRAINED_LADDER = ["convnext_atto", "convnext_femto", "convnext_pico", "convnext_nano", "convnext_tiny"]
# label-safe transforms the expert adds as they are (the strategy study's search space uses them too)
COARSE_DROPOUT = {"name": "CoarseDropout", "num_holes_range": [1, 2], "hole_height_range": [0.1, 0.25],
                  "hole_width_range": [0.1, 0.25], "p": 0.5}
COLOR_JITTER = {"name": "ColorJitter", "brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.0, "p": 0.5}
STALE_AFTER = 2  # reverted changes in a row after which a group has stopped paying off
GROUP_ORDER = {  # which group to try first, by diagnosis of the incumbent's curves
    "overfit": ["augment", "model", "trainer"],
    "underfit": ["trainer", "model", "augment"],
    "unstable": ["trainer", "model", "augment"],
    "ok": ["augment", "trainer", "model"],
}

Move = Tuple[str, Callable[[Dict[str, Any]], Dict[str, Any]]]


def _words(profile: Dict[str, Any]) -> str:
    return f"{profile.get('name', '')} {profile.get('description', '')}".lower()


def flips_allowed(profile: Dict[str, Any]) -> bool:
    """A mirror image must keep its label: not for orientations, text, digits; not for tiny grayscale glyphs."""
    if any(w in _words(profile) for w in NO_FLIP_WORDS):
        return False
    return not (profile.get("channels") == 1 and max(profile["native_size"]["median"]) <= 32)


def rotation_allowed(profile: Dict[str, Any]) -> bool:
    return not any(w in _words(profile) for w in NO_ROTATE_WORDS)


def _side(profile: Dict[str, Any]) -> int:
    return max(profile["native_size"]["median"]) or 32


def _find(transforms: List[Dict[str, Any]], name: str) -> Optional[Dict[str, Any]]:
    return next((t for t in transforms if t.get("name") == name), None)


def _fit_epochs(trainer: Dict[str, Any], max_epochs: int) -> None:
    """At most `max_epochs`, and a warm-up no longer than training."""
    trainer["epochs"] = min(trainer["epochs"], max_epochs)
    trainer["warmup_epochs"] = min(trainer["warmup_epochs"], trainer["epochs"])


def _dump(values: Dict[str, Any]) -> str:
    return yaml.safe_dump(values, sort_keys=False, default_flow_style=None)


class HeuristicAgent:
    """Offline expert agent (`llm=heuristic`)."""

    name = "heuristic"

    def bind(self, run_dir, journal, notify=None) -> None:
        """The offline expert keeps no audit files and makes no calls to account for."""

    # ------------------------------------------------------------------ architect
    def architect(self, ctx: Context, defaults: Dict[str, Dict[str, Any]], error: Optional[str] = None) -> Proposal:
        p = ctx.profile
        pipeline = {g: self._initial(g, p, copy.deepcopy(defaults[g]), coordinated=True) for g in defaults}
        _fit_epochs(pipeline["trainer"], ctx.max_epochs)
        size, model = pipeline["augment"]["image_size"], pipeline["model"]["name"]
        why = (f"{p['train_images']} training images of about {_side(p)}px, {p['channels']} channel(s): "
               f"{model}{' (pretrained)' if pipeline['model']['pretrained'] else ' from scratch'} at {size}px; "
               f"flips {'allowed' if flips_allowed(p) else 'excluded (they would change the label)'}; "
               f"{pipeline['trainer']['epochs']} epochs of {pipeline['trainer']['optimizer']} with a cosine schedule.")
        return Proposal(pipeline={g: _dump(v) for g, v in pipeline.items()}, rationale=why)

    def init_group(self, group: str, ctx: Context, current: Dict[str, Any]) -> Edit:
        values = self._initial(group, ctx.profile, copy.deepcopy(current), coordinated=False)
        if group == "trainer":
            _fit_epochs(values, ctx.max_epochs)
        return Edit(yaml=_dump(values), rationale=f"initial {group} from the dataset profile alone")

    def _initial(self, group: str, p: Dict[str, Any], v: Dict[str, Any], coordinated: bool) -> Dict[str, Any]:
        side, rgb = _side(p), p["channels"] == 3
        pretrained = p.get("pretrained_reachable") and side > 96 and rgb
        size = 32 if side <= 40 else 64 if side <= 96 else (224 if pretrained else 128)
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
            v["name"] = "convnext_nano" if pretrained else ("resnet10t" if side <= 40 else "resnet18d")
            if pretrained:
                v["drop_path_rate"] = 0.1
        elif group == "trainer":
            n = p["train_images"]
            v.update(epochs=12 if n <= 3000 else 8 if n <= 20000 else 5, optimizer="adamw",
                     lr=2e-4 if (pretrained and coordinated) else 3e-3, weight_decay=0.05, scheduler="cosine",
                     warmup_epochs=1.0, label_smoothing=0.0, grad_clip=0.0, early_stopping=0)
            v["batch_size"] = 32 if size >= 128 else 64
            v["balance"] = "sampler" if p.get("imbalance_ratio", 1.0) > 3 else v.get("balance", "none")  # skewed data
        return v

    # ------------------------------------------------------------------ analyst
    def analyst(self, ctx: Context) -> Choice:
        diagnosis = ctx.incumbent.get("summary", {}).get("diagnosis", "ok")
        last = ctx.rounds[-1] if ctx.rounds else None
        if last and last.get("summary", {}).get("diagnosis") == "unstable":
            return Choice("trainer", f"round {last['round']} diverged (NaN/inf loss): lower the learning rate, "
                                     f"clip gradients, warm up longer", "unstable")
        order = GROUP_ORDER.get(diagnosis, GROUP_ORDER["ok"])
        stale = {g: self._reverts_in_a_row(ctx, g) for g in order}
        fresh = [g for g in order if stale[g] < STALE_AFTER]
        group = fresh[0] if fresh else min(order, key=lambda g: (stale[g], order.index(g)))
        s = ctx.incumbent.get("summary", {})
        why = {
            "overfit": f"the incumbent overfits (train-val gap {s.get('train_val_gap')}): regularise",
            "underfit": f"the incumbent underfits (train acc {s.get('train_acc')}, val still rising): add capacity "
                        f"or training",
            "ok": "the incumbent fits well: look for a better optimum",
        }.get(diagnosis, "improve validation accuracy")
        if group != order[0]:
            why += f"; {order[0]} stopped paying off ({stale[order[0]]} reverted changes in a row)"
        return Choice(group, why, diagnosis if diagnosis in DIAGNOSES else "ok")

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
        moves = getattr(self, f"_{group}_moves")(ctx, current, diagnosis)
        for why, make in moves:
            candidate = make(copy.deepcopy(current))
            if canonical(candidate) not in seen:
                return Edit(yaml=_dump(candidate), rationale=why)
        rng = random.Random(f"{ctx.seed}-{ctx.round}-{group}")
        for _ in range(100):
            candidate, why = self._perturb(group, copy.deepcopy(current), rng, ctx)
            if canonical(candidate) not in seen:
                return Edit(yaml=_dump(candidate), rationale=why)
        return Edit(yaml=_dump(current), rationale="no untried change left for this group")

    def _augment_moves(self, ctx: Context, a: Dict[str, Any], diagnosis: str) -> List[Move]:
        p, size = ctx.profile, a["image_size"]

        def add(t: Dict[str, Any]):
            if _find(a["train_transforms"], t["name"]):
                return None  # already in the pipeline: a second copy is not a new idea
            return lambda v: {**v, "train_transforms": [*v["train_transforms"], t]}

        def set_(**kv):
            return lambda v: {**v, **kv}

        def affine(scale, shift, p_):
            rotate = [-15, 15] if rotation_allowed(p) else 0
            t = {"name": "Affine", "scale": scale, "translate_percent": [-shift, shift], "rotate": rotate, "p": p_}
            return lambda v: {**v, "train_transforms": [t if x.get("name") == "Affine" else x
                                                        for x in v["train_transforms"]]
                              if _find(v["train_transforms"], "Affine") else [*v["train_transforms"], t]}

        stronger: List[Move] = [
            ("stronger geometric jitter (Affine: scale 0.85-1.15, shift 10%)", affine([0.85, 1.15], 0.1, 0.7)),
            ("CoarseDropout: erase random patches so the model uses the whole object",
             add(copy.deepcopy(COARSE_DROPOUT))),
            ("MixUp (alpha 0.2) on half the batches: smoother decision boundaries", set_(mixup_alpha=0.2, mix_prob=0.5)),
            ("CutMix (alpha 1.0): a strong regulariser for CNNs", set_(cutmix_alpha=1.0, mix_prob=0.5)),
        ]
        if p["channels"] == 3:
            stronger.append(("ColorJitter: robustness to lighting", add(copy.deepcopy(COLOR_JITTER))))
        if flips_allowed(p):
            stronger.insert(0, ("HorizontalFlip: mirror images are the same class here",
                                add({"name": "HorizontalFlip", "p": 0.5})))
        if size >= 64:
            stronger.insert(0, ("RandomResizedCrop: scale and aspect jitter for photos", add(
                {"name": "RandomResizedCrop", "size": [size, size], "scale": [0.35, 1.0], "p": 1.0})))
        weaker: List[Move] = [
            ("no MixUp/CutMix: the model cannot even fit the training data", set_(mixup_alpha=0.0, cutmix_alpha=0.0)),
            ("milder geometric jitter", affine([0.95, 1.05], 0.04, 0.3)),
        ]
        if a["train_transforms"]:
            weaker.append((f"drop {a['train_transforms'][-1]['name']}: less augmentation to let the model fit",
                           lambda v: {**v, "train_transforms": v["train_transforms"][:-1]}))
        bigger = min(size * 2, 256)
        resize = [(f"image size {size} -> {bigger}: more detail for the model",
                   lambda v: {**v, "image_size": bigger,
                              "train_transforms": [{**t, "size": [bigger, bigger]} if "size" in t else t
                                                   for t in v["train_transforms"]]})]
        stronger = [(why, move) for why, move in stronger if move is not None]
        if diagnosis == "underfit":
            return weaker + resize
        return stronger + (resize if diagnosis == "ok" else []) + weaker

    def _model_moves(self, ctx: Context, m: Dict[str, Any], diagnosis: str) -> List[Move]:
        ladder = PRETRAINED_LADDER if m["pretrained"] else SCRATCH_LADDER
        i = ladder.index(m["name"]) if m["name"] in ladder else None
        moves: List[Move] = []
        bigger = ladder[i + 1] if i is not None and i + 1 < len(ladder) else None
        smaller = ladder[i - 1] if i is not None and i > 0 else None
        drop, drop_path = m["drop_rate"] or 0.0, m["drop_path_rate"] or 0.0  # null: the model's default, taken as 0
        more_reg = [
            (f"dropout {drop} -> {min(0.5, drop + 0.15):.2f} before the head",
             lambda v: {**v, "drop_rate": round(min(0.5, drop + 0.15), 2)}),
            (f"stochastic depth {drop_path} -> {min(0.3, drop_path + 0.1):.2f}",
             lambda v: {**v, "drop_path_rate": round(min(0.3, drop_path + 0.1), 2)}),
        ]
        if bigger:
            moves.append((f"more capacity: {m['name']} -> {bigger}", lambda v: {**v, "name": bigger}))
        if diagnosis == "overfit":
            moves = more_reg + ([(f"less capacity: {m['name']} -> {smaller}", lambda v: {**v, "name": smaller})]
                                if smaller else []) + moves
        else:
            moves += [(f"less dropout ({drop} -> 0)", lambda v: {**v, "drop_rate": 0.0})] + more_reg
        if ctx.profile.get("pretrained_reachable") and not m["pretrained"] and ctx.profile["channels"] == 3:
            moves.insert(0, ("start from ImageNet weights (convnext_atto, pretrained)",
                             lambda v: {**v, "name": "convnext_atto", "pretrained": True, "drop_path_rate": 0.1}))
        return moves

    def _trainer_moves(self, ctx: Context, t: Dict[str, Any], diagnosis: str) -> List[Move]:
        cap = ctx.max_epochs
        longer = min(cap, max(t["epochs"] + 2, round(t["epochs"] * 1.5)))
        moves = {
            "unstable": [
                (f"lr {t['lr']:.3g} -> {t['lr'] * 0.3:.3g}, clip gradients at 1.0, 2 warm-up epochs",
                 lambda v: {**v, "lr": v["lr"] * 0.3, "grad_clip": 1.0,
                            "warmup_epochs": min(2.0, v["epochs"])}),
                ("lower lr again", lambda v: {**v, "lr": v["lr"] * 0.3}),
            ],
            "underfit": [
                (f"train longer: {t['epochs']} -> {longer} epochs", lambda v: {**v, "epochs": longer}),
                (f"higher lr {t['lr']:.3g} -> {t['lr'] * 2:.3g}", lambda v: {**v, "lr": v["lr"] * 2}),
                ("less weight decay", lambda v: {**v, "weight_decay": round(v["weight_decay"] / 4, 5)}),
            ],
            "overfit": [
                ("label smoothing 0.1: less over-confident targets", lambda v: {**v, "label_smoothing": 0.1}),
                (f"weight decay {t['weight_decay']} -> {min(0.3, t['weight_decay'] * 2):.3g}",
                 lambda v: {**v, "weight_decay": round(min(0.3, v["weight_decay"] * 2), 5)}),
                (f"lower lr {t['lr']:.3g} -> {t['lr'] * 0.5:.3g}", lambda v: {**v, "lr": v["lr"] * 0.5}),
            ],
            "ok": [
                (f"lower lr {t['lr']:.3g} -> {t['lr'] * 0.5:.3g}: settle into a sharper optimum",
                 lambda v: {**v, "lr": v["lr"] * 0.5}),
                (f"train longer: {t['epochs']} -> {longer} epochs", lambda v: {**v, "epochs": longer}),
                ("label smoothing 0.1", lambda v: {**v, "label_smoothing": 0.1}),
                (f"higher lr {t['lr']:.3g} -> {t['lr'] * 2:.3g}", lambda v: {**v, "lr": v["lr"] * 2}),
            ],
        }
        return moves.get(diagnosis, moves["ok"])

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
