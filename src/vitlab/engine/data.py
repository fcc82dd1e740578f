"""Datasets and the batch pipeline: gather uint8 samples -> augment -> resize to S -> normalise.

A sample's tensor never depends on the batch it lands in: augmentation parameters are drawn once per
(seed, epoch) for the whole split and indexed by sample, and every later step is per-sample arithmetic.
So splitting an epoch into micro-batches of any size gives bitwise the same inputs (exact accumulation
relies on this).

digits, CIFAR and synthetic live in memory as one uint8 NCHW tensor per split, on the GPU when it fits;
an image folder is decoded (and resized to S) by DataLoader workers, batch by batch.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import CIFAR_FOLDERS, NATIVE_SIZE, DataConfig
from ..errors import DataError

DEVICE_SHARE = 0.25  # on_device "auto": keep the data on the GPU when it needs less than this share of free memory
AUGMENT_SEED_OFFSET = 7_777_777  # keeps augmentation off the generator streams epoch_order seeds
SYNTHETIC_SEED = 1234  # the synthetic set is the same whatever the training seed
SYNTHETIC_SIZES = (2048, 512)
DIGITS_SPLIT_SEED = 0
# data.holdout and an image folder's limit_*: the same images held out or kept for every run and seed, so runs compare
SUBSET_SEED = 0
IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # what pretrained Swin/ResNet weights saw
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


# -- the batch pipeline -------------------------------------------------------------------------------
def crop_flip(x: torch.Tensor, params: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad by `pad`, crop back to size at per-sample offsets, mirror where asked: one gather, no loop.

    params: (B, 3) int64 rows of (row offset, column offset, flip), offsets in 0..2*pad.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))  # zeros, like torchvision's RandomCrop(padding=...)
    rows = params[:, 0, None] + torch.arange(h, device=x.device)
    ar = torch.arange(w, device=x.device)
    cols = params[:, 1, None] + torch.where(params[:, 2, None].bool(), ar.flip(0), ar)
    return padded[torch.arange(b, device=x.device)[:, None, None, None],
                  torch.arange(c, device=x.device)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a float batch; antialiased when shrinking. Per-sample, so batch-independent."""
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[-1])


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy to the device; from pinned memory on CUDA so the copy does not stall the host."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


