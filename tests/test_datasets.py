"""Every dataset loader on files in its real layout; splits, messy data and the decode-once cache."""
import logging
from pathlib import Path

import numpy as np
import pytest

from improve.config.paths import project_path
from improve.data import cache as cache_module
from improve.data.datamodule import ImageDataModule
from improve.data.sources import DatasetMissingError, open_source
from improve.pipeline.train import train

from . import fixtures
from .conftest import run_cli


def prepare(cfg):
    dm = ImageDataModule(cfg.dataset, cfg.augment.image_size, Path(cfg.paths.cache_dir),
                         project_path(cfg.dataset.path), batch_size=8)
    return dm, dm.prepare()


def check_splits(splits, n_train_total, own_test=None):
    s = splits
    assert len(set(s.train) & set(s.val)) == 0
    if s.test_split == "train":
        assert len(set(s.test) & (set(s.train) | set(s.val))) == 0
        assert len(s.train) + len(s.val) + len(s.test) == n_train_total
    else:
        assert len(s.test) == own_test
        assert len(s.train) + len(s.val) == n_train_total


def test_digits_is_real_sklearn_data_with_stratified_splits(compose_cfg):
    dm, s = prepare(compose_cfg("dataset=digits"))
    x, y = s.cached.arrays("train")
    assert x.shape == (1797, 32, 32, 1) and x.dtype == np.uint8
    check_splits(s, 1797)
    for part in (s.train, s.val, s.test):  # stratified: every digit in every split, in proportion
        counts = np.bincount(y[part], minlength=10)
        assert counts.min() > 0 and counts.max() / counts.min() < 1.3
    dm2, s2 = prepare(compose_cfg("dataset=digits"))
    assert np.array_equal(s.val, s2.val) and np.array_equal(s.test, s2.test)  # seeded
    _, s3 = prepare(compose_cfg("dataset=digits", "dataset.seed=1"))
    assert not np.array_equal(s.val, s3.val)


def test_val_fraction_never_moves_the_test_split(compose_cfg):
    _, a = prepare(compose_cfg("dataset=digits", "dataset.val_fraction=0.1"))
    _, b = prepare(compose_cfg("dataset=digits", "dataset.val_fraction=0.3"))
    assert np.array_equal(a.test, b.test)


def test_k_folds_partition_train_and_validation_stratified_and_never_touch_the_test_split(compose_cfg):
    _, plain = prepare(compose_cfg("dataset=digits"))
    folds = [prepare(compose_cfg("dataset=digits", "dataset.folds=3", f"dataset.fold={i}"))[1] for i in range(3)]
    rest = np.sort(np.concatenate([plain.train, plain.val]))
    assert np.array_equal(np.sort(np.concatenate([f.val for f in folds])), rest)  # every image validated once
    _, y = plain.cached.arrays("train")
    for f in folds:
        assert np.array_equal(f.test, plain.test) and not set(f.train) & set(f.val)
        assert np.array_equal(np.sort(np.concatenate([f.train, f.val])), rest)
        counts = np.bincount(y[f.val], minlength=10)
        assert counts.max() - counts.min() <= 3  # stratified


def test_more_folds_than_the_smallest_class_has_images_is_refused_with_the_fix(compose_cfg):
    cfg = compose_cfg("dataset=shapes", "dataset.classes=4", "dataset.samples_per_class=4", "dataset.folds=5")
    with pytest.raises(ValueError, match=r"dataset.folds=5.*use loop.folds=\d or fewer"):
        prepare(cfg)


def test_shapes_are_generated_seeded_with_k_orientation_classes(compose_cfg):
    cfg = compose_cfg("dataset=shapes", "dataset.classes=4", "dataset.samples_per_class=10")
    _, s = prepare(cfg)
    x, y = s.cached.arrays("train")
    assert x.shape == (40, 32, 32, 1) and sorted(set(y)) == [0, 1, 2, 3]
    assert s.class_names == ["0deg", "90deg", "180deg", "270deg"]
    assert x.max() == 255 and x.mean() > 5  # something is drawn


def test_a_flip_changes_the_orientation_class_of_a_shape():
    from improve.data.sources import render_shape

    up = render_shape("arrow", 30, 64, 0.7, 0, 0)
    mirrored = render_shape("arrow", 330, 64, 0.7, 0, 0)  # angles count from "up": a mirror maps t to -t
    assert np.abs(up[:, ::-1].astype(int) - mirrored).mean() < 3  # hflip of the 30 deg class is the 330 deg class
    assert np.abs(up.astype(int) - mirrored).mean() > 10


def test_folder_with_messy_files_skips_and_lists_them(compose_cfg, tmp_path, caplog):
    info = fixtures.messy_folder(tmp_path / "imgs")
    with caplog.at_level(logging.WARNING):
        _, s = prepare(compose_cfg("dataset=folder", f"dataset.path={tmp_path / 'imgs'}"))
    x, y = s.cached.arrays("train")
    assert s.class_names == ["cat", "dog", "fox"]
    assert len(y) == info["good"] and x.shape[1:] == (32, 32, 3)
    assert sorted(s.cached.skipped) == sorted(str(p) for p in info["bad"])
    warning = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warning) == 1 and all(str(p) in warning[0] for p in info["bad"])
    check_splits(s, info["good"])


