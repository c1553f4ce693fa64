"""Every config of every group composes against the typed schema and builds; bad values fail early."""
import re
from dataclasses import MISSING as DC_MISSING
from dataclasses import fields
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ValidationError

from improve.config.fields import check_ranges, field_docs
from improve.config.paths import CONFIG_DIR, PROJECT_ROOT
from improve.config.schema import EDITABLE_GROUPS, GROUP_SCHEMAS, PathsConfig, RefineConfig, TrainConfig, group_defaults
from improve.pipeline.augment import build_train_transform, check_transform_output
from improve.pipeline.models import build_model
from improve.pipeline.train import validate

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
        t = build_train_transform(cfg.augment.train_transforms)
        check_transform_output(t, cfg.augment.image_size, 3)
    if group == "model":
        model = build_model(**{**cfg.model, "pretrained": False}, num_classes=5, in_chans=1)
        assert model.num_classes == 5


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_into_a_whole_pipeline(compose_cfg, recipe):
    cfg = compose_cfg(f"recipe={recipe}")
    OmegaConf.resolve(cfg)
    validate(cfg)
    assert cfg.recipe == recipe
    t = build_train_transform(cfg.augment.train_transforms)
    check_transform_output(t, cfg.augment.image_size, 3)
    build_model(**{**cfg.model, "pretrained": False}, num_classes=3, in_chans=3)


def test_at_least_three_recipes_ship():
    assert len(RECIPES) >= 3


@pytest.mark.parametrize("path", sorted(p for g in [*EDITABLE_GROUPS, "hardware"] for p in (CONFIG_DIR / g).glob("*.yaml"))
                         + sorted((PROJECT_ROOT / "recipes").glob("*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_tunable_value_has_a_comment(path: Path):
    for line in path.read_text().splitlines():
        if re.match(r"^\s*[A-Za-z_.]+:\s*\S", line) and not line.lstrip().startswith(("#", "-", "defaults")) \
                and "@package" not in line and not line.rstrip().endswith(":"):
            assert "#" in line, f"{path.name}: '{line.strip()}' has no comment saying what it does"


REQUIRED = {"dataset.name", "dataset.source"}  # a dataset config must say what it is; nothing else is required


def test_schema_gives_help_and_a_default_for_every_field_but_the_datasets_identity():
    for group, schema in GROUP_SCHEMAS.items():
        for f in fields(schema):
            assert f.metadata.get("help"), f"{group}.{f.name} has no help text"
            has_default = f.default is not MISSING and not (f.default is DC_MISSING and f.default_factory is DC_MISSING)
            assert has_default == (f"{group}.{f.name}" not in REQUIRED), f"{group}.{f.name}: default {f.default!r}"
        assert set(field_docs(schema)) == {f.name for f in fields(schema)}


def default_mismatches(group: str, values: dict) -> list:
    """Keys whose value in a YAML copy differs from the schema's default (or that the schema lacks)."""
    defaults = group_defaults(group)
    return sorted(k for k in set(values) | set(defaults) if values.get(k, "<missing>") != defaults.get(k, "<missing>"))


def yaml_values(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path))


COPIES = [(g, CONFIG_DIR / g / "default.yaml") for g in ("augment", "model", "trainer", "hardware")] + [
    ("llm", CONFIG_DIR / "llm" / "auto.yaml")]


@pytest.mark.parametrize("group,path", COPIES, ids=[f"{g}:{p.name}" for g, p in COPIES])
def test_each_default_yaml_holds_exactly_the_schema_defaults(group, path):
    assert default_mismatches(group, yaml_values(path)) == []


def test_the_run_settings_in_config_yaml_and_train_yaml_are_the_schema_defaults():
    refine, train = yaml_values(CONFIG_DIR / "config.yaml"), yaml_values(CONFIG_DIR / "train.yaml")
    for group in ("loop", "constraints"):
        assert default_mismatches(group, refine[group]) == [], group
    for config, schema in ((refine, RefineConfig), (train, TrainConfig)):
        for f in fields(schema):
            if f.name in config and f.default is not DC_MISSING:  # plain values; groups are compared above
                assert config[f.name] == f.default, f"{schema.__name__}.{f.name}"
        paths = OmegaConf.to_container(OmegaConf.structured(PathsConfig))
        assert {**config["paths"], "output_dir": None} == {**paths, "output_dir": None}


def test_a_default_that_differs_from_the_schema_is_caught():
    values = yaml_values(CONFIG_DIR / "trainer" / "default.yaml")
    assert default_mismatches("trainer", {**values, "lr": values["lr"] * 2}) == ["lr"]
    assert default_mismatches("trainer", {k: v for k, v in values.items() if k != "epochs"}) == ["epochs"]


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
