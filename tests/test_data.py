"""Datasets in their real on-disk formats, and the batch pipeline's per-sample exactness."""
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datagen import CIFAR10_NAMES, write_cifar, write_imagefolder, write_malicious_pickle

from vitlab.config import DataConfig
from vitlab.engine import data as data_module
from vitlab.engine.data import load_data
from vitlab.errors import DataError

CPU = torch.device("cpu")


def load(**cfg):
    seed = cfg.pop("seed", 0)
    return load_data(DataConfig(**cfg), CPU, seed=seed)


def whole(split, *, epoch=0, augment=False, sizes=None):
    """The split's x and y for indices 0..N-1, asked for in batches of the given sizes (default: one batch)."""
    idx = torch.arange(split.num_samples)
    parts = idx.split(sizes) if sizes else [idx]
    xs, ys = zip(*split.batches(parts, epoch=epoch, augment=augment))
    return torch.cat(xs), torch.cat(ys)


def read_pickle(path):
    with open(path, "rb") as f:  # our own file, written by datagen: plain pickle is fine here
        return pickle.load(f, encoding="latin1")


def check_batch(x, y, n, size, classes):
    assert x.shape == (n, 3, size, size) and x.dtype == torch.float32 and x.device == CPU
    assert y.shape == (n,) and y.dtype == torch.int64 and 0 <= y.min() and y.max() < classes


# -- each dataset -----------------------------------------------------------------------------------------
def test_digits_load_normalised_with_a_split_fixed_across_seeds():
    d = load(dataset="digits", seed=0)
    assert (d.num_classes, d.class_names, d.image_size) == (10, [str(i) for i in range(10)], 8)
    assert (len(d.train), len(d.val), d.on_device, d.warnings) == (1438, 359, False, [])
    assert d.source == "scikit-learn digits (8x8 grayscale, fixed 80/20 split) (1438 train / 359 val)"
    x, y = whole(d.train)
    check_batch(x, y, 1438, 8, 10)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])  # gray -> 3 equal channels
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01  # normalised with the train set's own stats
    assert torch.bincount(whole(d.val)[1]).min() >= 35  # stratified: every digit in val

    other = load(dataset="digits", seed=7)
    for a, b in ((d.train, other.train), (d.val, other.val)):
        assert all(torch.equal(u, v) for u, v in zip(whole(a), whole(b)))


def test_stratified_split_is_a_seeded_partition_in_class_proportions():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)[torch.randperm(100, generator=torch.Generator().manual_seed(5))]
    train, val = data_module.stratified_split(y, 0.2, seed=0)
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))
    assert torch.bincount(y[val]).tolist() == [10, 6, 4] and torch.bincount(y[train]).tolist() == [40, 24, 16]
    again, other = data_module.stratified_split(y, 0.2, seed=0), data_module.stratified_split(y, 0.2, seed=1)
    assert torch.equal(again[0], train) and torch.equal(again[1], val) and not torch.equal(other[1], val)
    # an exact count: shares of 8, 4.8 and 3.2; the largest remainder (.8) takes the 16th
    _, val = data_module.stratified_split(y, 0.0, seed=0, count=16)
    assert torch.bincount(y[val]).tolist() == [8, 5, 3]
    _, val = data_module.stratified_split(y, 0.0, seed=0, count=13)  # 6.5, 3.9, 2.6: 6 + 4 + 3
    assert torch.bincount(y[val]).tolist() == [6, 4, 3]


def test_synthetic_is_seeded_learnable_and_sized_by_limits():
    d = load(dataset="synthetic", num_classes=5, limit_train=300, limit_val=100, seed=3)
    assert (d.num_classes, len(d.class_names), len(d.train), len(d.val), d.image_size) == (5, 5, 300, 100, 32)
    x, y = whole(d.train)
    check_batch(x, y, 300, 32, 5)
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    # the same data whatever the training seed
    assert torch.equal(x, whole(load(dataset="synthetic", num_classes=5, limit_train=300, seed=9).train)[0])
    # learnable: the nearest class mean (from train) classifies val almost perfectly
    means = torch.stack([x[y == k].mean(0) for k in range(5)]).flatten(1)
    vx, vy = whole(d.val)
    assert (torch.cdist(vx.flatten(1), means).argmin(1) == vy).float().mean() > 0.9
    assert len(load(dataset="synthetic").train) == 2048


