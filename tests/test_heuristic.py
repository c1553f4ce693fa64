"""The offline expert's rules: label-safe pipelines, curve reading, no repeats, moving on."""
import copy

from improve.agents import Choice, Context, HeuristicAgent
from improve.agents.moves import relative_cost
from improve.config.diff import canonical, diff
from improve.config.schema import group_defaults
from improve.pipeline.record import curve_summary
from improve.refine.edits import check_group, parse_edit

DEFAULTS = {g: group_defaults(g) for g in ("augment", "model", "trainer")}


def profile(description="", channels=1, side=32, reachable=False, name="x"):
    return {"name": name, "description": description, "num_classes": 8, "channels": channels, "train_images": 800,
            "native_size": {"min": [side, side], "median": [side, side], "max": [side, side]},
            "pixel_mean": [0.2] * channels, "pixel_std": [0.3] * channels, "pretrained_reachable": reachable}


def ctx(p, diagnosis="ok", rounds=(), r=1, pipeline=None):
    summary = {"diagnosis": diagnosis, "train_val_gap": 0.2, "train_acc": 0.99}
    return Context(profile=p, incumbent={"round": 0, "pipeline": pipeline or DEFAULTS, "val_acc": 0.8,
                                         "summary": summary}, rounds=list(rounds), round=r, seed=0)


def names(augment):
    return [t["name"] for t in augment["train_transforms"]]


def architect(p):
    proposal = HeuristicAgent().architect(ctx(p), copy.deepcopy(DEFAULTS))
    return {g: check_group(g, parse_edit(t, g), DEFAULTS[g]) for g, t in proposal.pipeline.items()}


def test_orientation_task_never_gets_a_flip_or_a_rotation_in_any_round():
    p = profile("2D shapes; the label is the orientation")
    agent, pipeline = HeuristicAgent(), architect(p)
    tried = []
    for r in range(1, 15):
        for diagnosis in ("overfit", "ok", "underfit"):
            edit = agent.engineer(Choice("augment", "x", diagnosis), ctx(p, diagnosis, r=r, pipeline=pipeline),
                                  pipeline["augment"], tried)
            augment = check_group("augment", parse_edit(edit.yaml, "augment"), pipeline["augment"])
            tried.append(augment)
            assert not {"HorizontalFlip", "VerticalFlip", "Transpose"} & set(names(augment))
            affine = [t for t in augment["train_transforms"] if t["name"] == "Affine"]
            assert all(t["rotate"] == 0 for t in affine)
    assert "HorizontalFlip" not in names(pipeline["augment"])


def test_photos_get_flips_crops_and_a_pretrained_model_when_weights_are_reachable():
    pipeline = architect(profile("kitchen items", channels=3, side=300, reachable=True))
    assert {"RandomResizedCrop", "HorizontalFlip"} <= set(names(pipeline["augment"]))
    assert pipeline["model"]["pretrained"] and pipeline["augment"]["image_size"] == 224
    offline = architect(profile("kitchen items", channels=3, side=300, reachable=False))
    assert not offline["model"]["pretrained"] and offline["augment"]["image_size"] == 128


def test_tiny_grayscale_images_get_no_flip_even_without_a_description():
    assert "HorizontalFlip" not in names(architect(profile(channels=1, side=8))["augment"])


def test_curve_reading_overfit_underfit_unstable():
    def metrics(train, val, status="ok", error_type=None):
        epochs = [{"epoch": i, "train_acc": t, "val_acc": v, "train_loss": 1, "val_loss": 1}
                  for i, (t, v) in enumerate(zip(train, val))]
        return {"status": status, "error_type": error_type, "epochs": epochs, "best_val_acc": max(val or [0]),
                "timings": {"fit_s": 1}}

    assert curve_summary(metrics([0.9, 0.99, 1.0, 1.0], [0.7, 0.8, 0.8, 0.8]))["diagnosis"] == "overfit"
    assert curve_summary(metrics([0.3, 0.5, 0.6, 0.7], [0.3, 0.5, 0.6, 0.7]))["diagnosis"] == "underfit"
    assert curve_summary(metrics([], [], "failed", "NonFiniteLossError"))["diagnosis"] == "unstable"


