"""What to predict: the ids and image files of a sample-submission CSV or of a folder of images."""
import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from improve.config.paths import project_path
from improve.data.sources import image_file_name


@dataclass
class Inputs:
    """What to predict and how the submission looks."""

    header: List[str]  # the submission's header: id column, label column (and any further columns of the sample)
    rows: List[Tuple[str, str]]  # (id, image path), in the submission's order
    placeholders: Dict[str, str] = field(default_factory=dict)  # id -> the sample submission's own label


def _image_folder(source: Path, ds, images: Optional[Path]) -> Path:
    if images is not None:
        return images
    sub = ds.get("test_image_dir") or ds.get("image_dir") or "images"
    tried = [source.parent / sub] + ([project_path(ds.path) / sub] if ds.get("path") else [])
    for folder in tried:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"no folder of test images for input={source}: looked for {' and '.join(map(str, tried))} "
                            f"(dataset.test_image_dir={sub!r}); pass images=<folder> to say where they are")


def list_inputs(source: Path, ds, images: Optional[Path]) -> Inputs:
    """The ids and image files of a sample-submission CSV or of a folder of images."""
    columns = list(ds.get("submission_columns") or ["id", "label"])
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))
        # a CSV dataset whose ids are whole file names (no dataset.image_ext, e.g. cassava) keeps them; else the stem
        whole = ds.get("source") == "csv" and not ds.get("image_ext")
        return Inputs(columns, [(p.name if whole else p.stem, str(p)) for p in files])
    if not source.is_file():
        raise FileNotFoundError(f"input={source} is neither a folder of images nor a CSV file of ids")
    with open(source, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise ValueError(f"input={source} is empty; expected a CSV whose first column holds image ids")
        table = [row for row in reader if row]
    header = header if len(header) >= 2 else [header[0], columns[1]]
    folder = _image_folder(source, ds, images)
    return Inputs(header, [(row[0], str(folder / image_file_name(ds, row[0]))) for row in table],
                  {row[0]: row[1] for row in table if len(row) >= 2})