def test_cifar100_subset_loads_with_checksum_warning(tmp_path):
    folder = write_cifar(tmp_path, "cifar100", n_train=40, n_test=12)
    d = load(dataset="cifar100", root=str(tmp_path))
    assert (d.num_classes, d.class_names[:2], len(d.train), len(d.val)) == (100, ["fine_00", "fine_01"], 40, 12)
    assert d.source == f"CIFAR-100 from {folder} (40 train / 12 test)"
    assert len(d.warnings) == 1 and "files meta, train, test in" in d.warnings[0] and "checksum" in d.warnings[0]
    # pixels and fine labels come through in the right layout and order
    written = read_pickle(folder / "train")
    x, y = whole(d.train)
    check_batch(x, y, 40, 32, 100)
    assert y.tolist() == written["fine_labels"]
    pixels = (x * d.train.std + d.train.mean).round().to(torch.uint8)
    assert torch.equal(pixels, torch.from_numpy(written["data"]).view(40, 3, 32, 32))


def test_pretrained_weights_get_imagenet_normalisation(tmp_path):
    write_cifar(tmp_path, "cifar100", n_train=40, n_test=12)
    d = load_data(DataConfig(dataset="cifar100", root=str(tmp_path)), CPU, pretrained=True)
    imagenet = [torch.tensor(v).mul(255).view(1, 3, 1, 1) for v in data_module.IMAGENET_STATS]
    assert torch.allclose(d.train.mean, imagenet[0]) and torch.allclose(d.val.std, imagenet[1])
    assert d.source.endswith("(40 train / 12 test, ImageNet normalisation for the pretrained weights)")
    scratch = load(dataset="cifar100", root=str(tmp_path))
    cifar_mean = torch.tensor(data_module.CIFAR_STATS["cifar100"][0]).mul(255).view(1, 3, 1, 1)
    assert torch.allclose(scratch.train.mean, cifar_mean)  # a model from scratch: the dataset's own statistics