def test_analyst_follows_the_diagnosis_and_moves_on_from_a_stale_group():
    agent, p = HeuristicAgent(), profile()
    assert agent.analyst(ctx(p, "overfit")).group == "augment"
    assert agent.analyst(ctx(p, "underfit")).group == "trainer"
    stale = [{"round": 1, "group": "augment", "decision": "reverted", "summary": {"diagnosis": "overfit"}},
             {"round": 2, "group": "augment", "decision": "reverted", "summary": {"diagnosis": "overfit"}}]
    choice = agent.analyst(ctx(p, "overfit", stale, r=3))
    assert choice.group == "model" and "stopped paying off" in choice.feedback
    diverged = [{"round": 1, "group": "trainer", "decision": "failed", "summary": {"diagnosis": "unstable"}}]
    choice = agent.analyst(ctx(p, "ok", diverged, r=2))
    assert choice.group == "trainer" and choice.diagnosis == "unstable"
    edit = agent.engineer(choice, ctx(p, "ok", diverged, r=2), DEFAULTS["trainer"], [])
    new = check_group("trainer", parse_edit(edit.yaml, "trainer"), DEFAULTS["trainer"])
    assert new["lr"] < DEFAULTS["trainer"]["lr"] and new["grad_clip"] > 0


def test_engineer_never_proposes_a_tried_config_and_is_deterministic():
    agent, p = HeuristicAgent(), profile()
    for group in ("augment", "model", "trainer"):
        tried, seen = [], {canonical(DEFAULTS[group])}
        for r in range(12):
            c = ctx(p, "ok", r=r)
            edit = agent.engineer(Choice(group, "x", "ok"), c, DEFAULTS[group], tried)
            again = HeuristicAgent().engineer(Choice(group, "x", "ok"), c, DEFAULTS[group], list(tried))
            assert edit.yaml == again.yaml
            values = check_group(group, parse_edit(edit.yaml, group), DEFAULTS[group])
            assert canonical(values) not in seen, f"{group} round {r} repeated a config"
            seen.add(canonical(values))
            tried.append(values)


def test_engineer_adds_each_transform_at_most_once_and_the_diff_names_the_addition():
    p = profile("everyday objects", channels=3, side=32)
    agent, augment, tried = HeuristicAgent(), architect(p)["augment"], []
    for r in range(1, 10):  # every proposal kept, so each one builds on the last
        pipeline = {**DEFAULTS, "augment": augment}
        edit = agent.engineer(Choice("augment", "x", "overfit"), ctx(p, "overfit", r=r, pipeline=pipeline), augment, tried)
        new = check_group("augment", parse_edit(edit.yaml, "augment"), augment)
        assert len(names(new)) == len(set(names(new))), f"round {r}: {names(new)}"
        tried.append(new)
        augment = new
    coarse = {"name": "CoarseDropout", "p": 0.5}
    assert diff({"train_transforms": [coarse]}, {"train_transforms": [coarse, coarse]}) == ["+CoarseDropout"]
    assert diff({"train_transforms": [coarse, {"name": "Affine"}]},
                {"train_transforms": [{"name": "Affine"}, coarse]}) == ["transforms: reordered"]


def _ctx(p, diagnosis, headroom, seconds=10.0, seconds_left=None, runs_left=None, pipeline=None, rounds=()):
    summary = {"diagnosis": diagnosis, "headroom": headroom, "train_acc": 0.4 if headroom == "far" else 0.99,
               "train_val_gap": 0.02, "seconds": seconds}
    return Context(profile=p, incumbent={"round": 0, "pipeline": pipeline or DEFAULTS, "val_acc": 0.4,
                                         "summary": summary}, rounds=list(rounds), round=1, seed=0, max_epochs=15,
                   runs_left=runs_left, seconds_left=seconds_left)


def _edit(group, c, current=None, agent=None):
    current = current or DEFAULTS[group]
    edit = (agent or HeuristicAgent()).engineer(Choice(group, "x", c.incumbent["summary"]["diagnosis"]), c, current, [])
    return edit, diff(current, check_group(group, parse_edit(edit.yaml, group), current))


def test_curve_summary_says_how_far_the_ceiling_is():
    def metrics(train, val):
        return {"status": "ok", "best_val_acc": max(val), "timings": {"fit_s": 1.0},
                "epochs": [{"epoch": i, "train_acc": t, "val_acc": v, "val_loss": 1.0} for i, (t, v) in
                           enumerate(zip(train, val))]}
    assert curve_summary(metrics([0.3, 0.45, 0.6], [0.3, 0.4, 0.5]))["headroom"] == "far"  # low train accuracy
    assert curve_summary(metrics([0.8, 0.9, 0.95], [0.6, 0.7, 0.8]))["headroom"] == "far"  # still climbing fast
    assert curve_summary(metrics([0.97, 0.99, 0.99], [0.90, 0.91, 0.91]))["headroom"] == "near"
    assert curve_summary(metrics([0.5, 0.6, 0.7], [0.96, 0.98, 0.99]))["headroom"] == "near"  # 1% error left