@dataclass(eq=False)
class Split:
    num_samples: int
    labels: torch.Tensor  # int64 (N,) on the target device
    device: torch.device
    stored_size: int  # side of the uint8 images before augmentation
    image_size: int  # S, the side of what batches() yields
    mean: torch.Tensor  # (1, 3, 1, 1) float32 on the device, in 0..255 units
    std: torch.Tensor
    seed: int

    def __len__(self) -> int:
        return self.num_samples

    def augment_params(self, epoch: int) -> torch.Tensor:
        """(N, 3) rows of (row offset, column offset, flip) for every sample of this split in this epoch."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + AUGMENT_SEED_OFFSET)
        pad = self.stored_size // 8
        shifts = torch.randint(0, 2 * pad + 1, (self.num_samples, 2), generator=g)
        flips = torch.randint(0, 2, (self.num_samples, 1), generator=g)
        return torch.cat([shifts, flips], 1)

    def batches(self, index_batches: Sequence[torch.Tensor], *, epoch: int,
                augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One (x, y) per index batch, in order: x float32 (B, 3, S, S) normalised, y int64 (B,), on the device."""
        cpu_batches = [torch.as_tensor(i, dtype=torch.long, device="cpu") for i in index_batches]
        if not cpu_batches:
            return
        # One host-to-device copy of the epoch's indices and augmentation, not one per batch (each would sync).
        device_batches = to_device(torch.cat(cpu_batches), self.device).split([len(i) for i in cpu_batches])
        params = to_device(self.augment_params(epoch), self.device) if augment else None
        for idx, x in zip(device_batches, self.uint8_batches(cpu_batches, device_batches)):
            yield self.transform(x, idx, params)

    def transform(self, x: torch.Tensor, idx: torch.Tensor,
                  params: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images of the samples `idx` (on the device) -> (normalised float batch, labels).

        Device ops only, no host sync and no data-dependent shapes: a CUDA graph can capture it.
        """
        if params is not None:
            x = crop_flip(x, params[idx], self.stored_size // 8)
        x = x.float()
        if self.stored_size != self.image_size:
            x = resize(x, self.image_size)
        # sub then div, each exactly rounded: a fused multiply-add could round differently in vector and tail lanes
        return x.sub_(self.mean).div_(self.std), self.labels[idx]

    def uint8_batches(self, cpu_batches: list[torch.Tensor],
                      device_batches: Sequence[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The stored uint8 images (B, 3, s, s) of each index batch, on the device."""
        raise NotImplementedError


@dataclass(eq=False)
class TensorSplit(Split):
    images: torch.Tensor  # uint8 (N, 3, s, s), on the device or on the CPU

    def uint8_batches(self, cpu_batches, device_batches):
        if self.images.device.type == self.device.type:  # it lives either on the target device or on the CPU
            return (self.images[idx] for idx in device_batches)
        return (to_device(self.images[idx], self.device) for idx in cpu_batches)


class DecodeAt:
    """ImageFolder transform: PIL image (already RGB) -> uint8 (3, S, S) tensor. A class so workers can pickle it."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Any) -> torch.Tensor:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(image.resize((self.size, self.size), Image.Resampling.BILINEAR))


def read_image(path: str) -> Any:
    """ImageFolder's loader (torchvision's, RGB), with a file PIL cannot read named in one line."""
    import warnings

    from PIL import Image

    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # PIL's own words amid vitlab's output
            return to_rgb(Image.open(f))
    except Image.DecompressionBombError as e:
        raise DataError(f"{path}: larger than PIL reads ({e}); downscale it") from None
    except (OSError, ValueError) as e:  # UnidentifiedImageError is an OSError
        raise DataError(f"{path}: not a readable image ({type(e).__name__}); delete or replace it") from None


def to_rgb(image: Any) -> Any:
    """RGB, 8 bits a channel. PIL's convert clips 16-bit and float images to 0..255 (a 16-bit PNG came out all
    white): integer images (PIL's I;16 and I, what 16-bit PNGs and TIFFs open as) are scaled from 0..65535, float
    ones from 0..1. One scale for every image, so that a dataset's images keep their relative brightness."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        top = 1.0 if image.mode == "F" else 65535.0
        values = np.asarray(image, dtype=np.float64) * (255 / top)
        image = Image.fromarray(np.clip(values + 0.5, 0, 255).astype(np.uint8))
    return image.convert("RGB")


def worker_message(error: Exception) -> str:
    """An error raised in a DataLoader worker comes back with the worker's traceback in its message: its last
    line holds what was raised there."""
    text = str(error)
    return text.strip().splitlines()[-1].partition(": ")[2] if "Original Traceback" in text else text


@dataclass(eq=False)
class FolderSplit(Split):
    folder: Any  # torchvision ImageFolder with a DecodeAt transform
    num_workers: int

    def uint8_batches(self, cpu_batches, device_batches):
        from torch.utils.data import DataLoader

        loader = DataLoader(self.folder, batch_sampler=[idx.tolist() for idx in cpu_batches],
                            num_workers=self.num_workers, pin_memory=self.device.type == "cuda")
        return (x.to(self.device, non_blocking=True) for x, _ in loader)


@dataclass
class Data:
    train: Split
    val: Split
    num_classes: int
    class_names: list[str]
    image_size: int  # S: every dataset is resized to cfg.size; grayscale becomes 3 channels
    on_device: bool  # the whole dataset is resident on the (GPU) device as uint8
    source: str  # e.g. "CIFAR-100 from data/cifar-100-python (50000 train / 10000 test)"
    warnings: list[str]
    val_name: str = "val"  # what the accuracy is measured on: "val", "test" (CIFAR), "held-out val"


# -- in-memory datasets ---------------------------------------------------------------------------------
@dataclass
class Arrays:
    """A dataset as loaded from its source, before limits, resizing and placement."""
    train_x: torch.Tensor  # uint8 (N, 3, s, s)
    train_y: torch.Tensor  # int64 (N,)
    val_x: torch.Tensor
    val_y: torch.Tensor
    class_names: list[str]
    stats: tuple[Sequence[float], Sequence[float]]  # per-channel mean and std in 0..1 units
    origin: str  # e.g. "CIFAR-100 from data/cifar-100-python"
    val_name: str = "val"
    warnings: tuple[str, ...] = ()


def load_data(cfg: DataConfig, device: torch.device, *, seed: int = 0, pretrained: bool = False) -> Data:
    """`pretrained`: the model starts from ImageNet-trained weights, so the images are normalised with ImageNet's
    statistics, as those weights saw them (an image folder always is), not the dataset's own."""
    if cfg.dataset == "imagefolder":
        return load_imagefolder(cfg, device, seed)
    loaders = {"digits": load_digits, "cifar10": load_cifar, "cifar100": load_cifar, "synthetic": load_synthetic}
    return in_memory(loaders[cfg.dataset](cfg), cfg, device, seed, pretrained)


def pixel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    x = x.double() / 255
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


def norm_tensors(stats: tuple[Sequence[float], Sequence[float]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = (torch.tensor(v, dtype=torch.float64).mul(255).float().view(1, 3, 1, 1).to(device) for v in stats)
    return mean, std


def placement(nbytes: int, cfg: DataConfig, device: torch.device) -> torch.device:
    """Where the uint8 set lives: the GPU if asked (or, for "auto", if it fits comfortably), else the CPU."""
    if device.type != "cuda" or cfg.on_device is False:
        return torch.device("cpu")
    if cfg.on_device is True:
        return device
    free, _ = torch.cuda.mem_get_info(device)
    return device if nbytes < DEVICE_SHARE * free else torch.device("cpu")


def counted(used: int, total: int, name: str) -> str:
    return f"{used} {name}" if used == total else f"{used} of {total} {name}"


def in_memory(a: Arrays, cfg: DataConfig, device: torch.device, seed: int, pretrained: bool = False) -> Data:
    train_x, train_y = a.train_x[:cfg.limit_train], a.train_y[:cfg.limit_train]
    val_x, val_y = a.val_x[:cfg.limit_val], a.val_y[:cfg.limit_val]
    # kept at the stored size and resized batch by batch after augmentation, whatever the set's size: a
    # `limit_train` pilot and the full set train one recipe (pad-crop at 32 px, then up to Swin's 224)
    size, stored = cfg.size, a.train_x.shape[-1]
    home = placement((len(train_x) + len(val_x)) * 3 * stored * stored, cfg, device)
    mean, std = norm_tensors(IMAGENET_STATS if pretrained else a.stats, device)

    def split(x: torch.Tensor, y: torch.Tensor) -> TensorSplit:
        return TensorSplit(len(x), y.to(device), device, stored, size, mean, std, seed, x.to(home).contiguous())

    source = (f"{a.origin} ({counted(len(train_x), len(a.train_x), 'train')} / "
              f"{counted(len(val_x), len(a.val_x), a.val_name)}"
              f"{', ImageNet normalisation for the pretrained weights' if pretrained else ''})")
    return Data(split(train_x, train_y), split(val_x, val_y), len(a.class_names), a.class_names, size,
                home.type == "cuda", source, list(a.warnings), a.val_name)


def digits_file() -> Path:
    """The digits CSV that scikit-learn ships; located, not imported: importing sklearn costs ~1.7 s of CPU
    (scipy.stats), more than a whole quickstart epoch, in every process that trains on digits."""
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        if (path := Path(root) / "datasets" / "data" / "digits.csv.gz").is_file():
            return path
    raise DataError("dataset 'digits' comes with scikit-learn, which is missing or has no datasets/data/"
                    "digits.csv.gz: pip install scikit-learn")


def stratified_split(y: torch.Tensor, val_fraction: float, seed: int,
                     count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and validation indices, each class split in the same proportion, both in a seeded shuffled order:
    vitlab's own, so a digits result does not move when a scikit-learn release changes its splitter. `count`:
    exactly that many validation samples, the classes' rounding settled by the largest remainders (rounding each
    class alone held out 0 of CIFAR-100 for 50, or 100 for 149)."""
    g = torch.Generator().manual_seed(seed)
    classes = y.unique()
    sizes = [int((y == c).sum()) for c in classes]
    if count is None:
        takes = [round(val_fraction * n) for n in sizes]
    else:
        exact = [count * n / len(y) for n in sizes]
        takes = [int(e) for e in exact]
        for i in sorted(range(len(sizes)), key=lambda i: takes[i] - exact[i])[:count - sum(takes)]:
            takes[i] += 1
    val = []
    for c, take in zip(classes, takes):
        members = (y == c).nonzero().flatten()
        val.append(members[torch.randperm(len(members), generator=g)][:take])
    held = torch.zeros(len(y), dtype=torch.bool)
    held[torch.cat(val)] = True
    train, val_all = (~held).nonzero().flatten(), held.nonzero().flatten()
    return (train[torch.randperm(len(train), generator=g)], val_all[torch.randperm(len(val_all), generator=g)])


def load_digits(cfg: DataConfig) -> Arrays:
    """scikit-learn's 8x8 digits (shipped with it, so offline), with a fixed 80/20 stratified split."""
    table = np.loadtxt(digits_file(), delimiter=",")  # 1797 rows: 64 pixels in 0..16, then the label
    x = torch.from_numpy(np.rint(table[:, :-1] * 255 / 16).astype(np.uint8)).view(-1, 1, 8, 8)
    x = x.expand(-1, 3, -1, -1).contiguous()
    y = torch.from_numpy(table[:, -1]).long()
    train, val = stratified_split(y, 0.2, DIGITS_SPLIT_SEED)
    return Arrays(x[train], y[train], x[val], y[val], [str(i) for i in range(10)], pixel_stats(x[train]),
                  "scikit-learn digits (8x8 grayscale, fixed 80/20 split)")


def load_synthetic(cfg: DataConfig) -> Arrays:
    """A fixed low-frequency pattern per class plus pixel noise: learnable, and the same for every run."""
    classes, side = cfg.classes, NATIVE_SIZE["synthetic"]
    g = torch.Generator().manual_seed(SYNTHETIC_SEED)
    patterns = resize(torch.randn(classes, 3, 4, 4, generator=g), side)

    def make(n: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        # each split has its own stream, so the val set does not change with the train size
        g = torch.Generator().manual_seed(SYNTHETIC_SEED + stream)
        y = torch.randint(0, classes, (n,), generator=g)
        x = 128 + 48 * patterns[y] + 32 * torch.randn(n, 3, side, side, generator=g)
        return x.round_().clamp_(0, 255).to(torch.uint8), y

    train_x, train_y = make(cfg.limit_train or SYNTHETIC_SIZES[0], 1)
    val_x, val_y = make(cfg.limit_val or SYNTHETIC_SIZES[1], 2)
    return Arrays(train_x, train_y, val_x, val_y, [f"pattern_{i}" for i in range(classes)], pixel_stats(train_x),
                  f"synthetic: {classes} seeded patterns + noise")


# -- CIFAR ------------------------------------------------------------------------------------------------
# What the official CIFAR pickles reference (written by Python 2 numpy; numpy 2 renamed numpy.core). The
# function is taken from numpy's own pickling so it is right whatever this numpy calls the module.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class CifarUnpickler(pickle.Unpickler):
    """Builds only numpy arrays, dicts, lists, strings and numbers: a pickle naming anything else is refused."""

    def __init__(self, file: io.BytesIO, path: Path):
        super().__init__(file, encoding="latin1")  # Python 2 str -> str; array bytes are decoded back by numpy
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return CIFAR_GLOBALS[module, name]
        except KeyError:
            raise DataError(f"refusing to load {self.path}: it references {module}.{name}, which CIFAR files "
                            "never contain. Delete it and download the dataset again.") from None


def text(value: str | bytes) -> str:
    """Python 2 strings come back as str; pickles re-saved by Python 3 may hold bytes."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def read_cifar_pickle(path: Path, md5: str, mismatched: list[str]) -> dict[str, Any]:
    blob = path.read_bytes()
    if hashlib.md5(blob, usedforsecurity=False).hexdigest() != md5:
        mismatched.append(path.name)
    try:
        obj = CifarUnpickler(io.BytesIO(blob), path).load()
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path} is not a readable CIFAR pickle ({type(e).__name__}: {e}); "
                        "delete it and download the dataset again") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR batch: it holds a {type(obj).__name__}, not a dict")
    return {text(k): v for k, v in obj.items()}


def cifar_split(batches: list[tuple[Path, dict[str, Any]]], label_key: str, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for path, batch in batches:
        data, labels = batch.get("data"), batch.get(label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{path}: 'data' should be a uint8 array of shape (N, 3072), found "
                            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
        labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
        if labels.shape != (len(data),) or (labels.size and not 0 <= labels.min() <= labels.max() < classes):
            raise DataError(f"{path}: '{label_key}' should hold {len(data)} labels in 0..{classes - 1}")
        xs.append(data.reshape(-1, 3, 32, 32))  # each row is 1024 red, 1024 green, 1024 blue values
        ys.append(labels)
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


class CifarFiles(NamedTuple):
    tv: Any  # torchvision's CIFAR10/CIFAR100 class: file names, checksums, URL
    title: str
    folder: Path
    files: list[list[str]]  # [name, md5] of every file, the meta file last
    expected: str  # "CIFAR-100 not found under ...": the start of every missing-file message
    by_hand: str  # how to get them


def cifar_files(cfg: DataConfig) -> CifarFiles:
    from torchvision.datasets import CIFAR10, CIFAR100

    tv = CIFAR100 if cfg.dataset == "cifar100" else CIFAR10
    title = CIFAR_FOLDERS[cfg.dataset][0]
    root = Path(cfg.root)
    folder = root / tv.base_folder
    files = tv.train_list + tv.test_list + [[tv.meta["filename"], tv.meta["md5"]]]
    expected = f"{title} not found under {root}/: expected {folder}/{{{','.join(name for name, _ in files)}}}."
    return CifarFiles(tv, title, folder, files, expected, f"Download {tv.url} and extract it into {root}/ "
                      "(or set data.root)")


def cifar_missing(c: CifarFiles) -> str | None:
    """Why the CIFAR files can't be read (the message says how to get them), or None when all are there."""
    if absent := [name for name, _ in c.files if not (c.folder / name).is_file()]:
        root = c.folder.parent
        if root.name == c.folder.name and not c.folder.is_dir():  # data.root names the dataset's own folder
            return f"{c.expected} data.root {root} is the dataset's folder itself: set data.root to {root.parent}."
        if (root / c.tv.filename).is_file() and not c.folder.is_dir():
            return (f"{c.expected} {root / c.tv.filename} is there, not extracted: "
                    f"tar xzf {root / c.tv.filename} -C {root}.")
        return (f"{c.expected} {c.by_hand}, or set data.download: true on a machine with internet."
                + (f" (present: {c.folder}, missing: {', '.join(absent)})" if c.folder.is_dir() else ""))
    return None


def missing_data(cfg: DataConfig) -> str | None:
    """Why a dataset's files are not on disk, or None. Looks at paths only, so a queue can check every run's
    data before the first one trains; reading the files (and what can go wrong there) is the loader's job."""
    if cfg.dataset in ("cifar10", "cifar100") and not cfg.download:
        return cifar_missing(cifar_files(cfg))
    if cfg.dataset == "imagefolder":
        return imagefolder_problem(Path(cfg.root))
    return None


def load_cifar(cfg: DataConfig) -> Arrays:
    c = cifar_files(cfg)
    tv, title, folder, meta = c.tv, c.title, c.folder, c.files[-1]
    label_key, classes = ("fine_labels", 100) if cfg.dataset == "cifar100" else ("labels", 10)
    if cifar_missing(c) and cfg.download:
        from torchvision.datasets.utils import download_and_extract_archive

        try:  # only download and check the archive; the files are read below, through the safe unpickler
            download_and_extract_archive(tv.url, str(Path(cfg.root)), filename=tv.filename, md5=tv.tgz_md5)
        except Exception as e:
            raise DataError(f"{c.expected} data.download is on, but the download failed ({type(e).__name__}: "
                            f"{e}). {c.by_hand}.") from e
    if problem := cifar_missing(c):
        raise DataError(problem)

    mismatched: list[str] = []

    def read(entries: list[list[str]]) -> list[tuple[Path, dict[str, Any]]]:
        return [(folder / name, read_cifar_pickle(folder / name, md5, mismatched)) for name, md5 in entries]

    names = read([meta])[0][1].get(tv.meta["key"])
    if not isinstance(names, list) or len(names) != classes:
        raise DataError(f"{folder / meta[0]}: '{tv.meta['key']}' should list {classes} class names")
    train_x, train_y = cifar_split(read(tv.train_list), label_key, classes)
    val_x, val_y = cifar_split(read(tv.test_list), label_key, classes)
    warnings = ()
    if mismatched:
        warnings = (f"{title} files {', '.join(mismatched)} in {folder} do not match the official checksums "
                    f"(a subset or a modified copy?); loaded anyway: {len(train_x)} train / {len(val_x)} test images",)
    origin, val_name = f"{title} from {folder}", "test"
    if cfg.holdout:
        if cfg.holdout >= len(train_x):
            raise DataError(f"data.holdout {cfg.holdout}: {folder} has {len(train_x)} training images; hold out "
                            "fewer (5000 is the usual tenth of CIFAR's 50000)")
        train, held = stratified_split(train_y, 0.0, SUBSET_SEED, count=cfg.holdout)
        train_x, train_y, val_x, val_y = train_x[train], train_y[train], train_x[held], train_y[held]
        origin, val_name = f"{origin}, the test split unused", "held-out val"
    return Arrays(train_x, train_y, val_x, val_y, [text(n) for n in names], CIFAR_STATS[cfg.dataset],
                  origin, val_name, warnings)


# -- image folders ----------------------------------------------------------------------------------------
def imagefolder_layout(root: Path) -> str:
    return f"expected {root}/train/<class>/<image> and {root}/val/<class>/<image> with the same class folders"


def class_mismatch(root: Path, train: Sequence[str], val: Sequence[str]) -> str | None:
    if list(train) == list(val):
        return None
    only_train, only_val = sorted(set(train) - set(val)), sorted(set(val) - set(train))
    return (f"image folder {root}: train and val have different classes (only in train: {only_train or 'none'}; "
            f"only in val: {only_val or 'none'}); {imagefolder_layout(root)}")


def has_image(folder: Path) -> bool:
    """Whether ImageFolder finds an image in a class folder (it looks through subfolders, links followed)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return any(name.lower().endswith(IMG_EXTENSIONS) for _, _, names in os.walk(folder, followlinks=True)
               for name in names)


def imagefolder_problem(root: Path) -> str | None:
    """What ImageFolder would refuse (or train to no end), found before a queue starts: a split missing, no or one
    class folder, classes that differ between train and val, a class folder without an image. Stops at each folder's
    first image."""
    classes = {}
    for name in ("train", "val"):
        if not (root / name).is_dir():
            return f"image folder {root / name} not found; {imagefolder_layout(root)} (data.root)."
        classes[name] = sorted(e.name for e in os.scandir(root / name) if e.is_dir())  # as ImageFolder lists them
        if not classes[name]:
            return f"image folder {root / name} has no class folders; {imagefolder_layout(root)} (data.root)."
    if problem := class_mismatch(root, classes["train"], classes["val"]):
        return problem + "."
    if len(classes["train"]) == 1:  # it trained, to 100 % accuracy
        return (f"image folder {root}: one class folder ({classes['train'][0]}); a classifier needs at least two "
                f"(data.root).")
    if empty := [f"{name}/{c}" for name, names in classes.items() for c in names if not has_image(root / name / c)]:
        return (f"image folder {root}: no images in {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}; every "
                "class folder needs at least one (.jpg, .png, ...) (data.root).")
    return None


def load_imagefolder(cfg: DataConfig, device: torch.device, seed: int) -> Data:
    from torch.utils.data import Subset
    from torchvision.datasets import ImageFolder

    root, size = Path(cfg.root), cfg.size
    layout = imagefolder_layout(root)
    folders = {}
    for name in ("train", "val"):
        try:
            folders[name] = ImageFolder(str(root / name), transform=DecodeAt(size), loader=read_image)
        except (FileNotFoundError, NotADirectoryError) as e:
            raise DataError(f"image folder {root / name}: {e}; {layout}") from e
    train, val = folders["train"], folders["val"]
    if problem := class_mismatch(root, train.classes, val.classes):
        raise DataError(problem)
    mean, std = norm_tensors(IMAGENET_STATS, device)

    def split(folder: Any, limit: int | None) -> FolderSplit:
        targets = torch.tensor(folder.targets, dtype=torch.long)
        if limit is not None and limit < len(folder):
            # ImageFolder lists its images class by class: its first N would be the first classes alone. A fixed
            # stratified N instead, the same images for every run and seed, in folder order.
            _, keep = stratified_split(targets, 0.0, SUBSET_SEED, count=limit)
            keep = keep.sort().values
            folder, targets = Subset(folder, keep.tolist()), targets[keep]
        return FolderSplit(len(targets), targets.to(device), device, size, size, mean, std, seed, folder,
                           cfg.num_workers)

    t, v = split(train, cfg.limit_train), split(val, cfg.limit_val)
    source = (f"image folder {root} ({counted(len(t), len(train), 'train')} / {counted(len(v), len(val), 'val')}, "
              f"{len(train.classes)} classes, decoded at {size}px)")
    return Data(t, v, len(train.classes), list(train.classes), size, False, source, [])
