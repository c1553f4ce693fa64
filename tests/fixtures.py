"""Small datasets written in each source's real on-disk layout."""
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def _img(rng, size, mode="RGB"):
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr).convert(mode)


def messy_folder(root: Path, per_class: int = 12, seed: int = 0) -> dict:
    """root/<class>/ with mixed sizes and modes, a truncated JPEG and non-image files."""
    rng = np.random.default_rng(seed)
    modes = ["RGB", "L", "P", "RGBA", "RGB"]
    for c, name in enumerate(["cat", "dog", "fox"]):
        d = root / name
        d.mkdir(parents=True)
        for i in range(per_class):
            img = _img(rng, (int(rng.integers(20, 90)), int(rng.integers(20, 90))), modes[i % len(modes)])
            img.save(d / f"{i}.{'jpg' if img.mode in ('RGB', 'L') else 'png'}")
    good = root / "cat" / "0.jpg"
    truncated = root / "cat" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    (root / "dog" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    (root / "fox" / "notes.txt").write_text("collected in 2024\n")
    return {"bad": [truncated, root / "dog" / ".DS_Store", root / "fox" / "notes.txt"], "good": 3 * per_class}


def kaggle_csv(root: Path, n: int = 30, seed: int = 0) -> None:
    """Kitchenware layout: train.csv (Id,label) and images/<Id:04d>.jpg."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    labels = ["cup", "fork", "glass"]
    rows = ["Id,label"]
    for i in range(n):
        _img(rng, (40, 30)).save(root / "images" / f"{i:04d}.jpg")
        rows.append(f"{i},{labels[i % 3]}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    (root / "test.csv").write_text("Id\n9999\n")


def cifar10(root: Path, per_batch: int = 20, seed: int = 0) -> None:
    """cifar-10-batches-py/ with the pickled batches torchvision reads."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": [int(x) for x in np.arange(per_batch) % 10]}
        with open(d / name, "wb") as fh:
            pickle.dump(batch, fh)
    with open(d / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                     "ship", "truck"]}, fh)


def svhn(root: Path, n: int = 40, seed: int = 0) -> None:
    """train_32x32.mat / test_32x32.mat: X is 32x32x3xN, y is 1..10 with 10 meaning digit 0."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for split in ("train", "test"):
        savemat(root / f"{split}_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                              "y": (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)})


def tinyimagenet(root: Path, per_class: int = 6, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    wnids = ["n01443537", "n01629819", "n01641577"]
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n"
                                    "n01641577\tbullfrog, Rana catesbeiana\nn99999999\tunused\n")
    for w in wnids:
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(per_class):
            _img(rng, (64, 64)).save(d / f"{w}_{i}.JPEG")
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for i in range(9):
        _img(rng, (64, 64)).save(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnids[i % 3]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def dsprites(root: Path) -> Path:
    """The published npz's keys: imgs (N,64,64) binary and latents_classes (N,6)."""
    from improve.sources import DSPRITES_FILE

    root.mkdir(parents=True)
    latents = np.array([[0, shape, 0, o, 16, 16] for shape in range(3) for o in range(40) for _ in range(3)])
    imgs = np.zeros((len(latents), 64, 64), np.uint8)
    for i, (_, _, _, o, _, _) in enumerate(latents):
        imgs[i, 20:44, 30 + o % 8] = 1
    np.savez(root / DSPRITES_FILE, imgs=imgs, latents_classes=latents, latents_values=latents.astype(float))
    return root