def test_far_from_the_ceiling_the_expert_changes_several_values_of_one_group_coherently():
    p = profile("noisy shapes; the label is the orientation")
    for group in ("trainer", "augment", "model"):
        edit, changed = _edit(group, _ctx(p, "underfit", "far"))
        assert len(changed) >= 2, (group, changed, edit.rationale)
    _, changed = _edit("trainer", _ctx(p, "underfit", "far"))
    assert any("warm_start" in c for c in changed) and any("epochs" in c for c in changed)


def test_near_the_ceiling_the_expert_takes_one_small_step():
    p = profile("noisy shapes; the label is the orientation")
    for diagnosis in ("ok", "overfit", "underfit"):
        for group in ("trainer", "augment", "model"):
            edit, changed = _edit(group, _ctx(p, diagnosis, "near"))
            assert len(changed) == 1, (diagnosis, group, changed, edit.rationale)


def test_the_expert_never_proposes_a_round_longer_than_the_time_left():
    p = profile()
    for group in ("trainer", "augment", "model"):
        for diagnosis, headroom in (("underfit", "far"), ("ok", "near"), ("overfit", "near")):
            c = _ctx(p, diagnosis, headroom, seconds=10.0, seconds_left=11.0)
            tried, current = [], DEFAULTS[group]
            for _ in range(6):
                edit = HeuristicAgent().engineer(Choice(group, "x", diagnosis), c, current, tried)
                new = check_group(group, parse_edit(edit.yaml, group), current)
                assert relative_cost(group, current, new) * 10.0 <= 11.0, (group, diagnosis, diff(current, new))
                tried.append(new)


def test_with_little_budget_left_the_cheapest_moves_come_first():
    p = profile()
    moves = HeuristicAgent().moves(_ctx(p, "underfit", "near", runs_left=1), "model", DEFAULTS["model"], "underfit")
    costs = [relative_cost("model", DEFAULTS["model"], m.make(copy.deepcopy(DEFAULTS["model"]))) for m in moves]
    assert costs == sorted(costs)


def test_a_group_whose_change_paid_off_gets_the_next_round_and_a_warm_started_model_is_settled():
    p = profile()
    kept = [{"round": 1, "group": "augment", "decision": "kept", "summary": {"diagnosis": "underfit"}}]
    assert HeuristicAgent().analyst(_ctx(p, "underfit", "far", rounds=kept)).group == "augment"
    trainer_kept = [{**kept[0], "group": "trainer"}]
    assert HeuristicAgent().analyst(_ctx(p, "overfit", "near", rounds=trainer_kept)).group == "augment"
    warm = {**DEFAULTS, "trainer": {**DEFAULTS["trainer"], "warm_start": True}}
    stale = [{"round": i, "group": "trainer", "decision": "reverted", "summary": {}} for i in (1, 2)]
    assert HeuristicAgent().analyst(_ctx(p, "underfit", "far", pipeline=warm, rounds=stale)).group == "augment"


def test_once_rounds_warm_start_the_model_engineer_keeps_the_weights_and_changes_dropout_first():
    p = profile()
    warm = {**DEFAULTS, "trainer": {**DEFAULTS["trainer"], "warm_start": True}}
    for diagnosis in ("underfit", "overfit", "ok"):
        edit, changes = _edit("model", _ctx(p, diagnosis, "far", pipeline=warm))
        assert changes and all("drop" in c for c in changes), (diagnosis, changes)
    _, cold = _edit("model", _ctx(p, "underfit", "far"))  # not settled: capacity first
    assert any("name" in c for c in cold)


def test_images_are_never_upscaled_past_twice_their_native_size():
    from improve.agents.moves import augment_moves

    at_64 = {**DEFAULTS["augment"], "image_size": 64}
    small = [m.make(dict(at_64))["image_size"] for m in augment_moves(_ctx(profile(side=32), "ok", "near"), at_64, "ok")]
    assert max(small) == 64  # 32 px shapes: 64 px is as far as it goes
    large = [m.make(dict(at_64))["image_size"] for m in augment_moves(_ctx(profile(side=200), "ok", "near"), at_64, "ok")]
    assert 128 in large


