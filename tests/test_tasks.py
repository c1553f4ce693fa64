"""The study's task kinds: seeded, loadable through the ordinary folder and CSV sources, large evaluation splits,
and each has the property it is built to have."""
import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from improve.bench import tasks
from improve.bench.tasks import TASKS, TEXTURES, prepare
from improve.config.compose import compose_config
from improve.data.datamodule import ImageDataModule


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    for name in TASKS:
        prepare(name, root)
    return root


def load(suite: Path, name: str, seed: int = 0):
    cfg = compose_config("train", [*TASKS[name].overrides(suite), f"dataset.seed={seed}",
                                   f"paths.cache_dir={suite / 'cache'}"])
    dm = ImageDataModule(cfg.dataset, TASKS[name].dataset.get("image_size", 32), Path(cfg.paths.cache_dir),
                         Path(cfg.dataset.path), batch_size=8)
    return dm.prepare()


@pytest.mark.parametrize("name", sorted(TASKS))
def test_each_task_loads_through_its_layout_with_large_validation_and_test_splits(suite, name):
    splits = load(suite, name)
    assert len(splits.val) >= 990 and len(splits.test) >= 1950  # one image moves accuracy by 0.1% and 0.05%
    assert len(splits.train) <= 600
    assert splits.class_names == sorted(TASKS[name].classes) or splits.class_names == TASKS[name].classes
    other = load(suite, name, seed=1)
    assert not np.array_equal(splits.val, other.val)  # each study seed carves its own split
    assert np.array_equal(splits.test, other.test) or splits.test_split == "train"
    layout = "train.csv" if TASKS[name].layout == "csv" else "train"
    assert (suite / name / layout).exists()


def test_the_same_seed_writes_the_same_images_and_another_seed_others(tmp_path):
    a, b, c = (prepare("few_shot", tmp_path / d, seed=s) for d, s in (("a", 0), ("b", 0), ("c", 1)))
    assert tasks.fingerprint(a) == tasks.fingerprint(b) != tasks.fingerprint(c)
    stamp = (a / ".generated.json").stat().st_mtime_ns
    prepare("few_shot", tmp_path / "a", seed=0)
    assert (a / ".generated.json").stat().st_mtime_ns == stamp  # written once, then found


def test_orientation_a_mirror_image_is_another_class():
    left = tasks.draw(tasks.GLYPHS["arrow"], 32, 90, 0.7, 0, 0)  # bin 2 of 8: pointing left
    right = tasks.draw(tasks.GLYPHS["arrow"], 32, 270, 0.7, 0, 0)  # bin 6
    mirrored = np.asarray(left)[:, ::-1].astype(int)
    assert np.abs(mirrored - np.asarray(right)).mean() < 3 < np.abs(np.asarray(left, int) - np.asarray(right)).mean()


def test_fine_detail_textures_differ_at_64_px_and_are_one_grey_at_half_size():
    native = [tasks.texture(name).astype(float) for name in TEXTURES]
    assert len({t.tobytes() for t in native}) == len(TEXTURES)
    assert all(t.mean() == pytest.approx(127.5, abs=0.6) for t in native)  # brightness does not give them away
    halved = [t.reshape(6, 2, 6, 2).mean((1, 3)) for t in native]  # what a 2x downscale averages them into
    assert all(np.allclose(h, 127.5, atol=0.6) for h in halved)
    img = np.asarray(tasks.coded(1, np.random.default_rng(0)))
    assert img.shape == (64, 64) and (np.abs(np.diff(img.astype(int), axis=1)) > 200).sum() >= 100  # the checks


def test_imbalanced_rarest_class_has_twenty_times_fewer_images(suite):
    with open(suite / "imbalanced" / "train.csv") as fh:
        labels = [row["label"] for row in csv.DictReader(fh)]
    counts = sorted(np.unique(labels, return_counts=True)[1])
    assert counts[-1] / counts[0] == pytest.approx(20, rel=0.05)


def test_noisy_labels_thirty_percent_of_training_labels_are_wrong_and_the_test_labels_right(suite):
    truth = np.load(suite / "noisy_labels" / ".true_labels.npz")
    for part, share in (("train", 0.3), ("test", 0.0)):
        written = np.array([tasks.NAMES.index(p.parent.name) for p in sorted((suite / "noisy_labels" / part).rglob(
            "*.png"), key=lambda p: p.name)])
        assert np.mean(written != truth[part]) == pytest.approx(share, abs=0.03), part


def test_few_shot_trains_on_twelve_images_a_class(suite):
    splits = load(suite, "few_shot")
    _, labels = splits.cached.arrays("train")
    assert np.bincount(labels[splits.train]).tolist() == [12] * 10


def test_shifted_test_images_are_corrupted_and_the_training_images_are_not(suite):
    def flat_share(part):  # images whose brightness range the contrast corruption squeezed
        files = sorted((suite / "shifted_test" / part).rglob("*.png"))
        spans = [np.percentile(a, 99) - np.percentile(a, 1) for a in (np.asarray(Image.open(f), float) for f in files)]
        return np.mean(np.asarray(spans) < 120)

    assert flat_share("train") < 0.02 and 0.2 < flat_share("test") < 0.45


def test_colour_classes_differ_in_hue_and_look_alike_in_greyscale():
    luma = {label: [] for label in range(len(tasks.HUES))}
    for label in luma:
        rng = np.random.default_rng(label)
        for _ in range(60):
            img = np.asarray(tasks.coloured(label, rng), float)
            grey = np.asarray(Image.fromarray(img.astype(np.uint8)).convert("L"), float)
            luma[label].append(np.percentile(grey, 95))  # the glyph's brightness
    means = [np.mean(v) for v in luma.values()]
    assert max(means) - min(means) < 12  # greyscale cannot tell the classes apart
    rgb = [tasks.with_luma(h, 0.5) for h in tasks.HUES]
    assert len({tuple(np.round(c, 2)) for c in rgb}) == len(tasks.HUES)


def test_mirror_each_class_is_its_pairs_mirror_image_and_no_other_classes():
    from improve.refine.diagnoses import mirror_contrast

    rng = np.random.default_rng(0)
    images = [np.stack([np.asarray(tasks.chiral(c, rng), np.float32) for _ in range(40)]) for c in range(8)]
    pair = {c: next(d for d in range(8) if d != c and tasks.MIRROR_OF[d][0] == tasks.MIRROR_OF[c][0])
            for c in range(8)}
    for c in range(8):
        rest = np.concatenate([images[d] for d in range(8) if d not in (c, pair[c])])
        assert mirror_contrast(images[c], images[pair[c]], rest)["contrast"] >= 0.5
        other = next(d for d in range(8) if d not in (c, pair[c]))
        rest = np.concatenate([images[d] for d in range(8) if d not in (c, other)])
        assert mirror_contrast(images[c], images[other], rest)["contrast"] <= 0.2
    assert all(tasks.MIRROR_OF[c][1] != tasks.MIRROR_OF[pair[c]][1] for c in range(8))


def test_a_blind_task_has_no_description_and_a_name_that_tells_nothing(tmp_path):
    described = TASKS["mirror"].overrides(tmp_path)
    blind = TASKS["mirror"].overrides(tmp_path, described=False)
    assert any("mirror image" in o for o in described)
    assert "dataset.description=\"\"" in blind and not any("mirror" in o for o in blind if "name=" in o)
    assert [o for o in blind if "path=" in o] == [o for o in described if "path=" in o]
