"""The offline expert's moves: for one group, the edits a practitioner would try next, best first.

How big a step is depends on the distance to the ceiling (`history.headroom`): far from it (training accuracy
low, or validation still climbing fast at the last epoch) a move changes its group decisively and coherently
(trainer: continue from the incumbent's weights with a fresh schedule, or lr, warm-up and weight decay together;
augment: drop everything that stops the model from fitting at once; model: two sizes up with its regularisation
off); near it, one value at a time. Label safety comes from the dataset's words (orientation, text, digits: no
flips; orientation: no rotation). `levers=False` leaves out the competition levers (EMA, TTA, RandAugment): the
levers benchmark's control arm.
"""
import copy
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from improve.agents.base import Context
from improve.pipeline.augment import FLIPS, changes_colour
from improve.pipeline.init_weights import same_weights

NO_FLIP_WORDS = ("orientation", "rotat", "direction", "angle", "arrow", "text", "digit", "letter", "number",
                 "handwrit", "character", "sign", "flip", "chirality", "mirror", "left", "right")
NO_ROTATE_WORDS = ("orientation", "rotat", "direction", "angle", "arrow", "upright")
SCRATCH_LADDER = ["test_resnet", "resnet10t", "resnet14t", "resnet18d", "resnet26d", "resnet34d"]
PRETRAINED_LADDER = ["convnext_atto", "convnext_femto", "convnext_pico", "convnext_nano", "convnext_tiny"]
RUNG_COST = 1.6  # a model one rung up the ladder trains about this much slower
# label-safe transforms the expert adds as they are (the strategy study's search space uses them too)
COARSE_DROPOUT = {"name": "CoarseDropout", "num_holes_range": [1, 2], "hole_height_range": [0.1, 0.25],
                  "hole_width_range": [0.1, 0.25], "p": 0.5}
