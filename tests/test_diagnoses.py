"""What the errors say: the confusion summary, the class-name structure, and the structural diagnoses the offline
expert acts on (mirror-image pairs, colour-only pairs, detail, imbalance), on synthetic predictions and images."""
import copy
import json

import numpy as np
import pytest
import yaml

from improve.agents.base import Context
from improve.agents.heuristic import HeuristicAgent
from improve.agents.moves import flips_allowed
from improve.bench import tasks
from improve.data.class_names import name_structure
from improve.pipeline.confusion import TOP_PAIRS, WORST_CLASSES, confusion_summary
from improve.refine.diagnoses import ClassImages, actionable, diagnose
from improve.refine.state import State

FLIP = {"name": "HorizontalFlip", "p": 0.5}
AFFINE = {"name": "Affine", "scale": [0.9, 1.1], "translate_percent": [-0.06, 0.06], "rotate": 0, "p": 0.5}


def pipeline(transforms, size=32, balance="none"):
    return {"augment": {"image_size": size, "train_transforms": transforms, "mixup_alpha": 0.0, "cutmix_alpha": 0.0,
                        "mix_prob": 0.5},
            "model": {"name": "resnet10t", "pretrained": False, "drop_rate": 0.1, "drop_path_rate": 0.0},
            "trainer": {"epochs": 2, "lr": 3e-3, "balance": balance, "warm_start": False, "batch_size": 64,
                        "weight_decay": 0.05, "warmup_epochs": 1.0}}


def predictions(classes, confuse=(), per_class=100, rate=0.4, spread=0.0, seed=0):
    """Validation predictions: each class right except `rate` of the images of each pair in `confuse` (predicted
    as the other) and `spread` of every class predicted as a random class."""
    rng = np.random.default_rng(seed)
    y_true = np.repeat(np.arange(len(classes)), per_class)
    y_pred = y_true.copy()
    for a, b in confuse:
        for x, y in ((a, b), (b, a)):
            idx = np.flatnonzero(y_true == x)
            y_pred[idx[:int(rate * per_class)]] = y
    noisy = rng.random(len(y_true)) < spread
    y_pred[noisy] = rng.integers(0, len(classes), noisy.sum())
    return {"classes": list(classes), "y_true": y_true.tolist(), "y_pred": y_pred.tolist()}


def images_of(draw, classes, n=50, size=32, seed=0):
    rng = np.random.default_rng(seed)
    arrays, labels = [], []
    for c in range(len(classes)):
        for _ in range(n):
            a = np.asarray(draw(c, rng), np.uint8)
            arrays.append(a[..., None] if a.ndim == 2 else a)
            labels.append(c)
    held = ClassImages(np.stack(arrays), np.array(labels), list(classes))
    return lambda s: held


def context(findings, transforms, rounds=()):
    profile = {"name": "images", "description": "", "channels": 3, "native_size": {"median": [32, 32]},
               "train_images": 600, "class_names": [], "num_classes": 8}
    return Context(profile=profile, incumbent={"round": 0, "pipeline": pipeline(transforms), "val_acc": 0.5,
                                               "summary": {"diagnosis": "underfit", "headroom": "far",
                                                           "seconds": 5.0}},
                   rounds=list(rounds), round=1, findings=findings, max_epochs=4)


# ---------------------------------------------------------------------------------------------- the summary
def test_confusion_summary_counts_a_pair_both_ways_and_names_the_worst_classes():
    s = confusion_summary(predictions(["a", "b", "c", "d"], confuse=[(0, 1)], rate=0.3))
    assert s.errors == 60 and s.images == 400
    top = s.pairs[0]
    assert {top.a, top.b} == {"a", "b"} and top.a_as_b == top.b_as_a == 30 and top.images == 200
    assert top.rate == pytest.approx(0.3) and s.top_pairs_share == pytest.approx(1.0)
    assert [w["class"] for w in s.worst[:2]] == ["a", "b"] and s.worst[0]["acc"] == pytest.approx(0.7)


