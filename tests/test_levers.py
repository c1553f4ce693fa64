"""The levers real solutions use, each proven to change what trains: EMA, frozen head-first training, layer-wise lr
decay, class balancing, test-time augmentation; each key rejected when out of range."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import improve.pipeline.train as train_module
from improve.data.datamodule import ImageDataModule
from improve.pipeline.inference import Predictor, predict_split
from improve.pipeline.train import train
from improve.refine.edits import EditRejected

from . import fixtures
from .test_edits import validate

SMALL = ["dataset.max_train=300", "trainer.epochs=2"]


def test_ema_weights_differ_from_the_raw_weights_and_are_what_is_validated_and_saved(compose_cfg, tmp_path):
    cfg = compose_cfg(*SMALL, "trainer.ema_decay=0.9", "save_last=false")
    metrics = train(cfg)
    assert metrics["status"] == "ok", metrics.get("error")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    raw, ema = ckpt["current_model_state"], ckpt["state_dict"]
    assert any(not torch.equal(raw[k], ema[k]) for k in ema if k.startswith("net.") and ema[k].is_floating_point())
    val = predict_split(cfg, tmp_path / "run" / "checkpoints" / "best.ckpt", "val")
    assert val["acc"] == pytest.approx(metrics["best_val_acc"], abs=1e-6)  # the saved (EMA) weights scored val


def test_a_frozen_backbone_does_not_move_during_the_freeze_epochs(compose_cfg, monkeypatch):
    seen = {}

    class Watch(Callback):
        def on_train_start(self, trainer, pl_module):
            seen["start"] = {k: v.detach().clone() for k, v in pl_module.net.named_parameters()}

        def on_train_epoch_end(self, trainer, pl_module):
            seen[trainer.current_epoch] = {k: v.detach().clone() for k, v in pl_module.net.named_parameters()}

    real = train_module.lever_callbacks
    monkeypatch.setattr(train_module, "lever_callbacks", lambda t: real(t) + [Watch()])
    metrics = train(compose_cfg(*SMALL, "trainer.freeze_epochs=1"))
    assert metrics["status"] == "ok", metrics.get("error")
    head = {"fc.weight", "fc.bias"}  # resnet10t's classifier
    backbone = [k for k in seen["start"] if k not in head]
    assert all(torch.equal(seen["start"][k], seen[0][k]) for k in backbone)  # frozen in epoch 0
    assert not all(torch.equal(seen["start"][k], seen[0][k]) for k in head)  # the head learnt
    assert not all(torch.equal(seen[0][k], seen[1][k]) for k in backbone)  # everything trains in epoch 1


def test_layer_decay_gives_layers_nearer_the_input_smaller_learning_rates():
    import timm

    from improve.pipeline.optim import build_optimizer

    net = timm.create_model("resnet10t", num_classes=10, in_chans=1)
    flat = build_optimizer(net, "adamw", 1e-3, 0.05, 0.9)
    decayed = build_optimizer(net, "adamw", 1e-3, 0.05, 0.9, layer_decay=0.5)
    assert {g["lr"] for g in flat.param_groups} == {1e-3}
    scales = sorted({g.get("lr_scale", 1.0) for g in decayed.param_groups})
    assert len(scales) > 2 and scales[0] < 0.1 and scales[-1] == 1.0


def test_the_balanced_sampler_draws_every_class_about_equally_often(compose_cfg, tmp_path):
    root = tmp_path / "imbalanced"
    rng = np.random.default_rng(0)
    for name, n in (("common", 60), ("rare", 8)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            fixtures._img(rng, (24, 24)).save(root / name / f"{i}.png")
    cfg = compose_cfg("dataset=folder", f"dataset.path={root}")
    dm = ImageDataModule(cfg.dataset, 16, Path(cfg.paths.cache_dir), root, batch_size=8, balance="sampler")
    counts = dm.class_counts("train")
    assert counts[0] > 4 * counts[1]
    drawn = np.zeros(2, int)
    for _ in range(20):
        for _, y in dm.train_dataloader():
            drawn += np.bincount(y.numpy(), minlength=2)
    assert 0.8 < drawn[1] / drawn[0] < 1.25


def test_loss_balancing_weights_classes_by_inverse_frequency():
    from improve.pipeline.module import class_weights

    w = class_weights([60, 20, 0])
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == 0


def test_tta_changes_validation_predictions_and_is_what_validation_scores(compose_cfg, tmp_path):
    cfg = compose_cfg(*SMALL, "augment.tta=true", "save_val_predictions=true")
    metrics = train(cfg)
    assert metrics["status"] == "ok", metrics.get("error")
    saved = json.loads((tmp_path / "run" / "val_predictions.json").read_text())
    assert saved["acc"] == pytest.approx(metrics["best_val_acc"], abs=1e-6)  # selection saw the TTA scores
    predictor = Predictor(cfg, tmp_path / "run" / "checkpoints" / "best.ckpt")
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 1), dtype=np.uint8)
    with_tta = predictor.predict_arrays(images)
    predictor.tta = False
    assert not np.allclose(with_tta, predictor.predict_arrays(images))


def test_a_named_policy_trains_and_geometric_false_leaves_shapes_where_they_are(compose_cfg):
    from albumentations import Affine

    from improve.pipeline.augment import build_train_transform

    policy = build_train_transform([{"name": "TrivialAugment", "geometric": False}]).transforms[0]
    assert not any(isinstance(op, Affine) for op in policy.transforms)
    full = build_train_transform([{"name": "RandAugment", "num_ops": 2, "magnitude": 9}]).transforms[0]
    assert sum(isinstance(op, Affine) for op in full.transforms) == 5 and full.n == 2
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 1), dtype=np.uint8)
    assert any(not np.array_equal(full(image=image)["image"], image) for _ in range(5))
    metrics = train(compose_cfg(*SMALL, "augment.train_transforms=[{name: RandAugment, num_ops: 2, magnitude: 7}]"))
    assert metrics["status"] == "ok", metrics.get("error")


@pytest.mark.parametrize("group,text,words", [
    ("trainer", "ema_decay: 1.0", ["trainer.ema_decay=1.0", "< 1.0"]),
    ("trainer", "layer_decay: 0", ["trainer.layer_decay=0", "> 0"]),
    ("trainer", "freeze_epochs: 15", ["trainer.freeze_epochs=15", "below trainer.epochs=15"]),
    ("trainer", "balance: oversample", ["trainer.balance", "oversample", "sampler"]),
    ("augment", "tta: maybe", ["tta"]),
    ("augment", "train_transforms: [{name: RandAugment, magnitude: 12}]", ["magnitude=12", "0 to 10"]),
    ("augment", "train_transforms: [{name: RandAugment, num_ops: 40}]", ["num_ops=40", "1 to 13"]),
    ("augment", "train_transforms: [{name: TrivialAugment, num_ops: 2}]", ["num_ops", "accepts"]),
])
def test_every_lever_key_is_rejected_with_a_clear_message_when_out_of_range(group, text, words):
    with pytest.raises(EditRejected) as err:
        validate(text, group)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_crops_cut_from_training_images_cached_with_a_margin_while_evaluation_sees_image_size(compose_cfg):
    from improve.pipeline.augment import train_augment

    crop = "augment.train_transforms=[{name: RandomResizedCrop, size: [32, 32], scale: [0.5, 1.0], p: 0.5}]"
    cfg = compose_cfg(*SMALL, crop)
    geometry = train_augment(cfg.augment)
    assert geometry.input_size == 37  # 32 * crop_margin 1.15
    dm = ImageDataModule(cfg.dataset, 32, Path(cfg.paths.cache_dir), None, batch_size=16,
                         train_transform=geometry.transform, train_size=geometry.input_size)
    assert dm.dataset("train").images.shape[1:3] == (37, 37) and dm.dataset("val").images.shape[1:3] == (32, 32)
    x, _ = next(iter(dm.train_dataloader()))
    assert tuple(x.shape[2:]) == (32, 32)  # cropped (or, with p < 1, resized) to image_size
    assert train_augment(compose_cfg(*SMALL, crop, "augment.crop_margin=1.0").augment).input_size == 32
    assert train_augment(compose_cfg(*SMALL).augment).input_size == 32  # no crop: no margin
    metrics = train(cfg)
    assert metrics["status"] == "ok", metrics.get("error")


@pytest.mark.slow
@pytest.mark.parametrize("lever", ["trainer.ema_decay=0.99", "trainer.freeze_epochs=1", "trainer.layer_decay=0.8",
                                   "trainer.balance=sampler", "augment.tta=true", "hardware.compile=false",
                                   "trainer.lr_find=true"])
def test_each_lever_trains_from_the_command_line(lever, tmp_path, cache_dir):
    from .conftest import run_cli

    proc = run_cli("improve.train", "dataset=digits", lever, "trainer.epochs=2", "dataset.max_train=200",
                   "hardware.progress_bar=false", f"paths.cache_dir={cache_dir}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["best_val_acc"] is not None
