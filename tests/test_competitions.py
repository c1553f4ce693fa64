"""Kaggle competitions exactly as they ship: train from the real layout with no override but its path, then
predict on the competition's own sample submission and get back its header, its ids in order, its label encoding."""
import csv
import io

import pytest
from rich.console import Console

from improve.data.layout import check_layout
from improve.pipeline.train import train
from improve.results.predict import predict

from . import fixtures
from .conftest import run_cli


def train_cli(name, data, run, cache):
    proc = run_cli("improve.train", f"dataset={name}", f"dataset.path={data}", f"hydra.run.dir={run}",
                   f"paths.cache_dir={cache}", "hardware=cpu", "hardware.progress_bar=false", "trainer.epochs=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kitchenware", "cassava", "animals4"])
def test_a_competition_trains_from_its_layout_and_predict_reproduces_its_sample_submission(name, tmp_path):
    comp = fixtures.kaggle_competition(tmp_path / name, name)
    run = train_cli(name, tmp_path / name, tmp_path / "run", tmp_path / "cache")
    out = tmp_path / "submission.csv"
    summary = predict(run, comp["sample"], out, console=Console(file=io.StringIO()))
    rows = list(csv.reader(open(out)))
    assert rows[0] == comp["header"] and [r[0] for r in rows[1:]] == comp["ids"]
    assert summary["predicted"] == len(comp["ids"]) and {r[1] for r in rows[1:]} <= comp["labels"]
    # a deleted test image: the command fails and names it, no short file
    (comp["test_dir"] / (comp.get("id_format", "{}").format(comp["ids"][0]) + comp["ext"])).unlink()
    out.unlink()
    proc = run_cli("improve.predict", f"run={run}", f"input={comp['sample']}", f"output={out}")
    assert proc.returncode != 0 and comp["ids"][0] in proc.stderr and "missing=fill" in proc.stderr
    assert not out.exists()


def test_a_folder_of_test_images_gets_the_competitions_header_and_integer_labels(compose_cfg, tmp_path):
    comp = fixtures.kaggle_competition(tmp_path / "a4", "animals4")
    cfg = compose_cfg("dataset=animals4", f"dataset.path={tmp_path / 'a4'}")
    metrics = train(cfg)
    assert metrics["status"] == "ok" and metrics["dataset"]["classes"] == ["cat", "deer", "dog", "horse"]
    (tmp_path / "run" / ".hydra").mkdir()
    from omegaconf import OmegaConf
    OmegaConf.save(cfg, tmp_path / "run" / ".hydra" / "config.yaml")
    out = tmp_path / "sub.csv"
    predict(tmp_path / "run", comp["test_dir"], out, console=Console(file=io.StringIO()))
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["ID", "Label"] and sorted(r[0] for r in rows[1:]) == sorted(comp["ids"])
    assert {r[1] for r in rows[1:]} <= {"0", "1", "2", "3"}


def test_arabic_letters_trains_from_its_real_layout_with_classes_in_numeric_order(compose_cfg, tmp_path):
    comp = fixtures.kaggle_competition(tmp_path / "ar", "arabic_letters")
    metrics = train(compose_cfg("dataset=arabic_letters", f"dataset.path={tmp_path / 'ar'}"))
    assert metrics["status"] == "ok", metrics.get("error")
    assert metrics["dataset"]["classes"] == comp["classes"] and metrics["dataset"]["channels"] == 1


def test_layout_check_counts_what_is_there_and_names_a_missing_test_image(compose_cfg, tmp_path):
    comp = fixtures.kaggle_competition(tmp_path / "cv", "cassava")
    cfg = compose_cfg("dataset=cassava", f"dataset.path={tmp_path / 'cv'}")
    report = check_layout(cfg)
    assert report.classes == ["0", "1", "2", "3", "4"] and sum(report.per_class.values()) == 24
    assert not report.problems and any("6 ids" in line for line in report.submission)
    (comp["test_dir"] / comp["ids"][2]).unlink()
    report = check_layout(cfg)
    assert report.problems and comp["ids"][2] in report.problems[0]


def test_layout_check_cli_names_the_expected_files_when_the_data_is_missing(tmp_path):
    proc = run_cli("improve.data", "dataset=animals4", f"dataset.path={tmp_path / 'none'}")
    assert proc.returncode == 1
    assert "train/<class name>/" in proc.stderr and "4-animal-classification" in proc.stderr
    fixtures.kaggle_competition(tmp_path / "a4", "animals4")
    proc = run_cli("improve.data", "dataset=animals4", f"dataset.path={tmp_path / 'a4'}",
                   f"paths.cache_dir={tmp_path / 'cache'}")
    assert proc.returncode == 0, proc.stderr
    assert "24 labelled images, 4 classes" in proc.stdout and "Sample_submission.csv, header ID,Label" in proc.stdout