def test_folder_strict_mode_refuses_unreadable_files(compose_cfg, tmp_path):
    fixtures.messy_folder(tmp_path / "imgs")
    with pytest.raises(ValueError, match="truncated.jpg"):
        prepare(compose_cfg("dataset=folder", f"dataset.path={tmp_path / 'imgs'}", "dataset.strict=true",
                            "augment.image_size=24"))


def test_folder_grayscale_only_is_inferred_as_one_channel_and_test_folder_is_used(compose_cfg, tmp_path):
    rng = np.random.default_rng(0)
    for root, n in (("train", 6), ("test", 2)):
        for c in ("a", "b"):
            (tmp_path / root / c).mkdir(parents=True)
            for i in range(n):
                fixtures._img(rng, (20, 30), "L").save(tmp_path / root / c / f"{i}.png")
    _, s = prepare(compose_cfg("dataset=folder", f"dataset.path={tmp_path / 'train'}",
                               f"dataset.test_path={tmp_path / 'test'}"))
    assert s.cached.channels == 1 and s.test_split == "test"
    check_splits(s, 12, own_test=4)


def test_kaggle_csv_layout_loads_with_string_labels(compose_cfg, tmp_path):
    fixtures.kaggle_csv(tmp_path / "kw")
    _, s = prepare(compose_cfg("dataset=kitchenware", f"dataset.path={tmp_path / 'kw'}"))
    assert s.class_names == ["cup", "fork", "glass"] and not s.cached.skipped
    check_splits(s, 30)


def test_kaggle_dataset_missing_names_competition_folder_and_files(compose_cfg, tmp_path):
    cfg = compose_cfg("dataset=kitchenware", f"dataset.path={tmp_path / 'nothing'}")
    with pytest.raises(DatasetMissingError) as err:
        open_source(cfg.dataset, Path(cfg.dataset.path))
    msg = str(err.value)
    assert "kitchenware-classification" in msg and str(tmp_path / "nothing") in msg
    assert "train.csv" in msg and "images/" in msg


