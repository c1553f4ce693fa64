"""Small datasets written in each source's real on-disk layout."""
import json
import pickle
from pathlib import Path
from typing import Dict

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
    """The published npz (compressed, as deepmind ships it): imgs (N,64,64) binary and latents_classes (N,6).
    Row 0 of each image spells its own index in binary, so a test can tell which images were read."""
    from improve.data.sources import DSPRITES_FILE

    root.mkdir(parents=True)
    latents = np.array([[0, shape, 0, o, 16, 16] for shape in range(3) for o in range(40) for _ in range(3)])
    imgs = np.zeros((len(latents), 64, 64), np.uint8)
    for i, (_, _, _, o, _, _) in enumerate(latents):
        imgs[i, 20:44, 30 + o % 8] = 1
        imgs[i, 0, :16] = [(i >> b) & 1 for b in range(16)]
    np.savez_compressed(root / DSPRITES_FILE, imgs=imgs, latents_classes=latents, latents_values=latents.astype(float))
    return root


def sprite_index(image: np.ndarray) -> int:
    """The index a fixture sprite spells in its first row (image at 64 px, 0/255)."""
    return int(sum(int(image[0, b] > 127) << b for b in range(16)))


def cifar10c(root: Path, per_severity: int = 20, seed: int = 0) -> Path:
    """CIFAR-10-C as published: <corruption>.npy (5 severities x N images, 32x32x3 uint8) for the 15 standard and 4
    extra corruptions, and labels.npy. Pixel [0,0] holds the corruption's number, [0,1] the severity."""
    from improve.data.sources.published import CIFAR10C_CORRUPTIONS

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    labels = np.tile(np.arange(per_severity) % 10, 5).astype(np.uint8)
    np.save(root / "labels.npy", labels)
    for c, name in enumerate(CIFAR10C_CORRUPTIONS + ["speckle_noise", "gaussian_blur", "spatter", "saturate"]):
        x = rng.integers(0, 256, (5 * per_severity, 32, 32, 3), dtype=np.uint8)
        x[:, 0, 0, :] = c
        x[:, 0, 1, :] = np.repeat(np.arange(1, 6), per_severity)[:, None]
        np.save(root / f"{name}.npy", x)
    return root


def kaggle_competition(root: Path, name: str, n_train: int = 24, n_test: int = 6, seed: int = 0) -> Dict:
    """A competition folder in the layout Kaggle ships it, with its sample submission; returns what a test needs."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    if name == "kitchenware":  # train.csv Id,label; test.csv Id; images/<Id:04>.jpg for both
        classes = ["cup", "fork", "glass", "knife", "plate", "spoon"]
        (root / "images").mkdir()
        ids = list(range(n_train + n_test))
        for i in ids:
            _img(rng, (48, 40)).save(root / "images" / f"{i:04d}.jpg")
        (root / "train.csv").write_text("Id,label\n" + "".join(f"{i:04d},{classes[i % 6]}\n" for i in ids[:n_train]))
        test_ids = [f"{i:04d}" for i in ids[n_train:]]
        (root / "test.csv").write_text("Id\n" + "".join(f"{i}\n" for i in test_ids))
        sample, header = "sample_submission.csv", ["Id", "label"]
        (root / sample).write_text("Id,label\n" + "".join(f"{i},cup\n" for i in test_ids))
        return {"sample": root / sample, "header": header, "ids": test_ids, "test_dir": root / "images",
                "ext": ".jpg", "id_format": "{:0>4}", "labels": set(classes)}
    if name == "cassava":  # train.csv image_id,label (0-4); train_images/, test_images/; sample_submission.csv
        (root / "train_images").mkdir()
        (root / "test_images").mkdir()
        rows = []
        for i in range(n_train):
            file = f"{1000000 + i * 7919}.jpg"
            _img(rng, (60, 45)).save(root / "train_images" / file)
            rows.append(f"{file},{i % 5}")
        (root / "train.csv").write_text("image_id,label\n" + "\n".join(rows) + "\n")
        test_ids = [f"{2216849948 + i}.jpg" for i in range(n_test)]
        for file in test_ids:
            _img(rng, (60, 45)).save(root / "test_images" / file)
        (root / "sample_submission.csv").write_text("image_id,label\n" + "".join(f"{i},4\n" for i in test_ids))
        (root / "label_num_to_disease_map.json").write_text(json.dumps({
            "0": "Cassava Bacterial Blight (CBB)", "1": "Cassava Brown Streak Disease (CBSD)",
            "2": "Cassava Green Mottle (CGM)", "3": "Cassava Mosaic Disease (CMD)", "4": "Healthy"}))
        return {"sample": root / "sample_submission.csv", "header": ["image_id", "label"], "ids": test_ids,
                "test_dir": root / "test_images", "ext": "", "labels": {"0", "1", "2", "3", "4"}}
    if name == "animals4":  # train/<class>/*.jpg; test/test/<int>.jpg; Sample_submission.csv ID,Label (0-3)
        for c, cls in enumerate(["cat", "deer", "dog", "horse"]):
            (root / "train" / cls).mkdir(parents=True)
            for i in range(n_train // 4):
                _img(rng, (50, 50)).save(root / "train" / cls / f"{cls}_{i}.jpg")
        (root / "test" / "test").mkdir(parents=True)
        test_ids = [str(i) for i in range(n_test)]
        for i in test_ids:
            _img(rng, (50, 50)).save(root / "test" / "test" / f"{i}.jpg")
        (root / "Sample_submission.csv").write_text("ID,Label\n" + "".join(f"{i},0\n" for i in reversed(test_ids)))
        return {"sample": root / "Sample_submission.csv", "header": ["ID", "Label"], "ids": test_ids[::-1],
                "test_dir": root / "test" / "test", "ext": ".jpg", "labels": {"0", "1", "2", "3"}}
    if name == "arabic_letters":  # Final_Arabic_Alpha_dataset/Final_Arabic_Alpha_dataset/{train/<class>/, test/}
        base = root / "Final_Arabic_Alpha_dataset" / "Final_Arabic_Alpha_dataset"
        classes = [str(c) for c in range(1, 13)]  # numbered class folders: 10 sorts after 9
        for cls in classes:
            (base / "train" / cls).mkdir(parents=True)
            for i in range(3):
                _img(rng, (32, 32), "L").save(base / "train" / cls / f"{cls}_{i}.png")
        (base / "test").mkdir(parents=True)
        test_ids = [str(i) for i in range(n_test)]
        for i in test_ids:
            _img(rng, (32, 32), "L").save(base / "test" / f"{i}.png")
        return {"header": ["ID", "Label"], "ids": test_ids, "test_dir": base / "test", "ext": ".png",
                "labels": {str(i) for i in range(12)}, "classes": classes}
    raise ValueError(f"no fixture for competition {name!r}")
