"""The Python front door, used the way README shows it: refine, predict, train one pipeline, load a run."""
import io

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

import improve
from improve.journal.log import Journal
from improve.refine.state import State

from .conftest import FAST, LOOP_FAST


def _images(tmp_path, n=3):
    files = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.fromarray((np.random.default_rng(i).random((8, 8)) * 255).astype("uint8")).save(path)
        files.append(path)
    return files


def test_refine_returns_a_finished_run_that_predicts_class_names(tmp_path, cache_dir):
    run = improve.fit("digits", [*LOOP_FAST, "loop.rounds=1", "llm=heuristic", f"paths.cache_dir={cache_dir}"],
                         run_dir=tmp_path / "run", console=Console(file=io.StringIO()))
    assert run.run_dir == tmp_path / "run" and 0 <= run.test_acc <= 1 and run.val_acc is not None
    assert State(Journal(run.run_dir / "journal.jsonl").events()).final["test_acc"] == run.test_acc  # the journal's
    labels = run.predict(_images(tmp_path))
    assert len(labels) == 3 and set(labels) <= set(run.classes) and run.classes == [str(d) for d in range(10)]
    probs = improve.load(run.run_dir).predict_proba(_images(tmp_path))
    assert probs.shape == (3, 10) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert [run.classes[i] for i in probs.argmax(1)] == labels


def test_train_one_trains_in_this_process_and_load_reads_the_training_run(tmp_path, cache_dir):
    metrics = improve.train_one([*FAST, "dataset.max_train=200", f"paths.cache_dir={cache_dir}"], tmp_path / "train")
    assert metrics["status"] == "ok" and (tmp_path / "train" / "metrics.json").is_file()
    run = improve.load(tmp_path / "train")
    assert run.val_acc == metrics["best_val_acc"] and len(run.predict(_images(tmp_path, 2))) == 2


def test_load_names_what_it_expected_and_predict_names_an_unreadable_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="journal.jsonl"):
        improve.load(tmp_path)
    Journal(tmp_path / "journal.jsonl").append("start", config={}, pinned={})
    with pytest.raises(ValueError, match="has not finished"):
        improve.load(tmp_path)


def test_an_unreadable_image_is_named(tmp_path, cache_dir):
    improve.train_one([*FAST, "dataset.max_train=200", f"paths.cache_dir={cache_dir}"], tmp_path / "train")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png"):
        improve.load(tmp_path / "train").predict([broken])
