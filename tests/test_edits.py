"""A corpus of bad Engineer outputs: each rejected with its own message, nothing trained or executed."""

import pytest
import yaml

from improve.config.schema import group_defaults
from improve.refine.edits import EditRejected, check_group, parse_edit
from improve.refine.preflight import preflight, validate_edit

PIPELINE = {g: group_defaults(g) for g in ("augment", "model", "trainer")}
PIPELINE["model"]["name"] = "test_resnet"
MAX_EPOCHS = 40


def validate(text: str, group: str, **constraints):
    return validate_edit(text, group, PIPELINE, num_classes=10, channels=1, constraints=constraints,
                         max_epochs=MAX_EPOCHS)


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


CORPUS = [
    ("empty", "trainer", "   \n", ["no YAML"]),
    ("not YAML", "trainer", "lr: [0.1\nepochs: {", ["not valid YAML"]),
    ("prose", "trainer", "I think we should lower the learning rate.", ["expected a YAML mapping", "str"]),
    ("another group's keys", "trainer", "lr: 0.01\nmodel: {name: resnet18}", ["only the 'trainer' group", "model"]),
    ("wrapped other group", "augment", "trainer: {lr: 0.1}", ["only the 'augment' group", "trainer"]),
    ("dataset key", "model", "name: resnet18\ndataset: {path: /etc}", ["only the 'model' group", "dataset"]),
    ("unknown key", "trainer", "learning_rate: 0.01", ["trainer.learning_rate", "'trainer' keys are"]),
    ("wrong type", "trainer", "epochs: lots", ["trainer.epochs", "lots"]),
    ("out of range", "trainer", "lr: -3", ["trainer.lr=-3", "must be >"]),
    ("unknown timm model", "model", "name: resnet_9000", ["model.name='resnet_9000'", "close matches"]),
    ("unknown transform", "augment", "train_transforms: [{name: HorizontalFlipp, p: 0.5}]",
     ["HorizontalFlipp", "HorizontalFlip"]),
    ("bad transform parameter", "augment", "train_transforms: [{name: Affine, rotate: sideways}]",
     ["train_transforms[0]", "Affine", "rotate"]),
    ("_target_", "trainer", "_target_: os.system\ncommand: touch {marker}", ["_target_", "not allowed"]),
    ("nested _target_", "augment", "train_transforms: [{name: Affine, _target_: os.system}]", ["_target_"]),
    ("interpolation", "model", "name: ${oc.env:HOME}", ["interpolations", "environment"]),
    ("python tag", "trainer", "lr: !!python/object/apply:os.system ['touch {marker}']", ["YAML tags", "python"]),
    ("exhausting image size", "augment", "image_size: 200000", ["augment.image_size=200000", "<= 1024"]),
    ("num_classes from the dataset", "model", "name: test_resnet\nnum_classes: 3", ["model.num_classes"]),
    ("not an editable group", "hardware", "devices: 8", ["not agent-editable"]),
    # seen from a real model, or in a held-out corpus of hostile replies
    ("kwargs timm answers with KeyError", "model", "name: test_resnet\nkwargs: {act_layer: nonexistent_act}",
     ["cannot be built", "KeyError", "nonexistent_act"]),
    ("kwargs timm answers with AssertionError", "model", "name: resnet10t\nkwargs: {output_stride: 3}",
     ["cannot be built", "AssertionError"]),
    ("global_pool timm rejects", "model", "name: test_resnet\nkwargs: {global_pool: x}", ["cannot be built"]),
    ("kwarg the model does not take", "model", "name: test_resnet\nkwargs: {embed_dim: 64}", ["embed_dim"]),
    ("YAML alias bomb", "augment", ALIAS_BOMB, ["anchors and aliases"]),
    ("giant model", "model", "name: vit_base_patch16_224\nkwargs: {embed_dim: 8192, depth: 16, num_heads: 16}",
     ["parameters", "GiB", "more than this machine"]),
    ("epochs over the loop's cap", "trainer", "epochs: 1000", ["trainer.epochs=1000", "loop.max_epochs=40"]),
    ("unknown optimiser", "trainer", "optimizer: opt", ["trainer.optimizer='opt'", "adamw"]),
    ("empty mean", "augment", "mean: []", ["augment.mean", "at least 1"]),
    ("mean of the wrong length", "augment", "mean: [0.5, 0.5]\nstd: [0.2, 0.2]", ["2 values", "1 channel"]),
    ("mean and std of different lengths", "augment", "mean: [0.5]\nstd: [0.2, 0.2, 0.2]", ["one per channel"]),
    ("zero std", "augment", "std: [0.0]", ["augment.std[0]=0.0", "must be >"]),
    ("min_lr over lr", "trainer", "lr: 0.001\nmin_lr: 0.01", ["trainer.min_lr=0.01", "below trainer.lr=0.001"]),
    ("warm-up longer than training", "trainer", "epochs: 5\nwarmup_epochs: 8", ["trainer.warmup_epochs=8"]),
    ("a thousand transforms", "augment", "train_transforms: [" + ", ".join(["{name: Blur}"] * 1000) + "]",
     ["1000 entries", "at most 16"]),
    ("a path on the user's disk", "model", "name: test_resnet\npretrained_file: /etc/shadow",
     ["model.pretrained_file", "user's setting"]),
    ("huge reply", "trainer", "lr: 0.01\n# " + "x" * 30_000, ["characters long"]),
]