def test_without_levers_the_expert_never_reaches_for_ema_tta_or_randaugment():
    p, agent = profile(), HeuristicAgent(levers=False)
    for group in ("trainer", "augment"):
        for diagnosis in ("ok", "overfit"):
            tried, current = [], DEFAULTS[group]
            for _ in range(8):
                edit = agent.engineer(Choice(group, "x", diagnosis), _ctx(p, diagnosis, "near"), current, tried)
                new = check_group(group, parse_edit(edit.yaml, group), current)
                assert not new.get("ema_decay") and not new.get("tta")
                assert "RandAugment" not in [t["name"] for t in new.get("train_transforms", [])]
                tried.append(new)


def test_while_continuing_training_keeps_paying_the_expert_continues_again_whatever_the_curves_say():
    p = profile()
    warm = {**DEFAULTS, "trainer": {**DEFAULTS["trainer"], "warm_start": True, "epochs": 3}}
    paid = [{"round": 2, "group": "trainer", "decision": "kept", "delta": 0.04, "summary": {"diagnosis": "overfit"}}]
    c = _ctx(p, "overfit", "near", pipeline=warm, rounds=paid)
    choice = HeuristicAgent().analyst(c)
    assert choice.group == "trainer" and choice.diagnosis == "underfit" and "+0.040" in choice.feedback
    edit = HeuristicAgent().engineer(choice, c, warm["trainer"], [])
    new = check_group("trainer", parse_edit(edit.yaml, "trainer"), warm["trainer"])
    assert new["warm_start"] and new["lr"] == float(f"{warm['trainer']['lr'] * 0.7:.3g}"), edit.rationale
    assert new["epochs"] == c.max_epochs
    small = [{**paid[0], "delta": 0.01}]  # a small gain: the curves decide again
    assert HeuristicAgent().analyst(_ctx(p, "overfit", "near", pipeline=warm, rounds=small)).group == "augment"
    cold = [{**paid[0], "group": "augment"}]  # not a continuation of training
    assert HeuristicAgent().analyst(_ctx(p, "overfit", "near", pipeline=warm, rounds=cold)).group == "augment"


def test_a_stuck_loop_ablates_one_augmentation_at_a_time_and_not_while_rounds_pay():
    agent, p = HeuristicAgent(), profile(channels=3)
    pipeline = copy.deepcopy(DEFAULTS)
    pipeline["augment"]["train_transforms"] = [{"name": "Affine", "scale": [0.9, 1.1], "p": 0.5},
                                               {"name": "HorizontalFlip", "p": 0.5}]
    stuck = [{"round": r, "group": g, "decision": d, "rationale": "x", "summary": {"diagnosis": "ok"}}
             for r, g, d in ((1, "trainer", "reverted"), (2, "model", "pruned"), (3, "trainer", "reverted"))]
    choice = agent.analyst(ctx(p, "ok", stuck, r=4, pipeline=pipeline))
    assert choice.group == "augment" and choice.ablate == "Affine" and choice.feedback.startswith("ablation:")
    edit = agent.engineer(choice, ctx(p, "ok", stuck, r=4, pipeline=pipeline), pipeline["augment"], [])
    ablated = check_group("augment", parse_edit(edit.yaml, "augment"), pipeline["augment"])
    assert names(ablated) == ["HorizontalFlip"] and edit.rationale.startswith("ablation: without Affine")
    after = stuck + [{"round": 4, "group": "augment", "decision": "pruned", "rationale": edit.rationale,
                      "summary": {"diagnosis": "ok"}}]
    assert agent.analyst(ctx(p, "ok", after, r=5, pipeline=pipeline)).ablate == "HorizontalFlip"  # the next one
    paying = stuck[:2] + [{**stuck[2], "decision": "kept"}]
    assert agent.analyst(ctx(p, "ok", paying, r=4, pipeline=pipeline)).ablate is None
    found = ctx(p, "ok", stuck, r=4, pipeline=pipeline)
    found.findings = [{"rule": "imbalance", "group": "trainer", "edit": "balance", "evidence": "e",
                       "actionable": True, "share_of_errors": 0.5}]
    assert agent.analyst(found).ablate is None  # what the errors say comes first