COLOR_JITTER = {"name": "ColorJitter", "brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.0, "p": 0.5}


@dataclass
class Move:
    """One candidate edit of a group: why, and how (current values -> new values)."""

    why: str
    make: Callable[[Dict[str, Any]], Dict[str, Any]]


def _words(profile: Dict[str, Any]) -> str:
    return f"{profile.get('name', '')} {profile.get('description', '')}".lower()


MIRROR_OPPOSITES = {"left/right", "l/r", "cw/ccw", "anticlockwise/clockwise", "clockwise/counterclockwise",
                    "east/west", "mirrored/normal"}  # class names paired by these: a mirror image is the other class
TURN_OPPOSITES = {"down/up", "bottom/top", "inverted/upright", "north/south"}  # ... a half turn is the other class


def _opposites(profile: Dict[str, Any]) -> set:
    return set((profile.get("class_structure") or {}).get("opposites") or [])


def flips_allowed(profile: Dict[str, Any], findings: Optional[List[Dict[str, Any]]] = None) -> bool:
    """A mirror image must keep its label: not for orientations, text, digits; not for tiny grayscale glyphs; not
    when class names come in left/right pairs, nor once the errors showed mirror-image pairs (`findings`)."""
    if any(w in _words(profile) for w in NO_FLIP_WORDS) or _opposites(profile) & MIRROR_OPPOSITES:
        return False
    if any(f.get("rule") == "mirror_pairs" for f in findings or []):
        return False
    return not (profile.get("channels") == 1 and max(profile["native_size"]["median"]) <= 32)


def rotation_allowed(profile: Dict[str, Any]) -> bool:
    return not (any(w in _words(profile) for w in NO_ROTATE_WORDS) or _opposites(profile) & TURN_OPPOSITES)


def colour_allowed(findings: Optional[List[Dict[str, Any]]]) -> bool:
    """Hue, saturation and greyscale changes keep the label, unless the errors showed colour-only pairs."""
    return not any(f.get("rule") == "colour_pairs" for f in findings or [])


def side(profile: Dict[str, Any]) -> int:
    return max(profile["native_size"]["median"]) or 32


def find(transforms: List[Dict[str, Any]], name: str) -> Optional[Dict[str, Any]]:
    return next((t for t in transforms if t.get("name") == name), None)


def relative_cost(group: str, old: Dict[str, Any], new: Dict[str, Any]) -> float:
    """Training time of a round with `new` over one with `old` (epochs, pixels, model size)."""
    if group == "trainer":
        return new["epochs"] / max(1, old["epochs"]) + (0.1 if new.get("lr_find") and not old.get("lr_find") else 0)
    if group == "augment":
        return (new["image_size"] / old["image_size"]) ** 2
    ladder = PRETRAINED_LADDER if new.get("pretrained") else SCRATCH_LADDER
    if old["name"] in ladder and new["name"] in ladder:
        return RUNG_COST ** (ladder.index(new["name"]) - ladder.index(old["name"]))
    return 1.0


def _resized(v: Dict[str, Any], size: int, keep: Optional[set] = None) -> Dict[str, Any]:
    """Augment values at another image size: transforms with a `size` (crops) follow it; `keep` = only those names."""
    transforms = [t for t in v["train_transforms"] if keep is None or t["name"] in keep]
    return {**v, "image_size": size, "train_transforms": [{**t, "size": [size, size]} if "size" in t else t
                                                          for t in transforms]}


def _far(ctx: Context) -> bool:
    return ctx.incumbent.get("summary", {}).get("headroom") == "far"


def _steps_per_run(ctx: Context, trainer: Dict[str, Any]) -> int:
    return trainer["epochs"] * max(1, ctx.profile.get("train_images", 1000) // trainer["batch_size"])


def fixes(ctx: Context, group: str) -> List[Move]:
    """The edits the errors call for (`ctx.findings` that are actionable, of this group): before any other move."""
    out = []
    for f in ctx.findings:
        if not f.get("actionable") or f.get("group") != group:
            continue
        why = f"{f['rule']}: {f['edit']}"
        if f["rule"] == "mirror_pairs":
            out.append(Move(why, lambda v: {**v, "train_transforms": [t for t in v["train_transforms"]
                                                                      if t.get("name") not in FLIPS]}))
        elif f["rule"] == "colour_pairs":
            out.append(Move(why, lambda v: {**v, "train_transforms": [t for t in v["train_transforms"]
                                                                      if not changes_colour(t)]}))
        elif f["rule"] == "detail_pairs":
            bigger = min(2 * int(f.get("at_size") or 32), 256)
            out.append(Move(why, lambda v, b=bigger: _resized(v, max(b, v["image_size"]))))
        elif f["rule"] == "imbalance":
            out.append(Move(why, lambda v: {**v, "balance": "sampler"}))
    return out


def augment_moves(ctx: Context, a: Dict[str, Any], diagnosis: str, levers: bool = True) -> List[Move]:
    p, size = ctx.profile, a["image_size"]
    flips_ok = flips_allowed(p, ctx.findings)

    def add(t: Dict[str, Any]):
        if find(a["train_transforms"], t["name"]):
            return None  # already in the pipeline: a second copy is not a new idea
        return lambda v: {**v, "train_transforms": [*v["train_transforms"], t]}

    def set_(**kv):
        return lambda v: {**v, **kv}

    def affine(scale, shift, p_):
        rotate = [-15, 15] if rotation_allowed(p) else 0
        t = {"name": "Affine", "scale": scale, "translate_percent": [-shift, shift], "rotate": rotate, "p": p_}
        return lambda v: {**v, "train_transforms": [t if x.get("name") == "Affine" else x
                                                    for x in v["train_transforms"]]
                          if find(v["train_transforms"], "Affine") else [*v["train_transforms"], t]}

    stronger = [
        Move("stronger geometric jitter (Affine: scale 0.85-1.15, shift 10%)", affine([0.85, 1.15], 0.1, 0.7)),
        Move("CoarseDropout: erase random patches so the model uses the whole object", add(copy.deepcopy(COARSE_DROPOUT))),
        Move("MixUp (alpha 0.2) on half the batches: smoother decision boundaries", set_(mixup_alpha=0.2, mix_prob=0.5)),
        Move("CutMix (alpha 1.0): a strong regulariser for CNNs", set_(cutmix_alpha=1.0, mix_prob=0.5)),
    ]
    if levers:
        geometric = rotation_allowed(p)
        stronger.insert(1, Move(f"RandAugment (2 ops, magnitude 5{'' if geometric else ', photometric only'}): "
                                f"varied label-safe distortions",
                                add({"name": "RandAugment", "num_ops": 2, "magnitude": 5.0, "geometric": geometric})))
    if p["channels"] == 3 and colour_allowed(ctx.findings):
        stronger.append(Move("ColorJitter: robustness to lighting", add(copy.deepcopy(COLOR_JITTER))))
    if flips_ok:
        stronger.insert(0, Move("HorizontalFlip: mirror images are the same class here",
                                add({"name": "HorizontalFlip", "p": 0.5})))
    if size >= 64:
        stronger.insert(0, Move("RandomResizedCrop: scale and aspect jitter for photos", add(
            {"name": "RandomResizedCrop", "size": [size, size], "scale": [0.35, 1.0], "p": 1.0})))
    weaker = [
        Move("no MixUp/CutMix: the model cannot even fit the training data", set_(mixup_alpha=0.0, cutmix_alpha=0.0)),
        Move("milder geometric jitter", affine([0.95, 1.05], 0.04, 0.3)),
    ]
    if a["train_transforms"]:
        weaker.append(Move(f"drop {a['train_transforms'][-1]['name']}: less augmentation to let the model fit",
                           lambda v: {**v, "train_transforms": v["train_transforms"][:-1]}))
    keep = {"HorizontalFlip", "RandomResizedCrop"} if flips_ok else {"RandomResizedCrop"}  # label-safe and cheap
    up = size * 2 if size < 64 else size  # a stride-32 CNN sees a 32px image as a single cell: give it more
    decisive = Move("far from fitting: drop every regulariser at once (MixUp/CutMix, jitter, erasing, policies)"
                    + (f" and upscale {size} -> {up}px so the network keeps spatial detail" if up != size else ""),
                    lambda v: {**_resized(v, up, keep), "mixup_alpha": 0.0, "cutmix_alpha": 0.0})
    bigger = min(size * 2, 256, max(64, 2 * side(p)))  # past twice the native size upscaling adds no detail, only cost
    resize = [Move(f"image size {size} -> {bigger}: more detail for the model", lambda v: _resized(v, bigger))
              ] if bigger > size else []
    tta = [Move("test-time augmentation: average label-safe views at validation, test and predict",
                set_(tta=True))] if levers and not a.get("tta") else []
    stronger = [m for m in stronger if m.make is not None]
    if diagnosis == "underfit":
        return fixes(ctx, "augment") + ([decisive] if _far(ctx) else []) + weaker + resize
    if diagnosis == "overfit":
        return fixes(ctx, "augment") + stronger + tta + weaker
    return fixes(ctx, "augment") + tta + stronger + resize + weaker


def model_moves(ctx: Context, m: Dict[str, Any], diagnosis: str, levers: bool = True) -> List[Move]:
    ladder = PRETRAINED_LADDER if m["pretrained"] else SCRATCH_LADDER
    i = ladder.index(m["name"]) if m["name"] in ladder else None
    bigger = ladder[i + 1] if i is not None and i + 1 < len(ladder) else None
    much_bigger = ladder[min(i + 2, len(ladder) - 1)] if i is not None and i + 2 < len(ladder) else None
    smaller = ladder[i - 1] if i is not None and i > 0 else None
    drop, drop_path = m["drop_rate"] or 0.0, m["drop_path_rate"] or 0.0  # null: the model's default, taken as 0
    more_reg = [
        Move(f"dropout {drop} -> {min(0.5, drop + 0.15):.2f} before the head",
             lambda v: {**v, "drop_rate": round(min(0.5, drop + 0.15), 2)}),
        Move(f"stochastic depth {drop_path} -> {min(0.3, drop_path + 0.1):.2f}",
             lambda v: {**v, "drop_path_rate": round(min(0.3, drop_path + 0.1), 2)}),
    ]
    moves: List[Move] = []
    if much_bigger and diagnosis == "underfit" and _far(ctx):
        moves.append(Move(f"far from fitting: two sizes up ({m['name']} -> {much_bigger}) with dropout and "
                          f"stochastic depth off", lambda v: {**v, "name": much_bigger, "drop_rate": 0.0,
                                                              "drop_path_rate": 0.0}))
    if bigger:
        moves.append(Move(f"more capacity: {m['name']} -> {bigger}", lambda v: {**v, "name": bigger}))
    if diagnosis == "overfit":
        moves = more_reg + ([Move(f"less capacity: {m['name']} -> {smaller}", lambda v: {**v, "name": smaller})]
                            if smaller else []) + moves
    else:
        moves += [Move(f"less dropout ({drop} -> 0)", lambda v: {**v, "drop_rate": 0.0})] + more_reg
    if ctx.profile.get("pretrained_reachable") and not m["pretrained"] and ctx.profile["channels"] == 3:
        moves.insert(0, Move("start from ImageNet weights (convnext_atto, pretrained)",
                             lambda v: {**v, "name": "convnext_atto", "pretrained": True, "drop_path_rate": 0.1}))
    if ctx.incumbent.get("pipeline", {}).get("trainer", {}).get("warm_start"):
        # settled: rounds continue from the incumbent's weights, which only a dropout change keeps
        moves.sort(key=lambda mv: not same_weights(mv.make(dict(m)), m))
    return moves


def trainer_moves(ctx: Context, t: Dict[str, Any], diagnosis: str, levers: bool = True) -> List[Move]:
    cap, far = ctx.max_epochs, _far(ctx)
    longer = min(cap, max(t["epochs"] + 2, round(t["epochs"] * 1.5)))
    can_continue = ctx.incumbent.get("round") is not None and ctx.incumbent.get("val_acc") is not None
    moves = {
        "unstable": [
            Move(f"lr {t['lr']:.3g} -> {t['lr'] * 0.3:.3g}, clip gradients at 1.0, 2 warm-up epochs",
                 lambda v: {**v, "lr": v["lr"] * 0.3, "grad_clip": 1.0, "warmup_epochs": min(2.0, v["epochs"]),
                            "warm_start": False}),
            Move("lower lr again", lambda v: {**v, "lr": v["lr"] * 0.3}),
        ],
        "underfit": [
            Move(f"train longer: {t['epochs']} -> {longer} epochs", lambda v: {**v, "epochs": longer}),
            Move(f"higher lr {t['lr']:.3g} -> {t['lr'] * 2:.3g}", lambda v: {**v, "lr": v["lr"] * 2}),
            Move("less weight decay", lambda v: {**v, "weight_decay": round(v["weight_decay"] / 4, 5)}),
        ],
        "overfit": [
            Move("label smoothing 0.1: less over-confident targets", lambda v: {**v, "label_smoothing": 0.1}),
            Move(f"weight decay {t['weight_decay']} -> {min(0.3, t['weight_decay'] * 2):.3g}",
                 lambda v: {**v, "weight_decay": round(min(0.3, v["weight_decay"] * 2), 5)}),
            Move(f"lower lr {t['lr']:.3g} -> {t['lr'] * 0.5:.3g}", lambda v: {**v, "lr": v["lr"] * 0.5}),
        ],
        "ok": [
            Move(f"lower lr {t['lr']:.3g} -> {t['lr'] * 0.5:.3g}: settle into a sharper optimum",
                 lambda v: {**v, "lr": v["lr"] * 0.5}),
            Move(f"train longer: {t['epochs']} -> {longer} epochs", lambda v: {**v, "epochs": longer}),
            Move("label smoothing 0.1", lambda v: {**v, "label_smoothing": 0.1}),
            Move(f"higher lr {t['lr']:.3g} -> {t['lr'] * 2:.3g}", lambda v: {**v, "lr": v["lr"] * 2}),
        ],
    }.get(diagnosis, [])
    keep_training = Move(f"keep training from the incumbent's weights, lr {t['lr']:.3g} -> {t['lr'] * 0.7:.3g} "
                         f"(annealing across rounds)",
                         lambda v: {**v, "lr": float(f"{v['lr'] * 0.7:.3g}"), "epochs": cap})
    if diagnosis == "underfit" and far:
        decisive = []
        if can_continue and not t.get("warm_start"):
            decisive.append(Move(f"far from the ceiling: continue from the incumbent's weights (warm_start) for "
                                 f"{cap} more epochs with a fresh cosine cycle and a short warm-up",
                                 lambda v: {**v, "warm_start": True, "epochs": cap,
                                            "warmup_epochs": min(0.5, float(cap))}))
        if t.get("warm_start"):
            decisive.append(keep_training)
        decisive.append(Move(f"far from the ceiling: lr range test, {cap} epochs, weight decay "
                             f"{t['weight_decay']} -> {t['weight_decay'] / 4:.3g}, 1 warm-up epoch",
                             lambda v: {**v, "lr_find": True, "epochs": cap, "warmup_epochs": min(1.0, float(cap)),
                                        "weight_decay": round(v["weight_decay"] / 4, 5)}))
        moves = decisive + moves
    elif diagnosis == "underfit" and t.get("warm_start"):
        moves.insert(0, keep_training)
    elif diagnosis in ("ok", "overfit") and t.get("warm_start"):
        moves.insert(0, Move(f"continue from the incumbent's weights with half the lr ({t['lr']:.3g} -> "
                             f"{t['lr'] * 0.5:.3g}): fine-tune into the optimum",
                             lambda v: {**v, "lr": float(f"{v['lr'] * 0.5:.3g}")}))
    if levers and not t.get("ema_decay") and _steps_per_run(ctx, t) >= 300:
        decay = round(min(0.999, max(0.9, 1 - 20 / _steps_per_run(ctx, t))), 4)
        moves.insert(1 if moves else 0, Move(f"EMA of the weights (decay {decay}): a smoother model to validate",
                                             lambda v: {**v, "ema_decay": decay}))
    found = ctx.incumbent.get("summary", {}).get("lr_found")
    if found and t.get("lr_find"):  # the range test ran: fix its lr and save its time
        moves.insert(0, Move(f"fix lr at the range test's {found:.3g}", lambda v: {**v, "lr": float(f"{found:.3g}"),
                                                                               "lr_find": False}))
    return fixes(ctx, "trainer") + moves


MOVES = {"augment": augment_moves, "model": model_moves, "trainer": trainer_moves}