def test_confusion_summary_stays_within_its_bound_for_a_thousand_long_class_names():
    classes = [f"{'x' * 200}_{i}" for i in range(1000)]
    s = confusion_summary(predictions(classes, confuse=[(i, i + 1) for i in range(0, 1000, 2)], per_class=4,
                                      rate=0.5, spread=0.3))
    text = json.dumps(s.journal())
    assert len(s.pairs) <= TOP_PAIRS and len(s.worst) <= WORST_CLASSES
    assert len(text) < 3000  # whatever the classes, the history carries a few lines
    assert all(len(p.a) <= 40 for p in s.pairs)


def test_confusion_summary_of_no_images_is_none_and_a_foreign_label_is_an_error():
    assert confusion_summary({"classes": ["a"], "y_true": [], "y_pred": []}) is None
    with pytest.raises(ValueError, match="outside the 2 classes"):
        confusion_summary({"classes": ["a", "b"], "y_true": [0, 1], "y_pred": [0, 5]})


def test_class_names_paired_by_left_and_right_are_found_and_exclude_flips():
    s = name_structure(["left_hand", "right_hand", "left_foot", "right_foot", "nose"])
    assert ["left_hand", "right_hand"] in s["paired"] and s["opposites"] == ["left/right"]
    assert "hand" in s["shared_tokens"] and not s["numbered"]
    assert name_structure([f"{d:03d}deg" for d in range(0, 360, 45)])["numbered"]
    assert name_structure(["cat", "dog", "bird"]) == {"shared_tokens": [], "numbered": False, "paired": [],
                                                      "opposites": []}
    profile = {"name": "x", "description": "", "channels": 3, "native_size": {"median": [64, 64]},
               "class_structure": s}
    assert not flips_allowed(profile) and flips_allowed({**profile, "class_structure": name_structure(["a", "b"])})


# ---------------------------------------------------------------------------------------------- the rules
MIRROR = tasks.MIRROR_CLASSES
PAIRS = [(0, 5), (1, 4)]  # type1/type6 and type2/type5 are each other's mirror images (tasks.MIRROR_OF)


def test_mirror_pair_confusion_under_a_flip_leads_the_expert_to_remove_the_flip():
    found = diagnose(predictions(MIRROR, confuse=PAIRS), images_of(tasks.chiral, MIRROR), pipeline([AFFINE, FLIP]),
                     channels=3)
    mirror = [f for f in found if f.rule == "mirror_pairs"]
    assert len(mirror) == 1 and mirror[0].actionable and mirror[0].group == "augment"
    assert sorted(map(sorted, mirror[0].pairs)) == [["type1", "type6"], ["type2", "type5"]]
    assert "HorizontalFlip" in mirror[0].edit
    ctx = context([f.journal() for f in found], [AFFINE, FLIP])
    agent = HeuristicAgent()
    choice = agent.analyst(ctx)
    assert (choice.group, choice.finding) == ("augment", "mirror_pairs")  # over the curves' "keep training"
    edit = agent.engineer(choice, ctx, copy.deepcopy(ctx.incumbent["pipeline"]["augment"]), [])
    names = [t["name"] for t in yaml.safe_load(edit.yaml)["train_transforms"]]
    assert names == ["Affine"] and edit.rationale.startswith("mirror_pairs")


def test_a_mirror_finding_keeps_flips_out_of_later_edits():
    finding = {"rule": "mirror_pairs", "group": "augment", "edit": "add no flip", "evidence": "", "pairs": [],
               "share_of_errors": 0.3, "actionable": False}
    ctx = context([finding], [AFFINE])
    agent = HeuristicAgent()
    for diagnosis in ("overfit", "ok", "underfit"):
        for move in agent.moves(ctx, "augment", ctx.incumbent["pipeline"]["augment"], diagnosis):
            made = move.make(copy.deepcopy(ctx.incumbent["pipeline"]["augment"]))
            assert not any(t["name"] == "HorizontalFlip" for t in made["train_transforms"]), move.why
    assert not flips_allowed(ctx.profile, [finding]) and flips_allowed(ctx.profile)


