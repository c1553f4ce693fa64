"""Check a dataset's layout without training: what was found, what was skipped, what is missing where.

    python -m improve.data dataset=<name> [dataset.path=<folder>] [other dataset.* overrides]
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from improve.config.paths import project_path
from improve.data.cache import load_cached
from improve.data.inputs import list_inputs
from improve.data.sources import DatasetMissingError, open_source
from improve.data.splits import make_splits


@dataclass
class LayoutReport:
    """What a dataset config finds on disk."""

    name: str
    classes: List[str]
    per_class: Dict[str, int]  # training images (train + validation + carved test) per class
    channels: int
    native_size: Dict[str, List[int]]  # min/median/max [width, height] of the source images
    splits: Dict[str, int]  # images per split: train, val, test
    skipped: List[str]  # files that could not be read as images
    submission: List[str] = field(default_factory=list)  # what predict will find for the competition's test set
    problems: List[str] = field(default_factory=list)  # what a submission would lack

    def lines(self) -> List[str]:
        counts = ", ".join(f"{c} {n}" for c, n in self.per_class.items())
        low, mid, high = (self.native_size[k] for k in ("min", "median", "max"))
        out = [f"dataset '{self.name}': {sum(self.per_class.values())} labelled images, {len(self.classes)} classes, "
               f"{self.channels} channel(s)",
               f"  per class: {counts}",
               f"  source image sizes (w x h): min {low[0]}x{low[1]}, median {mid[0]}x{mid[1]}, "
               f"max {high[0]}x{high[1]}",
               f"  splits: train {self.splits['train']}, validation {self.splits['val']}, test {self.splits['test']}",
               f"  skipped (unreadable) files: {len(self.skipped)}"] + [f"    {f}" for f in self.skipped[:20]]
        out += [f"  {line}" for line in self.submission]
        out += [f"  problem: {p}" for p in self.problems]
        return out


def _submission(ds, root: Path) -> (List[str], List[str]):
    """The competition's test images and sample submission, as predict will read them."""
    found, problems = [], []
    test_dir = root / ds.test_image_dir if ds.get("test_image_dir") else None
    if test_dir is not None:
        if test_dir.is_dir():
            n = sum(1 for p in test_dir.iterdir() if p.is_file() and not p.name.startswith("."))
            found.append(f"test images: {n} files in {test_dir}")
        else:
            problems.append(f"no test image folder {test_dir} (dataset.test_image_dir={ds.test_image_dir})")
    if ds.get("sample_submission"):
        sample = root / ds.sample_submission
        if not sample.is_file():
            problems.append(f"no sample submission {sample} (dataset.sample_submission={ds.sample_submission})")
        else:
            try:  # read exactly as predict reads it: same CSV parsing, same image folder and file names
                inputs = list_inputs(sample, ds, None)
            except (FileNotFoundError, ValueError) as err:
                problems.append(str(err))
                return found, problems
            absent = [Path(path) for _, path in inputs.rows if not Path(path).is_file()]
            found.append(f"sample submission: {sample.name}, header {','.join(inputs.header)}, "
                         f"{len(inputs.rows)} ids, labels written as {ds.submission_labels}")
            if absent:
                problems.append(f"{len(absent)} id(s) of {sample.name} have no image in {absent[0].parent}, e.g. "
                                f"{', '.join(p.name for p in absent[:5])}")
    return found, problems


def check_layout(cfg) -> LayoutReport:
    """Load (and cache) the dataset of a composed train config as training would, and describe it.
    Raises DatasetMissingError, naming the files expected where, when the data is not there."""
    ds = cfg.dataset
    root = project_path(ds.path) if ds.get("path") else Path(".")
    source = open_source(ds, root)
    cached = load_cached(ds, source, cfg.augment.image_size, project_path(cfg.paths.cache_dir))
    splits = make_splits(ds, cached)
    _, labels = cached.arrays("train")
    counts = np.bincount(labels, minlength=len(cached.class_names))
    found, problems = _submission(ds, root) if ds.get("path") else ([], [])
    return LayoutReport(ds.name, cached.class_names, dict(zip(cached.class_names, counts.tolist())),
                        cached.channels, cached.native_size,
                        {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
                        cached.skipped, found, problems)


def main(argv: Optional[List[str]] = None) -> int:
    import sys

    from improve.config.command_line import wants_help
    from improve.config.compose import compose_config

    args = sys.argv[1:] if argv is None else argv
    wants_help(args, __doc__)
    cfg = compose_config("train", ["hardware=cpu", *args])
    try:
        report = check_layout(cfg)
    except DatasetMissingError as err:
        print(f"layout check failed: {err}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 1 if report.problems else 0
