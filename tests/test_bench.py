"""The benchmarks run at toy size (so they cannot rot), and the flip claim holds."""
import io
import json

import pytest
from rich.console import Console

from improve.bench.cli import main
from improve.bench.speed import bench_flip
from improve.journal.log import Journal


def test_horizontal_flip_scores_clearly_lower_on_the_orientation_task(tmp_path):
    results = bench_flip(["model.name=test_resnet", "trainer.epochs=15", "dataset.samples_per_class=120"], tmp_path)
    no_flip, hflip = results["no_flip"]["test_acc"], results["hflip"]["test_acc"]
    assert no_flip > 0.75
    assert no_flip - hflip > 0.2  # a flip maps orientation t to -t: mirrored classes get each other's labels


def test_speed_benchmark_prints_ratio_and_cache_times(tmp_path, capsys):
    out = tmp_path / "speed.json"
    main(["speed", "--cache-images", "200", "--round-epochs", "1", "--repeats", "2", "--json", str(out), "trainer.epochs=2",
          "dataset.max_train=200", "model.name=test_resnet"])
    printed = capsys.readouterr().out
    assert "ratio" in printed and "cached load" in printed and "process start to first batch" in printed
    assert "the loop's own work per round" in printed
    results = json.loads(out.read_text())
    tp = results["throughput"]
    assert tp["raw_images_per_s"] > 0 and tp["train_images_per_s"] > 0
    assert len(tp["ratios"]) == 2 and len(tp["raw_series"]) == 3 and tp["ratio"] in tp["ratios"]
    cache = results["cache"]
    assert cache["images"] == 200 and cache["cached_load_s"] < cache["first_load_s"]  # no decoding the second time
    r = results["round"]
    assert r["training_s"] > 0 and r["startup_s"] > 0 and 0 < r["overhead_share"] < 1
    assert results["loop"]["rounds"] == 3 and results["loop"]["loop_work_per_round_s"] > 0
    assert 0 < results["loop"]["share_of_round"] < 1 and "of that round" in printed


def test_strategy_study_at_toy_size_writes_table_plot_json_and_resumes(tmp_path, monkeypatch):
    from improve.bench import strategies

    out = tmp_path / "study"
    result = strategies.study(["digits"], ["iterative", "zero_shot_long", "random"], [0], runs=2, epochs=1, out=out,
                              extra=["dataset.max_train=150"], console=Console(file=io.StringIO()))
    raw = json.loads((out / "results.json").read_text())
    assert set(raw) == {"digits/zero_shot/0", "digits/zero_shot_long/0", "digits/iterative/0",
                        "digits/random/0"}  # zero_shot: the searches' base
    assert len(raw["digits/zero_shot/0"]["vals"]) == 1 and len(raw["digits/iterative/0"]["vals"]) == 2
    assert all(u["test_acc"] is not None and u["selected_val"] is not None and u["train_s"] > 0 for u in raw.values())
    long = Journal(out / "digits" / "zero_shot_long" / "seed0" / "journal.jsonl").events()
    assert next(e for e in long if e["event"] == "proposal")["pipeline"]["trainer"]["epochs"] == 2  # 2 runs x 1
    table = (out / "table.md").read_text()
    assert "| digits | random | 2.0 |" in table and "optimism" in table and "± " in result["table"]
    assert "test acc at equal training s" in table
    head = next(x for x in table.splitlines() if x.startswith("| strategy | final test acc |"))
    row = next(x for x in table.splitlines() if x.startswith("| zero_shot_long |"))
    assert head.split("|")[6].count(" / ") == row.split("|")[6].count(" / ") == len(strategies.SPENT) - 1
    assert all(u["incumbents"] and abs(u["incumbents"][-1][1] - u["test_acc"]) < 1e-4 for u in raw.values())
    assert (out / "strategies.png").stat().st_size > 5000
    assert not list(out.rglob("*.ckpt"))  # finished units keep their results, not their checkpoints

    # results.json alone resumes a study elsewhere (a study run in pieces, its results committed between them): the
    # searches start from the zero_shot unit's base kept in it, its run folder gone
    assert raw["digits/zero_shot/0"]["base"]["pipeline"]["trainer"]["epochs"] == 1
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "results.json").write_text(json.dumps({k: v for k, v in raw.items() if k != "digits/random/0"}))
    resumed = strategies.study(["digits"], ["random"], [0], runs=2, epochs=1, out=moved,
                               extra=["dataset.max_train=150"], console=Console(file=io.StringIO()))
    assert resumed["results"]["digits/random/0"]["test_acc"] is not None
    assert not (moved / "digits" / "zero_shot").exists()  # not run again

    def no_more_training(*args, **kwargs):
        raise AssertionError("a finished unit ran again")

    monkeypatch.setattr(strategies, "run_unit", no_more_training)
    again = strategies.study(["digits"], ["iterative", "random"], [0], runs=2, epochs=1, out=out, extra=[],
                             console=Console(file=io.StringIO()))
    assert again["results"] == raw
    assert {u["budget"] for u in raw.values()} == {"runs"}
    with pytest.raises(ValueError, match=r"digits/iterative/0 ran with --budget runs.*--budget seconds"):
        strategies.study(["digits"], ["iterative"], [0], runs=2, epochs=1, out=out, extra=[],
                         console=Console(file=io.StringIO()), budget="seconds")  # its loop would be compared as if