@pytest.fixture
def no_md5(monkeypatch):
    """Generated files have other checksums than the published ones; the layout is what is tested."""
    from torchvision.datasets import cifar, svhn

    monkeypatch.setattr(cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(svhn, "check_integrity", lambda *a, **k: True)


def test_cifar10_through_torchvision_uses_the_official_test_set(compose_cfg, tmp_path, no_md5):
    fixtures.cifar10(tmp_path / "c10")
    _, s = prepare(compose_cfg("dataset=cifar10", f"dataset.path={tmp_path / 'c10'}", "dataset.download=false"))
    x, _ = s.cached.arrays("train")
    assert x.shape == (100, 32, 32, 3) and s.class_names[0] == "airplane"
    check_splits(s, 100, own_test=20)


def test_svhn_through_torchvision_maps_label_10_to_digit_0(compose_cfg, tmp_path, no_md5):
    fixtures.svhn(tmp_path / "svhn")
    _, s = prepare(compose_cfg("dataset=svhn", f"dataset.path={tmp_path / 'svhn'}", "dataset.download=false"))
    _, y = s.cached.arrays("train")
    assert sorted(set(y)) == list(range(10))
    check_splits(s, 40, own_test=40)


def test_torchvision_dataset_offline_names_the_expected_files(compose_cfg, tmp_path):
    cfg = compose_cfg("dataset=cifar10", f"dataset.path={tmp_path / 'none'}", "dataset.download=false")
    with pytest.raises(DatasetMissingError, match="data_batch_1..5, test_batch"):
        prepare(cfg)


def test_tinyimagenet_layout_with_val_annotations_as_test_split(compose_cfg, tmp_path):
    fixtures.tinyimagenet(tmp_path / "tin")
    _, s = prepare(compose_cfg("dataset=tinyimagenet", f"dataset.path={tmp_path / 'tin'}"))
    assert s.class_names == ["goldfish", "European fire salamander", "bullfrog"]
    _, ty = s.cached.arrays("test")
    assert list(ty) == [0, 1, 2] * 3
    check_splits(s, 18, own_test=9)


def test_dsprites_default_is_vtab_orientation_all_shapes_16_bins_reading_only_the_sampled_images(compose_cfg,
                                                                                                   tmp_path):
    fixtures.dsprites(tmp_path / "ds")
    _, s = prepare(compose_cfg("dataset=dsprites", f"dataset.path={tmp_path / 'ds'}", "dataset.samples_per_class=5",
                               "augment.image_size=64"))
    x, y = s.cached.arrays("train")
    assert len(s.class_names) == 16 and np.bincount(y).tolist() == [5] * 16
    latents = np.load(tmp_path / "ds" / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")["latents_classes"]
    read = [fixtures.sprite_index(img[:, :, 0]) for img in x]
    assert [int(latents[i, 3] // 2.5) for i in read] == y.tolist()  # VTAB: label = floor(orientation index / 2.5)
    assert len({latents[i, 1] for i in read}) == 3  # squares, ellipses and hearts


def test_dsprites_hearts_only_is_an_option(compose_cfg, tmp_path):
    fixtures.dsprites(tmp_path / "ds")
    _, s = prepare(compose_cfg("dataset=dsprites", f"dataset.path={tmp_path / 'ds'}", "dataset.classes=4",
                               "dataset.sprites=heart", "dataset.samples_per_class=20", "augment.image_size=64"))
    x, y = s.cached.arrays("train")
    latents = np.load(tmp_path / "ds" / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")["latents_classes"]
    assert np.bincount(y).tolist() == [20, 20, 20, 20]  # 40 orientations x 3 hearts / 4 bins = 30 each, 20 sampled
    assert {int(latents[fixtures.sprite_index(img[:, :, 0]), 1]) for img in x} == {2}


def test_cifar10c_trains_on_cifar10_and_tests_on_one_standard_corruption_per_image_at_the_severity(
        compose_cfg, tmp_path, no_md5):
    fixtures.cifar10(tmp_path / "c10")
    fixtures.cifar10c(tmp_path / "c10c", per_severity=40)
    _, s = prepare(compose_cfg("dataset=cifar10c", f"dataset.path={tmp_path / 'c10'}",
                               f"dataset.corrupted_path={tmp_path / 'c10c'}", "dataset.severity=1"))
    tx, ty = s.cached.arrays("test")
    assert s.test_split == "test" and len(tx) == 40 and len(s.train) + len(s.val) == 100
    assert ty.tolist() == (np.arange(40) % 10).tolist()
    assert set(tx[:, 0, 1, 0].tolist()) == {1}  # severity 1's block
    assert set(tx[:, 0, 0, 0].tolist()) <= set(range(15)) and len(set(tx[:, 0, 0, 0].tolist())) > 5  # standard ones
    _, s5 = prepare(compose_cfg("dataset=cifar10c", f"dataset.path={tmp_path / 'c10'}",
                                f"dataset.corrupted_path={tmp_path / 'c10c'}", "dataset.severity=5"))
    assert set(s5.cached.arrays("test")[0][:, 0, 1, 0].tolist()) == {5}


def test_cifar10c_missing_names_the_files_and_where_they_come_from(compose_cfg, tmp_path, no_md5):
    fixtures.cifar10(tmp_path / "c10")
    fixtures.cifar10c(tmp_path / "c10c")
    (tmp_path / "c10c" / "fog.npy").unlink()
    cfg = compose_cfg("dataset=cifar10c", f"dataset.path={tmp_path / 'c10'}",
                      f"dataset.corrupted_path={tmp_path / 'c10c'}")
    with pytest.raises(DatasetMissingError, match="missing fog.npy.*zenodo.org/record/2535967"):
        prepare(cfg)


def test_second_load_reads_the_cache_without_decoding(compose_cfg, tmp_path, monkeypatch):
    fixtures.messy_folder(tmp_path / "imgs")
    cfg = compose_cfg("dataset=folder", f"dataset.path={tmp_path / 'imgs'}", "augment.image_size=20")
    _, first = prepare(cfg)

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_module, "_decode_file", no_decoding)
    monkeypatch.setattr(cache_module, "_write_split", no_decoding)
    monkeypatch.setattr(cache_module, "_infer_channels", no_decoding)  # not even the file headers
    _, second = prepare(cfg)
    assert second.cached.dir == first.cached.dir
    assert isinstance(second.cached.arrays("train")[0], np.memmap)
    monkeypatch.undo()
    (tmp_path / "imgs" / "cat" / "1.png").unlink(missing_ok=True)  # a changed dataset is a new cache entry
    (tmp_path / "imgs" / "cat" / "1.jpg").unlink(missing_ok=True)
    _, third = prepare(cfg)
    assert third.cached.dir != first.cached.dir


def test_training_on_a_messy_folder_succeeds_and_reports_skipped_files(compose_cfg, tmp_path):
    info = fixtures.messy_folder(tmp_path / "imgs")
    cfg = compose_cfg("dataset=folder", f"dataset.path={tmp_path / 'imgs'}", "model.name=test_resnet",
                      "trainer.batch_size=8", "augment.image_size=24")
    metrics = train(cfg)
    assert metrics["status"] == "ok", metrics["error"]
    assert sorted(metrics["dataset"]["skipped"]) == sorted(str(p) for p in info["bad"])


def test_missing_kaggle_dataset_exits_nonzero_with_an_actionable_message(tmp_path):
    proc = run_cli("improve.train", "dataset=kitchenware", f"paths.data_dir={tmp_path}", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "kitchenware-classification" in out and "train.csv" in out and str(tmp_path / "kitchenware") in out
