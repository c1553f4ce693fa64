"""What a person reads and ships from a run: report with plots, predictions, exported models."""
import csv
import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from improve.pipeline.inference import Predictor
from improve.refine.loop import Refinement
from improve.results import report
from improve.results.export import export
from improve.results.predict import predict

from .conftest import LOOP_FAST, compose


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One small refinement run on digits, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("outputs")
    cfg = compose("config", [*LOOP_FAST, "loop.rounds=1"], tmp / "run", tmp / "cache")
    result = Refinement(cfg, tmp / "run", console=Console(file=io.StringIO())).run()
    return tmp / "run", result


def write_test_split_as_pngs(run, folder):
    """The run's test images, as lossless files in class folders: what a user would have on disk."""
    predictions = json.loads((run / "test_predictions.json").read_text())
    predictor = Predictor.from_run(run)
    from improve.config.paths import project_path
    from improve.data.datamodule import ImageDataModule

    cfg = predictor.cfg
    splits = ImageDataModule(cfg.dataset, cfg.augment.image_size, project_path(cfg.paths.cache_dir),
                             None, 64).prepare()
    images, labels = splits.cached.arrays(splits.test_split)
    files = []
    for i in np.sort(splits.test):
        path = folder / f"{i}.png"
        Image.fromarray(images[i][:, :, 0]).save(path)
        files.append((path, int(labels[i])))
    return predictions, files


def test_report_regenerates_from_the_run_directory_alone_with_real_pictures(finished_run):
    run, result = finished_run
    for f in ["report.md", "rounds.png", "curves.png", "confusion.png"]:
        (run / f).unlink()
    report.main([str(run)])
    text = (run / "report.md").read_text()
    assert "| round | author | group |" in text and "| 1 | engineer |" in text
    assert f"accuracy {result['test_acc']:.4f}" in text and "| class | test images | accuracy |" in text
    for name in ("rounds.png", "curves.png", "confusion.png"):
        with Image.open(run / name) as img:
            assert img.size[0] > 200 and img.size[1] > 200
            assert np.asarray(img.convert("L")).std() > 5  # something is drawn


def test_predict_on_the_test_split_reproduces_the_reported_test_accuracy(finished_run, tmp_path):
    run, result = finished_run
    (tmp_path / "imgs").mkdir()
    predictions, files = write_test_split_as_pngs(run, tmp_path / "imgs")
    out = tmp_path / "submission.csv"
    summary = predict(run, tmp_path / "imgs", out, console=Console(file=io.StringIO()))
    rows = list(csv.DictReader(open(out)))
    assert summary["predicted"] == len(files) and list(rows[0]) == ["id", "label"]
    truth = {p.stem: predictions["classes"][label] for p, label in files}
    acc = np.mean([truth[r["id"]] == r["label"] for r in rows])
    assert acc == pytest.approx(result["test_acc"], abs=1e-4)
    tta = tmp_path / "tta.csv"
    predict(run, tmp_path / "imgs", tta, tta=True, probs=True, console=Console(file=io.StringIO()))
    header = next(csv.reader(open(tta)))
    assert header[:2] == ["id", "label"] and len(header) == 2 + len(predictions["classes"])


def test_predict_refuses_to_write_a_short_submission_and_fills_only_when_asked(finished_run, tmp_path):
    run, _ = finished_run
    (tmp_path / "images").mkdir()
    _, files = write_test_split_as_pngs(run, tmp_path / "images")
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    ids = [p.name for p, _ in files[:10]] + ["broken.png", "missing.png"]
    (tmp_path / "test.csv").write_text("Id,label\n" + "\n".join(f"{i},7" for i in ids) + "\n")
    out = tmp_path / "sub.csv"
    from improve.results.predict import IncompleteSubmission

    with pytest.raises(IncompleteSubmission, match="(?s)2 test image.*broken.png.*missing.png.*missing=fill"):
        predict(run, tmp_path / "test.csv", out, images=tmp_path / "images", console=Console(file=io.StringIO()))
    assert not out.exists() and "missing.png" in (tmp_path / "sub.csv.errors.txt").read_text()
    console = io.StringIO()
    summary = predict(run, tmp_path / "test.csv", out, images=tmp_path / "images", console=Console(file=console),
                      missing="fill")
    rows = list(csv.reader(open(out)))
    assert rows[0] == ["Id", "label"] and [r[0] for r in rows[1:]] == ids and rows[-1] == ["missing.png", "7"]
    assert summary["filled"] == 2 and "missing=fill: 2 missing or unreadable" in console.getvalue()


def test_exported_torchscript_and_onnx_agree_with_the_checkpoint(finished_run):
    run, _ = finished_run
    written = export(run)
    assert set(written) == {"torchscript", "onnx", "json", "recipe"}
    info = json.loads((run / "best" / "model.json").read_text())
    assert info["class_names"] == [str(i) for i in range(10)] and info["channels"] == 1
    predictor = Predictor.from_run(run)
    x = torch.rand(16, info["channels"], info["image_size"], info["image_size"]) * 255
    with torch.no_grad():
        expected = predictor.model(x).argmax(1)
        scripted = torch.jit.load(str(written["torchscript"]))(x).argmax(1)
    import onnxruntime as ort

    session = ort.InferenceSession(str(written["onnx"]))
    onnx_top1 = session.run(None, {"images": x.numpy()})[0].argmax(1)
    assert torch.equal(expected, scripted) and (onnx_top1 == expected.numpy()).all()


def test_exported_recipe_is_retrainable_with_improve_train(finished_run, tmp_path, cache_dir):
    run, _ = finished_run
    from improve.config.compose import compose_config
    from improve.pipeline.train import train

    (tmp_path / "recipe").mkdir()
    shutil.copy(run / "best" / "recipe.yaml", tmp_path / "recipe" / "my_best.yaml")
    cfg = compose_config("train", ["recipe=my_best", f"hydra.searchpath=[file://{tmp_path}]", "hardware=cpu",
                                   "hardware.progress_bar=false", "trainer.epochs=1", "dataset.max_train=200"],
                         tmp_path / "retrain", cache_dir)
    assert cfg.model.name == Predictor.from_run(run).cfg.model.name
    assert train(cfg)["status"] == "ok"
