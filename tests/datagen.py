"""Tiny datasets in the real on-disk formats, for tests: CIFAR python pickles, image folders, a hostile pickle.

The CIFAR files are written the way Python 2's cPickle wrote the originals (protocol 2, every string a
py2 `str`, arrays reconstructed via `numpy.core.multiarray._reconstruct`), so a loader meets exactly the
opcodes and globals of the real download. Plain Python 3 `pickle.dump(..., protocol=2)` would not do:
it encodes bytes through a call to `_codecs.encode`, which no real CIFAR file contains.
"""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array-rebuilding function, whatever its module is called now


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        if obj is _RECONSTRUCT:  # Python 2 numpy lived at numpy.core, as the originals say
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _dump(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def write_cifar(root: str | Path, kind: str = "cifar100", n_train: int = 64, n_test: int = 32, seed: int = 0) -> Path:
    """Write a CIFAR-10 or CIFAR-100 subset (random pixels, labels cycling through the classes) under root.

    Returns the dataset folder (root/cifar-10-batches-py or root/cifar-100-python). The files have the
    official names and layout, so checksums differ from the official ones: a loader should warn.
    """
    rng = np.random.default_rng(seed)
    classes = 100 if kind == "cifar100" else 10

    def batch(n: int, offset: int, label: str) -> dict[bytes, object]:
        labels = [(offset + i) % classes for i in range(n)]
        d: dict[bytes, object] = {b"batch_label": label}
        if kind == "cifar100":
            d[b"fine_labels"] = labels
            d[b"coarse_labels"] = [y // 5 for y in labels]
        else:
            d[b"labels"] = labels
        d[b"data"] = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)  # rows: 1024 R, 1024 G, 1024 B
        d[b"filenames"] = [f"img_{offset + i:06d}.png" for i in range(n)]
        return d

    if kind == "cifar100":
        folder = Path(root) / "cifar-100-python"
        folder.mkdir(parents=True, exist_ok=True)
        _dump(batch(n_train, 0, "training batch 1 of 1"), folder / "train")
        _dump(batch(n_test, 0, "testing batch 1 of 1"), folder / "test")
        _dump({b"fine_label_names": [f"fine_{i:02d}" for i in range(100)],
               b"coarse_label_names": [f"coarse_{i:02d}" for i in range(20)]}, folder / "meta")
    elif kind == "cifar10":
        folder = Path(root) / "cifar-10-batches-py"
        folder.mkdir(parents=True, exist_ok=True)
        start = 0
        for i, part in enumerate(np.array_split(np.arange(n_train), 5), 1):
            _dump(batch(len(part), start, f"training batch {i} of 5"), folder / f"data_batch_{i}")
            start += len(part)
        _dump(batch(n_test, 0, "testing batch 1 of 1"), folder / "test_batch")
        _dump({b"label_names": CIFAR10_NAMES, b"num_cases_per_batch": 10000, b"num_vis": 3072},
              folder / "batches.meta")
    else:
        raise ValueError(f"kind must be cifar10 or cifar100, not {kind!r}")
    return folder


def write_imagefolder(root: str | Path, classes: tuple[str, ...] = ("cat", "dog"), n_per_class: int = 4,
                      size: int = 40, splits: tuple[str, ...] = ("train", "val"), seed: int = 0) -> Path:
    """Write root/<split>/<class>/<i>.png with random pixels; every other image is grayscale (mode L)."""
    rng = np.random.default_rng(seed)
    for split in splits:
        for name in classes:
            folder = Path(root) / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                if i % 2:
                    image = Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), mode="L")
                else:
                    image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), mode="RGB")
                image.save(folder / f"{i:04d}.png")
    return Path(root)


def write_malicious_pickle(path: str | Path, marker: str | Path | None = None) -> Path:
    """Write a pickle that, if loaded by plain pickle, runs `os.system("touch MARKER")`. Returns MARKER.

    Hand-written protocol-0 opcodes, as real exploits are, so the global it names is literally `os.system`
    (pickling os.system from Python would name `posix.system`).
    """
    path = Path(path)
    marker = Path(marker) if marker is not None else path.with_name(path.name + ".executed")
    command = f"touch '{marker}'"
    assert "\n" not in command and "\\" not in command, "the V opcode ends at a newline and unescapes backslashes"
    path.write_bytes(b"cos\nsystem\n(V" + command.encode() + b"\ntR.")
    return marker
