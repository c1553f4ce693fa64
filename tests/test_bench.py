"""The benchmarks run at toy size (so they cannot rot), and the flip claim holds."""
import json

from improve.bench import bench_flip, main


def test_horizontal_flip_scores_clearly_lower_on_the_orientation_task(tmp_path):
    results = bench_flip(["model.name=test_resnet", "trainer.epochs=15", "dataset.samples_per_class=120"], tmp_path)
    no_flip, hflip = results["no_flip"]["test_acc"], results["hflip"]["test_acc"]
    assert no_flip > 0.75
    assert no_flip - hflip > 0.2  # a flip maps orientation t to -t: mirrored classes get each other's labels


def test_speed_benchmark_prints_ratio_and_cache_times(tmp_path, capsys):
    out = tmp_path / "speed.json"
    main(["speed", "--cache-images", "200", "--json", str(out), "trainer.epochs=2", "dataset.max_train=200",
          "model.name=test_resnet"])
    printed = capsys.readouterr().out
    assert "ratio" in printed and "cached load" in printed
    results = json.loads(out.read_text())
    assert results["throughput"]["raw_images_per_s"] > 0 and results["throughput"]["train_images_per_s"] > 0
    assert results["cache"]["images"] == 200 and results["cache"]["cached_load_s"] >= 0