def test_the_suites_give_the_loops_the_long_runs_seconds_and_refuse_units_run_under_runs(tmp_path):
    out = tmp_path / "quick"
    out.mkdir()
    ran = {"orientation/zero_shot_long/0": {"budget": "runs"}, "orientation/iterative/0": {"budget": "runs"}}
    (out / "results.json").write_text(json.dumps(ran))
    with pytest.raises(ValueError, match=r"orientation/iterative/0 ran with --budget runs, this study asks for "
                                         r"--budget seconds"):
        main(["strategies", "--suite", "quick", "--out", str(out)])  # refused before anything trains
    assert not (out / "data").exists()


def test_each_study_seed_draws_its_own_split_unless_one_is_pinned(tmp_path):
    from improve.bench.strategies import _loop_cfg

    assert _loop_cfg("shapes_hard", 2, 3, tmp_path, tmp_path / "c", []).dataset.seed == 2
    assert _loop_cfg("shapes_hard", 2, 3, tmp_path, tmp_path / "c", ["dataset.seed=0"]).dataset.seed == 0


def test_equal_seconds_takes_the_incumbent_each_strategy_had_at_the_long_runs_seconds():
    from improve.bench.strategies import equal_seconds, test_at_seconds

    results = {"d/zero_shot_long/0": {"train_s": 30.0, "test_acc": 0.7, "incumbents": [[30.0, 0.7]]},
               "d/iterative/0": {"train_s": 80.0, "test_acc": 0.9, "incumbents": [[5.0, 0.4], [25.0, 0.6], [70.0, 0.9]]}}
    t = equal_seconds(results, "d", 0)
    assert t == 30.0
    assert test_at_seconds(results["d/iterative/0"], t) == 0.6  # what it had after 30 s, not its final 0.9
    assert test_at_seconds(results["d/iterative/0"], 1.0) == 0.4  # even the first took longer: its first
    assert test_at_seconds(results["d/iterative/0"], 500.0) == 0.9


@pytest.mark.slow
def test_levers_benchmark_at_toy_size_runs_both_arms(tmp_path):
    from improve.bench.levers import bench_levers

    result = bench_levers("digits", [0], runs=2, epochs=1, out=tmp_path, extra=["dataset.max_train=150"],
                          console=Console(file=io.StringIO()))
    assert set(result["results"]) == {"with levers/0", "without levers/0"}
    assert "| with levers |" in result["table"] and "| without levers |" in result["table"]
    assert result["results"]["with levers/0"]["ensemble"] in ("kept", "reverted", "skipped")
    assert result["results"]["without levers/0"]["ensemble"] is None


def test_paired_difference_has_a_t_interval_and_says_how_many_seeds_a_width_needs():
    from improve.bench.paired import paired

    iv = paired([0.90, 0.92, 0.91, 0.93, 0.89], [0.88, 0.89, 0.90, 0.90, 0.88])
    assert iv.mean == pytest.approx(0.02) and iv.n == 5
    assert iv.low == pytest.approx(0.02 - 2.776 * iv.sd / 5 ** 0.5, abs=1e-4) and iv.excludes_zero
    assert "*" in iv.text() and iv.seeds_for(iv.half_width) == 5
    assert iv.seeds_for(iv.half_width / 2) > 10  # half the width: about four times the seeds, and more
    assert paired([0.9, None], [0.8, 0.7]).n == 1 and paired([None], [0.5]) is None
    two = paired([0.95, 0.80], [0.90, 0.90])  # two seeds, far apart: t(1) = 12.7 makes the interval wide
    need = two.seeds_for(0.02)
    assert need > 2 and 2.1 * two.sd / need ** 0.5 > 0.02 * 0.9  # roughly (t sd / 0.02)^2 with t near 2
    assert not paired([0.9, 0.8], [0.8, 0.9]).excludes_zero


@pytest.mark.slow
def test_suite_study_pairs_every_strategy_with_the_long_run_by_seed_and_says_where_seconds_went(tmp_path):
    from improve.bench import strategies

    out = tmp_path / "study"
    result = strategies.study(["colour"], ["zero_shot_long", "iterative"], [0, 1], runs=2, epochs=1, out=out,
                              extra=["dataset.max_train=60"], console=Console(file=io.StringIO()))
    assert (out / "data" / "colour" / "train").is_dir()  # the task, written in its class-folder layout
    raw = result["results"]
    assert all(set(u["seconds"]) == set(strategies.SPENT) and u["seconds"]["kept"] > 0 for u in raw.values())
    table = result["table"]
    assert "### colour (a first pipeline can go wrong here: the hue is the label" in table
    assert "| iterative vs | Δ, equal runs | Δ, equal s |" in table and "| zero_shot_long |" in table
    line = next(x for x in table.splitlines() if x.startswith("| iterative |") and "[" in x)
    assert line.count("[") == 2  # the interval at equal runs and at equal seconds
    assert "iterative - zero_shot_long: half-width" in table
    assert (out / "paired.png").stat().st_size > 5000


def test_validation_benchmark_prints_the_seconds_of_a_bounded_check_and_of_one_in_process(capsys):
    from improve.bench.cli import main

    main(["validation", "--repeats", "1"])
    printed = capsys.readouterr().out
    assert "in the loop's process" in printed and "in its bounded child" in printed and "median of 3" in printed