def test_a_fix_that_was_tried_and_reverted_is_not_asked_for_again():
    found = diagnose(predictions(MIRROR, confuse=PAIRS), images_of(tasks.chiral, MIRROR), pipeline([FLIP]), 3)
    tried = [{"round": 1, "group": "augment", "decision": "reverted", "rationale": "mirror_pairs: remove it",
              "summary": {}}]
    choice = HeuristicAgent().analyst(context([f.journal() for f in found], [FLIP], rounds=tried))
    assert choice.finding is None


def test_colour_only_pairs_lead_to_dropping_colour_jitter():
    jitter = {"name": "ColorJitter", "brightness": 0.2, "contrast": 0.2, "saturation": 0.5, "hue": 0.2, "p": 0.5}
    found = diagnose(predictions(tasks.COLOURS, confuse=[(0, 1)]), images_of(tasks.coloured, tasks.COLOURS),
                     pipeline([AFFINE, jitter]), channels=3)
    assert [f.rule for f in found] == ["colour_pairs"] and found[0].actionable
    assert found[0].pairs == [["red", "yellow"]]
    ctx = context([f.journal() for f in found], [AFFINE, jitter])
    agent = HeuristicAgent()
    choice = agent.analyst(ctx)
    edit = agent.engineer(choice, ctx, copy.deepcopy(ctx.incumbent["pipeline"]["augment"]), [])
    assert [t["name"] for t in yaml.safe_load(edit.yaml)["train_transforms"]] == ["Affine"]
    # a brightness-only jitter keeps colour: nothing to remove, and nothing to act on
    mild = {**jitter, "saturation": 0.0, "hue": 0.0}
    assert not actionable(found[0].journal(), pipeline([mild]))


def test_errors_spread_evenly_get_no_structural_diagnosis():
    found = diagnose(predictions(tasks.NAMES, spread=0.3), images_of(tasks.glyph, tasks.NAMES),
                     pipeline([AFFINE, FLIP]), channels=1)
    assert found == []
    found = diagnose(predictions(MIRROR, spread=0.4), images_of(tasks.chiral, MIRROR), pipeline([FLIP]), 3)
    assert found == []


def test_pairs_that_differ_in_fine_detail_ask_for_a_larger_image_size():
    textures = list(tasks.TEXTURES)
    found = diagnose(predictions(textures, confuse=[(2, 3)]), images_of(tasks.coded, textures, size=64),
                     pipeline([AFFINE], size=64), channels=1)
    assert [f.rule for f in found] == ["detail_pairs"]
    assert found[0].at_size == 64 and "64 -> 128" in found[0].edit
    assert actionable(found[0].journal(), pipeline([], size=64))
    assert not actionable(found[0].journal(), pipeline([], size=128))  # raised once: done
    ctx = context([found[0].journal()], [AFFINE])
    ctx.incumbent["pipeline"]["augment"]["image_size"] = 64
    ctx.runs_left = 2  # little budget left: cheap moves first, but the fix the errors call for before them
    agent = HeuristicAgent()
    edit = agent.engineer(agent.analyst(ctx), ctx, copy.deepcopy(ctx.incumbent["pipeline"]["augment"]), [])
    assert yaml.safe_load(edit.yaml)["image_size"] == 128 and edit.rationale.startswith("detail_pairs")


def test_rare_classes_wrong_without_balancing_ask_for_the_sampler():
    classes = [f"c{i}" for i in range(6)]
    y_true = np.concatenate([np.full(200, c) for c in range(4)] + [np.full(20, 4), np.full(20, 5)])
    y_pred = y_true.copy()
    y_pred[y_true >= 4] = 0  # the rare classes are always predicted as the commonest
    preds = {"classes": classes, "y_true": y_true.tolist(), "y_pred": y_pred.tolist()}
    glyphs = images_of(tasks.glyph, classes)
    found = diagnose(preds, glyphs, pipeline([]), channels=1)
    assert [f.rule for f in found] == ["imbalance"] and found[0].group == "trainer" and found[0].actionable
    assert not diagnose(preds, glyphs, pipeline([], balance="sampler"), 1)[0].actionable
    ctx = context([found[0].journal()], [])
    agent = HeuristicAgent()
    choice = agent.analyst(ctx)
    edit = agent.engineer(choice, ctx, copy.deepcopy(ctx.incumbent["pipeline"]["trainer"]), [])
    assert choice.group == "trainer" and yaml.safe_load(edit.yaml)["balance"] == "sampler"


