"""Images in files on disk: class folders (`folder`) and Kaggle-style CSV tables (`csv`)."""
import csv
import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from improve.data.sources.base import Items, Raw, Source, file_stats, missing


# ---------------------------------------------------------------- folder
def class_order(names) -> List[str]:
    """Class names in their natural order: numerically when every name is an integer ('2' before '10'), else
    alphabetically; a submission's integer codes are positions in this order."""
    names = list(names)
    numeric = bool(names) and all(n.lstrip("-").isdigit() for n in names)
    return sorted(names, key=int) if numeric else sorted(names)


def _scan_class_folders(root: Path, classes: Optional[List[str]] = None):
    if classes is None:
        classes = class_order(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        # Every file is tried: ones that are not images (.DS_Store, notes.txt) are skipped and listed by the cache.
        found = sorted(str(p) for p in (root / name).rglob("*") if p.is_file()) if (root / name).is_dir() else []
        files += found
        labels += [label] * len(found)
    return classes, files, np.asarray(labels, np.int64)


def folder_source(ds, root: Path) -> Source:
    sub = ds.get("class_dir") or ""
    where = f"<path>/{sub + '/' if sub else ''}<class name>/<image files>"
    if not ds.path or not (root / sub).is_dir():
        raise missing(ds, root, f"the image folder {sub or 'path'} does not exist; expected {where}")
    classes, files, labels = _scan_class_folders(root / sub)
    if not files:
        raise missing(ds, root, f"no class subfolders with files found; expected {where}")
    test = None
    test_files: List[str] = []
    if ds.test_path:
        troot = Path(ds.test_path).expanduser()
        if not troot.is_dir():
            raise missing(ds, root, f"dataset.test_path={ds.test_path} does not exist")
        _, test_files, test_labels = _scan_class_folders(troot, classes)
        test = Items(labels=test_labels, files=test_files)

    def load() -> Raw:
        return Raw(train=Items(labels=labels, files=files), test=test)

    return Source(key={"files": file_stats(files + test_files)}, class_names=classes, load=load)


# ---------------------------------------------------------------- Kaggle csv
def image_file_name(ds, image_id: str) -> str:
    """A CSV id's image file name: `dataset.id_format` applied, `dataset.image_ext` added when it has none."""
    name = (ds.get("id_format") or "{}").format(image_id)
    ext = ds.get("image_ext") or ""
    return name + ext if ext and not Path(name).suffix else name


def csv_source(ds, root: Path) -> Source:
    table = root / ds.csv
    image_dir = root / ds.image_dir
    if not table.is_file() or not image_dir.is_dir():
        raise missing(ds, root, f"expected {ds.csv} (columns {ds.id_column},{ds.label_column}) and the folder {ds.image_dir}/ "
                           f"holding the images")
    with open(table, newline="") as fh:
        reader = csv.DictReader(fh)
        for col in (ds.id_column, ds.label_column):
            if col not in (reader.fieldnames or []):
                raise ValueError(f"dataset.{'id' if col == ds.id_column else 'label'}_column={col!r} is not a column of "
                                 f"{table} (columns: {reader.fieldnames}); set it to the right column name")
        rows = [(r[ds.id_column], r[ds.label_column]) for r in reader]
    raw_labels = [label for _, label in rows]
    classes = class_order(set(raw_labels))
    index = {c: i for i, c in enumerate(classes)}
    files = [str(image_dir / image_file_name(ds, image_id)) for image_id, _ in rows]
    labels = np.asarray([index[label] for label in raw_labels], np.int64)

    def load() -> Raw:
        return Raw(train=Items(labels=labels, files=files))

    present = [f for f in files if os.path.exists(f)]
    return Source(key={"csv": file_stats([str(table)]), "files": file_stats(present)}, class_names=classes, load=load)
