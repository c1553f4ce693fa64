"""Every config of every group composes against the typed schema and builds; bad values fail early."""
import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from improve.augment import build_train_transform, check_transform_output
from improve.models import build_model
from improve.schema import EDITABLE_GROUPS, GROUP_SCHEMAS, check_ranges, field_docs
from improve.train import CONFIG_DIR, PROJECT_ROOT, validate

GROUPS = ["dataset", "augment", "model", "trainer", "hardware"]
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONFIG_DIR / g).glob("*.yaml"))]
RECIPES = sorted(p.stem for p in (PROJECT_ROOT / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_config_of_every_group_composes_and_validates(compose_cfg, group, option):
    overrides = [f"{group}={option}"]
    if option == "folder":
        overrides.append("dataset.path=/tmp/somewhere")
    cfg = compose_cfg(*overrides)
    OmegaConf.resolve(cfg)
    validate(cfg)
    if group == "augment":
        t = build_train_transform(cfg.augment)
        check_transform_output(t, cfg.augment.image_size, 3)
    if group == "model":
        model = build_model(OmegaConf.merge(cfg.model, {"pretrained": False}), num_classes=5, in_chans=1)
        assert model.num_classes == 5


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_into_a_whole_pipeline(compose_cfg, recipe):
    cfg = compose_cfg(f"recipe={recipe}")
    OmegaConf.resolve(cfg)
    validate(cfg)
    assert cfg.recipe == recipe
    t = build_train_transform(cfg.augment)
    check_transform_output(t, cfg.augment.image_size, 3)
    build_model(OmegaConf.merge(cfg.model, {"pretrained": False}), num_classes=3, in_chans=3)


def test_at_least_three_recipes_ship():
    assert len(RECIPES) >= 3


@pytest.mark.parametrize("path", sorted(p for g in [*EDITABLE_GROUPS, "hardware"] for p in (CONFIG_DIR / g).glob("*.yaml"))
                         + sorted((PROJECT_ROOT / "recipes").glob("*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_tunable_value_has_a_comment(path: Path):
    for line in path.read_text().splitlines():
        if re.match(r"^\s*[A-Za-z_.]+:\s*\S", line) and not line.lstrip().startswith(("#", "-", "defaults")) \
                and "@package" not in line and not line.rstrip().endswith(":"):
            assert "#" in line, f"{path.name}: '{line.strip()}' has no comment saying what it does"


def test_schema_gives_help_and_default_for_every_field():
    for group, schema in GROUP_SCHEMAS.items():
        for name, doc in field_docs(schema).items():
            assert doc["help"], f"{group}.{name} has no help text"


@pytest.mark.parametrize("override,words", [
    ("trainer.nonsense=1", ["nonsense"]),
    ("trainer.epochs=many", ["epochs", "many"]),
    ("model.drop_rate=high", ["drop_rate", "high"]),
    ("augment.image_size=[1,2]", ["image_size"]),
])
def test_unknown_key_or_wrong_type_fails_at_compose_time(compose_cfg, override, words):
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        compose_cfg(override)
    text = str(err.value) + str(err.value.__cause__)
    for w in words:
        assert w in text


@pytest.mark.parametrize("override,words", [
    ("model.name=resnet19", ["model.name", "resnet19", "resnet18"]),
    ("+augment.train_transforms=[{name: HorizonalFlip}]", ["HorizonalFlip", "HorizontalFlip"]),
    ("+augment.train_transforms=[{name: HorizontalFlip, p: 2}]", ["train_transforms[0]", "HorizontalFlip", "p"]),
    ("+augment.train_transforms=[{name: HorizontalFlip, prob: 0.5}]", ["prob", "accepts"]),
    ("+augment.train_transforms=[{p: 0.5}]", ["train_transforms[0]", "name"]),
    ("trainer.lr=-0.1", ["trainer.lr=-0.1", ">"]),
    ("trainer.scheduler=exponential", ["trainer.scheduler", "exponential", "cosine"]),
    ("augment.image_size=100000", ["augment.image_size=100000", "<= 1024"]),
    ("model.drop_rate=1.5", ["model.drop_rate=1.5"]),
    ("+model.num_classes=3", ["model.num_classes", "comes from the dataset"]),
    ("+trainer.epoch=3", ["trainer.epoch", "epochs"]),
])
def test_bad_value_fails_validation_naming_key_and_value(compose_cfg, override, words):
    cfg = compose_cfg(override.replace("+augment", "augment"))  # '+' adds keys past the schema: validate catches it
    with pytest.raises(ValueError) as err:
        validate(cfg)
    for w in words:
        assert w in str(err.value)


def test_range_check_reports_every_broken_rule():
    with pytest.raises(ValueError) as err:
        check_ranges("trainer", {"lr": 0.0, "epochs": 0, "momentum": 1.0})
    assert "trainer.lr=0.0" in str(err.value) and "trainer.epochs=0" in str(err.value)
    assert "trainer.momentum=1.0" in str(err.value)