@pytest.mark.parametrize("name,group,text,words", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_engineer_output_is_rejected_with_a_specific_message(name, group, text, words, tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(EditRejected) as err:
        validate(text.replace("{marker}", str(marker)), group)
    for w in words:
        assert w in str(err.value), f"{name}: {err.value}"
    assert not marker.exists()  # nothing the agent wrote was executed


def test_each_bad_output_gets_its_own_kind():
    kinds = {}
    for name, group, text, _ in CORPUS:
        with pytest.raises(EditRejected) as err:
            validate(text.replace("{marker}", "/nonexistent"), group)
        kinds[name] = err.value.kind
    assert kinds["empty"] == "empty" and kinds["not YAML"] == "not_yaml" and kinds["prose"] == "not_mapping"
    assert kinds["another group's keys"] == "other_group" and kinds["unknown key"] == "unknown_key"
    assert kinds["wrong type"] == "wrong_type" and kinds["out of range"] == "out_of_range"
    assert kinds["unknown timm model"] == "unknown_model" and kinds["unknown transform"] == "unknown_transform"
    assert kinds["bad transform parameter"] == "bad_transform_params" and kinds["_target_"] == "forbidden_target"
    assert kinds["interpolation"] == "interpolation" and kinds["python tag"] == "yaml_tag"
    assert kinds["YAML alias bomb"] == "yaml_alias" and kinds["giant model"] == "too_large"
    assert kinds["epochs over the loop's cap"] == "over_limit" and kinds["unknown optimiser"] == "unknown_optimizer"
    assert kinds["a path on the user's disk"] == "user_setting" and kinds["huge reply"] == "too_long"
    assert kinds["kwargs timm answers with KeyError"] == "preflight" and kinds["min_lr over lr"] == "out_of_range"


def test_the_alias_bomb_is_refused_quickly_without_building_it():
    import time

    start = time.perf_counter()
    with pytest.raises(EditRejected):
        parse_edit(ALIAS_BOMB, "augment")
    assert time.perf_counter() - start < 1.0  # 9 ** 9 strings if it were expanded


@pytest.mark.parametrize("text", ["train_transforms: " + "[" * 3000 + "]" * 3000,  # flow style
                                  "train_transforms:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 60))])
def test_deep_nesting_is_refused_as_it_opens_not_scanned_to_the_end(text):
    with pytest.raises(EditRejected) as err:
        parse_edit(text, "augment")  # scanning 3,000 levels takes seconds (PyYAML tracks keys per level)
    assert err.value.kind == "too_deep" and "over 32 levels" in str(err.value)
    nested = "train_transforms:\n- {name: OneOf, p: 0.5, transforms: [{name: Blur, blur_limit: [3, 5]}]}"
    assert parse_edit(nested, "augment")["train_transforms"][0]["transforms"][0]["blur_limit"] == [3, 5]


def test_the_giant_model_is_counted_without_allocating_its_weights():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(EditRejected):
        validate("name: vit_base_patch16_224\nkwargs: {embed_dim: 8192, depth: 16, num_heads: 16}", "model")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 500  # its fp32 weights alone would be about 48 GiB


def test_a_valid_partial_edit_keeps_the_other_values_and_passes_preflight():
    candidate, pf = validate("lr: 0.01\nepochs: 3", "trainer")
    assert candidate["trainer"]["lr"] == 0.01 and candidate["trainer"]["epochs"] == 3
    assert candidate["trainer"]["optimizer"] == PIPELINE["trainer"]["optimizer"]
    assert candidate["model"] == PIPELINE["model"]
    assert pf.num_params > 0 and pf.latency_ms > 0


def test_wrapped_group_reply_is_accepted():
    assert parse_edit(yaml.safe_dump({"trainer": {"lr": 0.02}}), "trainer") == {"lr": 0.02}


def test_constraints_reject_before_training_and_say_by_how_much():
    with pytest.raises(EditRejected) as err:
        validate("name: resnet18", "model", max_params=1_000_000)
    assert err.value.kind == "constraint" and "max_params=1,000,000" in str(err.value) and "x)" in str(err.value)
    with pytest.raises(EditRejected) as err:
        validate("name: test_resnet", "model", max_latency_ms=1e-6)
    assert "max_latency_ms" in str(err.value) and "ms" in str(err.value)


def test_preflight_catches_a_transform_that_breaks_at_runtime():
    pipeline = {**PIPELINE, "augment": check_group("augment", {
        "train_transforms": [{"name": "RandomCrop", "height": 16, "width": 16}]}, PIPELINE["augment"])}
    with pytest.raises(EditRejected) as err:
        preflight(pipeline, 10, 1)
    assert err.value.kind == "preflight" and "image_size" in str(err.value)