def test_cifar10_reads_all_five_batches_and_limits(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", n_train=50, n_test=20)
    d = load(dataset="cifar10", root=str(tmp_path), limit_train=33, limit_val=7)
    assert (d.num_classes, d.class_names, len(d.train), len(d.val)) == (10, CIFAR10_NAMES, 33, 7)
    assert d.source == f"CIFAR-10 from {folder} (33 of 50 train / 7 of 20 test)"
    labels = [y for i in range(1, 6) for y in read_pickle(folder / f"data_batch_{i}")["labels"]]
    assert whole(d.train)[1].tolist() == labels[:33]


def test_the_torch_free_cifar_folders_are_torchvisions():
    from torchvision.datasets import CIFAR10, CIFAR100

    from vitlab.config import CIFAR_FOLDERS

    assert {k: f for k, (_, f) in CIFAR_FOLDERS.items()} == {"cifar10": CIFAR10.base_folder,
                                                             "cifar100": CIFAR100.base_folder}


def test_holdout_evaluates_on_training_images_the_model_never_trains_on(tmp_path):
    write_cifar(tmp_path, "cifar10", n_train=100, n_test=20)
    d = load(dataset="cifar10", root=str(tmp_path), holdout=20)
    assert d.source.endswith("the test split unused (80 train / 20 held-out val)")
    everything = load(dataset="cifar10", root=str(tmp_path))

    def rows(x):
        return {tuple(r) for r in x.flatten(1).mul(1000).round().int().tolist()}

    train, held, all_train = rows(whole(d.train)[0]), rows(whole(d.val)[0]), rows(whole(everything.train)[0])
    assert not train & held and train | held == all_train  # a partition of the training images
    assert torch.bincount(whole(d.val)[1], minlength=10).tolist() == [2] * 10  # stratified by class
    assert torch.equal(whole(load(dataset="cifar10", root=str(tmp_path), holdout=20, seed=5).val)[0],
                       whole(d.val)[0])  # the same images for every run and seed
    odd = load(dataset="cifar10", root=str(tmp_path), holdout=15)  # exactly 15, not 10 classes x round(1.5)
    assert (len(odd.train), len(odd.val)) == (85, 15)
    with pytest.raises(DataError, match="data.holdout 100: .* has 100 training images; hold out fewer"):
        load(dataset="cifar10", root=str(tmp_path), holdout=100)
    with pytest.raises(ValueError, match="only CIFAR takes holdout"):
        DataConfig(dataset="digits", holdout=10)
    with pytest.raises(ValueError, match="less than or equal to 49999"):  # CIFAR's 50000: said before a run starts
        DataConfig(dataset="cifar100", holdout=50_000)


def test_cifar_pickle_resaved_by_python3_with_bytes_keys_loads(tmp_path):
    folder = write_cifar(tmp_path, "cifar100", n_train=8, n_test=4)
    batch = read_pickle(folder / "test")
    with open(folder / "test", "wb") as f:
        pickle.dump({k.encode(): v for k, v in batch.items()}, f, protocol=4)
    assert whole(load(dataset="cifar100", root=str(tmp_path)).val)[1].tolist() == batch["fine_labels"]


def test_missing_cifar_says_what_to_download_and_where(tmp_path):
    with pytest.raises(DataError) as e:
        load(dataset="cifar100", root=str(tmp_path / "data"))
    root = tmp_path / "data"
    assert str(e.value) == (
        f"CIFAR-100 not found under {root}/: expected {root}/cifar-100-python/{{train,test,meta}}. "
        f"Download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and extract it into {root}/ "
        "(or set data.root), or set data.download: true on a machine with internet.")
    folder = write_cifar(tmp_path, "cifar10", n_train=10, n_test=5)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz.*missing: data_batch_3"):
        load(dataset="cifar10", root=str(tmp_path))
    with pytest.raises(DataError, match=rf"data.root {folder} is the dataset's folder itself: set data.root to "
                                        rf"{tmp_path}\.$"):  # it said to download it into cifar-10-batches-py/
        load(dataset="cifar10", root=str(folder))
    (root / "cifar-100-python.tar.gz").parent.mkdir(parents=True)
    (root / "cifar-100-python.tar.gz").write_bytes(b"")  # fetched, not extracted
    with pytest.raises(DataError, match=rf"is there, not extracted: tar xzf {root}/cifar-100-python.tar.gz -C {root}"):
        load(dataset="cifar100", root=str(root))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    folder = write_cifar(tmp_path, "cifar100", n_train=8, n_test=4)
    marker = write_malicious_pickle(folder / "train")
    with pytest.raises(DataError, match=r"refusing to load .*train: it references os\.system, which CIFAR files never"):
        load(dataset="cifar100", root=str(tmp_path))
    assert not marker.exists()
    read_pickle(folder / "train")  # the control: plain pickle runs the command
    assert marker.exists()


def test_truncated_cifar_pickle_is_a_data_error(tmp_path):
    folder = write_cifar(tmp_path, "cifar10", n_train=10, n_test=5)
    blob = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="test_batch is not a readable CIFAR pickle"):
        load(dataset="cifar10", root=str(tmp_path))


def test_imagefolder_decodes_to_size_and_three_channels(tmp_path):
    write_imagefolder(tmp_path, classes=("cat", "dog", "emu"), n_per_class=4, size=40)
    d = load(dataset="imagefolder", root=str(tmp_path), image_size=16, num_workers=0, limit_val=5)
    assert (d.num_classes, d.class_names, len(d.train), len(d.val), d.image_size) == (3, ["cat", "dog", "emu"], 12, 5, 16)
    assert "3 classes" in d.source and d.warnings == []
    x, y = whole(d.train, sizes=[5, 7])
    check_batch(x, y, 12, 16, 3)
    assert y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    pixels = (x * d.train.std + d.train.mean).round()
    assert torch.equal(pixels[1, 0], pixels[1, 2]) and not torch.equal(pixels[0, 0], pixels[0, 2])  # odd PNGs are gray


def test_imagefolder_limit_draws_from_every_class(tmp_path):
    # ImageFolder lists images class by class: a limit used to keep the first classes only, in training and
    # in the accuracy alike
    write_imagefolder(tmp_path, classes=("ant", "bee", "cat", "dog", "emu"), n_per_class=4, size=8)
    d = load(dataset="imagefolder", root=str(tmp_path), image_size=8, num_workers=0, limit_train=10, limit_val=7)
    _, y = whole(d.train)
    assert sorted(y.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4] and len(d.val) == 7
    assert sorted(set(whole(d.val)[1].tolist())) == [0, 1, 2, 3, 4]
    again = load(dataset="imagefolder", root=str(tmp_path), image_size=8, num_workers=0, limit_train=10, seed=5)
    assert torch.equal(whole(again.train)[0], whole(d.train)[0])  # the same images for every run and seed
    assert "10 of 20 train / 7 of 20 val" in d.source


