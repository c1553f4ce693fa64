"""The schema's field helper and the `dataset` group: what the user's data is and where it lives.

Split from `schema.py` (which re-exports both) to keep each module to one job; see there for how the
schema is used.
"""
import copy
from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING


def _f(default: Any, help: str, **rules: Any) -> Any:
    """A schema field: default, one-line help, and optional ge/le/gt/choices rules."""
    meta = {"help": help, **rules}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DatasetConfig:
    name: str = _f(MISSING, "short name, used in logs and cache keys")
    source: str = _f(MISSING, "loader to use", choices=[
        "digits", "shapes", "folder", "csv", "cifar10", "cifar10c", "svhn", "tinyimagenet", "dsprites"])
    path: Optional[str] = _f(None, "root folder of the data (folder/csv/torchvision sources)")
    class_dir: str = _f("", "folder source: folder holding the class subfolders, relative to path ('' = path itself)")
    test_path: Optional[str] = _f(None, "folder source: optional separate test folder with the same class subfolders")
    test_image_dir: Optional[str] = _f(None, "the competition's unlabelled test images, relative to path (predict finds "
                                             "a sample submission's ids there); null = image_dir")
    sample_submission: Optional[str] = _f(None, "the competition's sample submission CSV, relative to path "
                                                "(its header, ids and order are what predict writes)")
    submission_columns: List[str] = _f(["id", "label"], "header predict writes for a folder of test images (a sample "
                                                        "submission's own header wins)", min_items=2, max_items=2)
    submission_labels: str = _f("name", "how a submission encodes the class: name (the class name) or index (its "
                                        "integer position in the class order)", choices=["name", "index"])
    description: str = _f("", "what the images show and what the label means, in the user's words (agents read it)")
    kaggle: Optional[str] = _f(None, "Kaggle competition slug the data comes from (named in the 'missing data' error)")
    csv: str = _f("train.csv", "csv source: file with one row per training image")
    image_dir: str = _f("images", "csv source: folder holding the images, relative to path")
    id_column: str = _f("id", "csv source: column holding the image id or file name")
    label_column: str = _f("label", "csv source: column holding the class label")
    image_ext: str = _f("", "csv source: extension appended to ids that have none, e.g. '.jpg'")
    id_format: str = _f("{}", "csv source: python format applied to the id to get the file name, e.g. '{:0>4}'")
    classes: int = _f(8, "shapes/dsprites: number of orientation classes", ge=2, le=360)
    sprites: str = _f("all", "dsprites: which sprite shapes: all (VTAB's orientation task) or heart",
                      choices=["all", "heart"])
    corrupted_path: Optional[str] = _f(None, "cifar10c: folder holding CIFAR-10-C's <corruption>.npy and labels.npy")
    severity: int = _f(5, "cifar10c: corruption severity of the test set, 1 (mild) to 5 (strong)", ge=1, le=5)
    samples_per_class: int = _f(200, "shapes: images generated per class; dsprites: images sampled per class", ge=1)
    native_size: int = _f(32, "shapes: canvas size in pixels of the generated images", ge=8, le=512)
    noise: float = _f(0.15, "shapes: std of the Gaussian pixel noise, as a fraction of full brightness", ge=0.0, le=1.0)
    download: bool = _f(True, "torchvision sources: download when the files are missing (needs internet)")
    channels: int = _f(0, "1 = grayscale, 3 = RGB, 0 = infer from the data", choices=[0, 1, 3])
    val_fraction: float = _f(0.15, "share of the training data held out (stratified) for model selection", gt=0.0, lt=1.0)
    test_fraction: float = _f(0.2, "share carved out as test split when the dataset has no labelled test set", gt=0.0, lt=1.0)
    max_train: int = _f(0, "keep at most this many training images (stratified); 0 = all", ge=0)
    folds: int = _f(0, "k-fold cross-validation: split train+validation into this many stratified folds; 0 = one "
                       "validation split (set by loop.folds)", ge=0, le=20)
    fold: int = _f(0, "with folds >= 2: which fold is the validation split (0 .. folds-1)", ge=0)
    strict: bool = _f(False, "true: an unreadable image is an error; false: skip it with a warning")
    seed: int = _f(0, "seed of the splits and of generated data (not of training)")