def test_findings_outlive_the_incumbent_that_showed_them():
    events = [{"event": "diagnosed", "round": 1, "of_round": 0, "errors": None,
               "findings": [{"rule": "mirror_pairs", "group": "augment", "edit": "remove HorizontalFlip",
                             "evidence": "", "pairs": [["a", "b"]], "share_of_errors": 0.4, "actionable": True}]},
              {"event": "diagnosed", "round": 2, "of_round": 1, "errors": None, "findings": []}]
    assert [f["rule"] for f in State(events).findings()] == ["mirror_pairs"]


def test_the_probe_reads_training_images_only(tmp_path):
    from improve.config.compose import compose_config
    from improve.data.datamodule import ImageDataModule
    from improve.refine.diagnoses import training_images

    cfg = compose_config("config", ["dataset=digits", f"paths.cache_dir={tmp_path}"], tmp_path / "run")
    held = training_images(cfg.dataset, None, tmp_path)(32)
    splits = ImageDataModule(cfg.dataset, 32, tmp_path, None, batch_size=8).prepare()
    x, y = splits.cached.arrays("train")
    train = set(map(bytes, np.asarray(x[splits.train]).reshape(len(splits.train), -1)))
    others = set(map(bytes, np.asarray(x[np.r_[splits.val, splits.test]]).reshape(-1, x[0].size)))
    rows = set(map(bytes, held.images.reshape(len(held.images), -1)))
    assert rows <= train and not rows & (others - train)
    assert len(held.images) <= 60 * len(held.class_names)


@pytest.mark.slow
def test_the_loop_journals_each_rounds_errors_and_what_they_say_and_the_expert_acts_on_it(tmp_path, compose_loop,
                                                                                           monkeypatch):
    """The real loop on digits: round 0's decision carries its confusion summary, a `diagnosed` event comes before
    round 1 is proposed (here the imbalance rule is made to fire), round 1 acts on it, and report.md says so."""
    import io

    from rich.console import Console

    import improve.refine.loop as loop_module
    from improve.journal.log import Journal
    from improve.refine.diagnoses import Finding
    from improve.refine.loop import Refinement

    seen = []

    def fires(predictions, images, pipeline_, channels):
        seen.append((len(predictions["y_true"]), images(32).images.shape[1:]))
        return [Finding("imbalance", "trainer", "balance: sampler", "the rare classes are right 10% of the time")]
    monkeypatch.setattr(loop_module, "diagnose", fires)
    out = io.StringIO()
    cfg = compose_loop("loop.rounds=1")
    Refinement(cfg, tmp_path / "run", console=Console(file=out, width=200)).run()
    events = Journal(tmp_path / "run" / "journal.jsonl").events()
    first = next(e for e in events if e["event"] == "decision")
    errors = first["summary"]["errors"]
    assert errors["images"] == seen[0][0] and errors["pairs"] and len(errors["worst"]) == 5
    kinds = [e["event"] for e in events]
    assert kinds.index("diagnosed") < [i for i, e in enumerate(events) if e["event"] == "proposal"][1]
    diagnosed = next(e for e in events if e["event"] == "diagnosed")
    assert diagnosed["of_round"] == 0 and diagnosed["findings"][0]["rule"] == "imbalance"
    second = [e for e in events if e["event"] == "proposal"][1]
    assert second["group"] == "trainer" and second["pipeline"]["trainer"]["balance"] == "sampler"
    assert second["rationale"].startswith("imbalance:")
    assert "the errors of round 0 say imbalance" in out.getvalue()
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## What the errors said" in report and "round 1 acted on it" in report
    assert (tmp_path / "run" / "pairs.png").is_file()