def test_imagefolder_with_workers_matches_in_process(tmp_path):
    write_imagefolder(tmp_path, n_per_class=6, size=24)
    serial = whole(load(dataset="imagefolder", root=str(tmp_path), image_size=16, num_workers=0).train,
                   augment=True, sizes=[4] * 3)
    parallel = whole(load(dataset="imagefolder", root=str(tmp_path), image_size=16, num_workers=2).train,
                     augment=True, sizes=[6, 6])
    assert torch.equal(serial[0], parallel[0]) and torch.equal(serial[1], parallel[1])


def test_16_bit_and_float_images_are_scaled_to_8_bits_not_clipped(tmp_path):
    """PIL's convert("RGB") clips: a 16-bit PNG (microscopy, medical) trained as an all-white image."""
    from PIL import Image

    from vitlab.engine.data import read_image

    levels = np.array([[0, 16384], [32768, 65535]], dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert np.asarray(read_image(str(tmp_path / "deep.png")))[..., 0].tolist() == [[0, 64], [128, 255]]
    Image.fromarray(np.full((2, 2), 200, dtype=np.uint16)).save(tmp_path / "dark.png")  # one scale for all images:
    assert np.asarray(read_image(str(tmp_path / "dark.png"))).max() == 1  # a dark one stays dark, not read as 8-bit
    floats = Image.fromarray(np.array([[0.0, 0.5], [0.25, 1.0]], dtype=np.float32))  # mode F, 0..1
    floats.save(tmp_path / "f.tiff")
    assert np.asarray(read_image(str(tmp_path / "f.tiff")))[..., 0].tolist() == [[0, 128], [64, 255]]


def test_an_image_over_pils_pixel_limit_is_said_as_too_large_not_unreadable(tmp_path, monkeypatch):
    from PIL import Image

    from vitlab.engine.data import read_image
    from vitlab.errors import DataError

    Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 1,600 pixels: over twice the limit, PIL refuses
    with pytest.raises(DataError, match=r"big.png: larger than PIL reads \(Image size \(1600 pixels\).*downscale it"):
        read_image(str(tmp_path / "big.png"))


def test_a_corrupt_image_fails_its_run_as_data_naming_the_file(tmp_path):
    """PIL's UnidentifiedImageError came back from a DataLoader worker with the worker's traceback in it, and the
    run failed as "error"; now one line names the file, as a data failure."""
    from vitlab.config import RunConfig
    from vitlab.engine.runner import train_run

    write_imagefolder(tmp_path / "images", n_per_class=6, size=8)
    bad = tmp_path / "images" / "train" / "dog" / "0003.png"
    bad.write_bytes(b"not a png")
    cfg = RunConfig.model_validate({"name": "f", "model": {"kind": "vit", "patch_size": 4, "embed_dim": 16,
                                                           "heads": 1, "layers": 1},
                                    "data": {"dataset": "imagefolder", "root": str(tmp_path / "images"),
                                             "image_size": 8, "num_workers": 1},
                                    "train": {"epochs": 1, "batch_size": 4}})
    summary = train_run(cfg, experiment="e", runs_dir=tmp_path / "runs")
    assert (summary["status"], summary["failure"]) == ("failed", "data")
    assert summary["error"] == f"{bad}: not a readable image (UnidentifiedImageError); delete or replace it"


def test_imagefolder_class_mismatch_and_missing_split(tmp_path):
    write_imagefolder(tmp_path, classes=("cat", "dog"), splits=("train",))
    with pytest.raises(DataError, match=r"image folder .*val.*expected .*train/<class>/<image>"):
        load(dataset="imagefolder", root=str(tmp_path))
    write_imagefolder(tmp_path, classes=("cat", "emu"), splits=("val",))
    with pytest.raises(DataError, match=r"different classes \(only in train: \['dog'\]; only in val: \['emu'\]\)"):
        load(dataset="imagefolder", root=str(tmp_path))


# -- the batch pipeline ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("image_size", [None, 48, 20])
def test_batch_partition_does_not_change_any_sample(image_size):
    d = load(dataset="synthetic", limit_train=64, image_size=image_size, augment=True, seed=5)
    assert d.train.stored_size == 32  # resized batch by batch, after the augmentation
    order = torch.randperm(64, generator=torch.Generator().manual_seed(1))
    outputs = []
    for sizes in ([64], [16] * 4, [8] * 8, [1, 5, 30, 28]):
        xs, ys = zip(*d.train.batches(list(order.split(sizes)), epoch=2, augment=True))
        outputs.append((torch.cat(xs), torch.cat(ys)))
    assert outputs[0][0].shape == (64, 3, d.image_size, d.image_size)
    for x, y in outputs[1:]:
        assert torch.equal(x, outputs[0][0]) and torch.equal(y, outputs[0][1])


def test_batch_partition_exact_for_streamed_folder(tmp_path):
    write_imagefolder(tmp_path, n_per_class=8, size=30)
    d = load(dataset="imagefolder", root=str(tmp_path), image_size=24, num_workers=0)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    a = torch.cat([x for x, _ in d.train.batches([order], epoch=1, augment=True)])
    b = torch.cat([x for x, _ in d.train.batches(list(order.split(3)), epoch=1, augment=True)])
    assert torch.equal(a, b)


def shifted_copies(x, pad, fill):
    """Every zero-padded shift (and its mirror) of one normalised image: what a crop+flip may produce."""
    h, w = x.shape[-2:]
    padded = fill.view(3, 1, 1).expand(3, h + 2 * pad, w + 2 * pad).clone()
    padded[:, pad:pad + h, pad:pad + w] = x
    crops = [padded[:, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    return crops + [c.flip(-1) for c in crops]


def test_augmentation_is_pad_crop_flip_per_seed_and_epoch():
    d = load(dataset="synthetic", limit_train=48, seed=1)
    plain, _ = whole(d.train)
    a, _ = whole(d.train, epoch=0, augment=True)
    again, _ = whole(d.train, epoch=0, augment=True, sizes=[7, 41])
    later, _ = whole(d.train, epoch=1, augment=True)
    reseeded, _ = whole(load(dataset="synthetic", limit_train=48, seed=2).train, epoch=0, augment=True)
    assert torch.equal(a, again)  # same (seed, epoch): same augmentation
    changed = lambda u, v: (u != v).flatten(1).any(1).float().mean()
    assert changed(a, plain) > 0.9 and changed(a, later) > 0.9 and changed(a, reseeded) > 0.9
    # each augmented image is one of the 81 shifts of the original (pad 32 // 8 = 4, zero fill), maybe mirrored
    zero = (torch.zeros(1, 3, 1, 1) - d.train.mean) / d.train.std  # a zero pixel after normalisation
    flips = 0
    for i in range(12):
        candidates = shifted_copies(plain[i], 4, zero)
        match = [k for k, c in enumerate(candidates) if torch.equal(c, a[i])]
        assert match, f"sample {i} is not a shifted/mirrored copy"
        flips += match[0] >= 81
    assert 0 < flips < 12


def test_a_run_evaluates_its_val_split_unaugmented(tmp_path):
    from vitlab.config import RunConfig
    from vitlab.engine.models import build_model
    from vitlab.engine.runner import train_run

    cfg = RunConfig.model_validate({
        "name": "aug", "model": {"kind": "vit", "patch_size": 2, "embed_dim": 16, "heads": 2, "layers": 1},
        "data": {"dataset": "synthetic", "image_size": 8, "limit_train": 64, "limit_val": 64, "augment": True},
        "train": {"epochs": 1, "batch_size": 32, "seed": 4}})
    summary = train_run(cfg, experiment="aug", runs_dir=tmp_path)
    model = build_model(cfg, 10).eval()
    model.load_state_dict(torch.load(f"{summary['run_dir']}/checkpoint.pt", weights_only=True)["model"])
    x, y = whole(load_data(cfg.data, CPU, seed=4).val)  # augment=False: the images as stored
    with torch.no_grad():
        logits = model(x)
    assert summary["eval_loss"] == pytest.approx(F.cross_entropy(logits, y).item(), abs=1e-6)
    assert summary["accuracy"] == (logits.argmax(1) == y).float().mean().item()


def test_digits_resized_to_a_model_size_stays_normalised():
    d = load(dataset="digits", image_size=32)
    x, y = whole(d.val, sizes=[100] * 3 + [59])
    check_batch(x, y, 359, 32, 10)
    assert abs(x.mean()) < 0.05 and 0.8 < x.std() < 1  # upsampling smooths: a little less spread than at 8x8
    small = load(dataset="digits")
    up = F.interpolate(whole(small.val)[0], size=32, mode="bilinear", align_corners=False)
    assert (x - up).abs().max() < 1e-4  # the same images: resized batch by batch from the stored 8x8
