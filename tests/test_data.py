"""labkit.data: layout finding, validation with clear errors, the decode-once cache, split, Dataset."""
import json
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from data_stub import make_stub
from labkit.artifacts import RunDir
from labkit.data import (
    DataError,
    NucleiDataset,
    denormalise,
    find_layout,
    make_loader,
    prepare,
    read_labels,
    stratified_split,
)


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    return make_stub(tmp_path_factory.mktemp("stub"), 60, 12, seed=4, zip=True, workers=1)


@pytest.fixture
def copy(stub, tmp_path):
    """A private, editable copy of the stub (folders and csvs, no zips)."""
    out = tmp_path / "data"
    shutil.copytree(stub, out, ignore=shutil.ignore_patterns("*.zip"))
    return out


def _write_csv(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


# --- layout -------------------------------------------------------------------------------------

def test_finds_flat_and_nested_layouts(copy, tmp_path):
    layout = find_layout(copy)
    assert layout.train_dir == copy / "train" and layout.test_dir == copy / "test"
    nested = tmp_path / "nested"
    (nested / "competition").mkdir(parents=True)
    shutil.copy(copy / "train.csv", nested / "competition")
    shutil.copy(copy / "example.csv", nested / "competition")
    shutil.copytree(copy / "train", nested / "competition" / "train" / "train")  # train/train/1.png
    shutil.copytree(copy / "test", nested / "competition" / "test")
    layout = find_layout(nested)
    assert layout.root == nested / "competition"
    assert layout.train_dir == nested / "competition" / "train" / "train"


def test_zips_only_are_extracted_once_into_the_extract_dir(stub, tmp_path):
    data = tmp_path / "zips"
    data.mkdir()
    for name in ("train.csv", "example.csv", "train.zip", "test.zip"):
        shutil.copy(stub / name, data)
    with pytest.raises(DataError, match="extract_dir"):
        find_layout(data)
    layout = find_layout(data, extract_dir=tmp_path / "x")
    assert (layout.train_dir / "1.png").read_bytes() == (stub / "train" / "1.png").read_bytes()
    assert find_layout(data, extract_dir=tmp_path / "x").train_dir == layout.train_dir  # reused


def test_zip_entry_escaping_the_target_is_refused(copy, tmp_path):
    shutil.rmtree(copy / "train")
    with zipfile.ZipFile(copy / "train.zip", "w") as archive:
        archive.writestr("train/1.png", b"x")
        archive.writestr("../../escaped.txt", b"gotcha")
    with pytest.raises(DataError, match=r"'\.\./\.\./escaped\.txt'.*refused"):
        find_layout(copy, extract_dir=tmp_path / "x")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_no_train_csv(tmp_path):
    with pytest.raises(DataError, match="no train.csv in"):
        find_layout(tmp_path)


# --- labels -------------------------------------------------------------------------------------

def test_read_labels_ok(copy):
    frame = read_labels(copy / "train.csv")
    assert list(frame.columns) == ["Filename", "Label"] and frame.Label.dtype == np.int64
    assert len(frame) == 60 and frame.Filename.iloc[0] == "1.png"


@pytest.mark.parametrize("lines, message", [
    (["Filename,Lable", "1.png,0"], r"'Lable' should be 'Label'"),
    (["Name,Label", "1.png,0"], r"expected exactly Filename,Label"),
    (["Filename,Label", "1.png,0", "2.png,4"], r"line 3: Label '4' for 2.png is not an integer 0..3"),
    (["Filename,Label", "1.png,cancer"], r"line 2: Label 'cancer'"),
    (["Filename,Label", "1.png,1.5"], r"line 2: Label '1.5'"),
    (["Filename,Label", "1.png,0", "2.png,1", "1.png,2"], r"1.png is listed more than once \(lines 2, 4\)"),
    (["Filename,Label"], r"lists no images \(empty dataset\)"),
])
def test_bad_csv_gives_a_clear_error(tmp_path, lines, message):
    path = _write_csv(tmp_path / "train.csv", lines)
    with pytest.raises(DataError, match=message) as info:
        read_labels(path)
    assert str(path) in str(info.value)


# --- decoding and the cache ------------------------------------------------------------------------

def test_missing_images_are_named_up_to_ten(copy, tmp_path):
    for i in range(1, 13):
        (copy / "train" / f"{i}.png").unlink()
    (copy / "train" / "20.png").rename(copy / "train" / "moved.png")  # keep train/ findable via 13.png
    lines = ["Filename,Label"] + [f"{i}.png,0" for i in range(13, 61)] + [f"{i}.png,0" for i in range(1, 13)]
    _write_csv(copy / "train.csv", lines)
    with pytest.raises(DataError, match=r"13 image\(s\) listed in .*train.csv are missing") as info:
        prepare(copy, tmp_path / "cache")
    message = str(info.value)
    assert "20.png, 1.png, 2.png" in message and "and 3 more" in message and "12.png" not in message


def test_corrupt_png_is_named(copy, tmp_path):
    (copy / "train" / "7.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"7.png \(line 8 of train.csv\) is not a readable image"):
        prepare(copy, tmp_path / "cache")


def test_other_sizes_and_modes_are_converted_with_one_warning(copy, tmp_path):
    Image.new("RGB", (64, 64), (200, 100, 150)).save(copy / "train" / "2.png")
    Image.new("RGB", (120, 90), (10, 20, 30)).save(copy / "train" / "3.png")
    Image.new("RGBA", (100, 100), (1, 2, 3, 128)).save(copy / "train" / "4.png")
    Image.new("L", (100, 100), 77).save(copy / "train" / "5.png")
    with pytest.warns(UserWarning, match=r"2 image\(s\) .* are not 100x100 \(e.g. 2.png is 64x64\)") as record:
        data = prepare(copy, tmp_path / "cache")
    assert sum("not 100x100" in str(w.message) for w in record) == 1
    assert data.train_images.shape == (60, 3, 100, 100)
    assert data.train_images[1, :, 50, 50].tolist() == [200, 100, 150]
    assert data.train_images[3, :, 0, 0].tolist() == [1, 2, 3]
    assert data.train_images[4, :, 0, 0].tolist() == [77, 77, 77]


def test_prepare_decodes_once_and_matches_the_pngs(copy, tmp_path, monkeypatch):
    data = prepare(copy, tmp_path / "cache")
    frame = read_labels(copy / "train.csv")
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape == (60, 3, 100, 100)
    assert data.train_labels.tolist() == frame.Label.tolist() and data.train_files == frame.Filename.tolist()
    with Image.open(copy / "train" / "9.png") as image:
        assert torch.equal(data.train_images[8], torch.tensor(np.asarray(image)).permute(2, 0, 1))
    example = read_labels(copy / "example.csv").Filename.tolist()
    assert data.test_files == example and data.test_images.shape == (12, 3, 100, 100)

    import labkit.data as module

    def no_decoding(*args):
        raise AssertionError("decoded again")
    monkeypatch.setattr(module, "_decode", no_decoding)
    again = prepare(copy, tmp_path / "cache")  # from the cache: no PNG decoded
    assert torch.equal(again.train_images, data.train_images)

    # a changed image changes the key: the stale cache is not used
    Image.new("RGB", (100, 100), (0, 0, 0)).save(copy / "train" / "9.png")
    with pytest.raises(AssertionError, match="decoded again"):
        prepare(copy, tmp_path / "cache")


def test_statistics_come_from_the_training_split_only(copy, tmp_path):
    data = prepare(copy, tmp_path / "cache", val_fraction=0.25, seed=1)
    train = data.train_images[data.train_idx].double() / 255
    assert np.allclose(data.mean, train.mean((0, 2, 3)).tolist(), atol=1e-9)
    assert np.allclose(data.std, train.std((0, 2, 3), unbiased=False).tolist(), atol=1e-9)
    everything = data.train_images.double() / 255
    assert not np.allclose(data.mean, everything.mean((0, 2, 3)).tolist(), atol=1e-9)


def test_split_is_saved_and_reused(copy, tmp_path):
    run = RunDir(tmp_path / "run")
    first = prepare(copy, tmp_path / "cache", run_dir=run, val_fraction=0.25, seed=2)
    saved = json.loads((tmp_path / "run" / "data" / "split.json").read_text())
    assert saved["val_idx"] == first.val_idx.tolist()
    assert json.loads((tmp_path / "run" / "data" / "stats.json").read_text())["mean"] == first.mean
    # a hand-edited (still valid) split is what later calls get: it is read, not remade
    saved["val_idx"], saved["train_idx"] = saved["val_idx"][1:], sorted(saved["train_idx"] + saved["val_idx"][:1])
    (tmp_path / "run" / "data" / "split.json").write_text(json.dumps(saved))
    again = prepare(copy, tmp_path / "cache", run_dir=tmp_path / "run", val_fraction=0.25, seed=2)
    assert again.val_idx.tolist() == saved["val_idx"]
    with pytest.warns(UserWarning, match="other data or settings"):
        other = prepare(copy, tmp_path / "cache", run_dir=run, val_fraction=0.25, seed=3)
    assert other.val_idx.tolist() != saved["val_idx"]


def test_stratified_split_keeps_class_shares():
    labels = torch.tensor([0] * 10 + [1] * 46 + [2] * 9 + [3] * 35)
    train_idx, val_idx = stratified_split(labels, 0.2, seed=0)
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(100))
    assert torch.bincount(labels[val_idx], minlength=4).tolist() == [2, 9, 2, 7]
    assert torch.equal(stratified_split(labels, 0.2, seed=0)[1], val_idx)
    assert not torch.equal(stratified_split(labels, 0.2, seed=1)[1], val_idx)
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(labels, 1.0, seed=0)


# --- Dataset and loader -------------------------------------------------------------------------

def test_dataset_normalises_and_augments_with_square_symmetries():
    images = torch.randint(0, 256, (5, 3, 100, 100), dtype=torch.uint8)
    mean, std = [0.7, 0.6, 0.8], [0.2, 0.2, 0.1]
    plain = NucleiDataset(images, torch.tensor([0, 1, 2, 3, 0]), mean=mean, std=std)
    x, y = plain[2]
    assert x.dtype == torch.float32 and y == 2
    assert torch.allclose(denormalise(x, mean, std), images[2].float() / 255, atol=1e-5)

    original = images[0].float()
    symmetries = [torch.rot90(v, k, dims=(1, 2)) for v in (original, original.flip(2)) for k in range(4)]
    augmented = NucleiDataset(images, None, mean=mean, std=std, augment=True)
    seen = set()
    torch.manual_seed(0)
    for _ in range(60):
        x, y = augmented[0]
        restored = (denormalise(x, mean, std) * 255).round()
        matches = [k for k, s in enumerate(symmetries) if torch.equal(restored, s)]
        assert len(matches) == 1 and y == -1
        seen.add(matches[0])
    assert seen == set(range(8))


def test_loader_and_class_weights(copy, tmp_path):
    data = prepare(copy, tmp_path / "cache", val_fraction=0.25)
    train = make_loader(data.train_dataset(), batch_size=16, shuffle=True, device="cpu")
    batches = list(train)
    assert all(x.shape == (16, 3, 100, 100) and y.dtype == torch.int64 for x, y in batches)
    assert len(batches) == len(data.train_idx) // 16  # training drops the incomplete last batch
    assert train.num_workers == 0 and not train.pin_memory
    val = make_loader(data.val_dataset(), batch_size=16, shuffle=False, device="cpu")
    assert sum(len(y) for _, y in val) == len(data.val_idx)

    counts = torch.bincount(data.train_labels[data.train_idx], minlength=4).double()
    weights = data.class_weights()
    assert torch.allclose(weights.double() * counts, torch.full((4,), float(counts.sum()) / 4, dtype=torch.float64), rtol=1e-5)
    assert data.class_counts().sum() == 60 and data.class_counts("val").sum() == len(data.val_idx)
    subset = data.train_dataset(subset=0.5)
    assert len(subset) == round(0.5 * len(data.train_idx))


# --- batches made where the model runs --------------------------------------------------------------

def per_item_reference(images, mean, std):
    """The per-item normalisation the Dataset used before batches: x * (1 / (255 std)) - mean / std."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return torch.stack([im.float() * (1 / (255 * std_t)) + (-mean_t / std_t) for im in images])


def test_batches_reproduce_the_normalisation_and_the_eight_views_bit_for_bit():
    from labkit.data import dihedral_view

    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (6, 3, 100, 100), dtype=torch.uint8, generator=g)
    mean, std = [0.759, 0.616, 0.821], [0.173, 0.198, 0.118]
    expected = per_item_reference(images, mean, std)
    plain = NucleiDataset(images, torch.arange(6) % 4, mean=mean, std=std)
    x, y = plain.__getitems__(torch.arange(6))
    assert torch.equal(x, expected) and torch.equal(y, torch.arange(6) % 4)

    augmented = NucleiDataset(images, torch.arange(6), mean=mean, std=std, augment=True)
    torch.manual_seed(0)
    hits = torch.zeros(6, 8, dtype=torch.int64)
    for _ in range(80):
        x, y = augmented.__getitems__(torch.arange(6))
        assert sorted(y.tolist()) == list(range(6))  # the batch's images, in a random order, with their labels
        for i, image in enumerate(y.tolist()):
            matches = [v for v in range(8) if torch.equal(x[i], dihedral_view(expected[image], v))]
            assert len(matches) == 1  # exactly one of the 8 flips/rotations, bit for bit
            hits[image, matches[0]] += 1
    assert (hits > 0).sum() >= 40  # every image is seen in most of its 8 views (80 draws each) ...
    counts = hits.sum(0)
    assert counts.max() < 2 * counts.min()  # ... and the 8 views about equally often (480 draws, 60 each)
    # a single item too gets a random view, not always the first eighth's
    singles = set()
    for _ in range(60):
        x, y = augmented[2]
        singles.add(next(v for v in range(8) if torch.equal(x, dihedral_view(expected[2], v))))
    assert singles == set(range(8)) and y == 2


def test_the_loader_makes_each_batch_in_one_call_without_per_item_python(monkeypatch):
    from labkit.data import BatchIndices

    images = torch.randint(0, 256, (50, 3, 100, 100), dtype=torch.uint8)
    dataset = NucleiDataset(images, torch.arange(50) % 4, mean=[0.5] * 3, std=[0.2] * 3, augment=True)
    calls = []
    original = NucleiDataset.__getitems__
    monkeypatch.setattr(NucleiDataset, "__getitem__", lambda self, i: pytest.fail("per-item access"))
    monkeypatch.setattr(NucleiDataset, "__getitems__", lambda self, idx: calls.append(idx) or original(self, idx))
    loader = make_loader(dataset, batch_size=16, shuffle=True, device="cpu")
    assert isinstance(loader.batch_sampler, BatchIndices)
    batches = list(loader)
    assert len(batches) == len(calls) == 3 == len(loader)  # 50 // 16, the incomplete batch dropped
    assert all(isinstance(idx, torch.Tensor) and len(idx) == 16 for idx in calls)  # one index tensor each
    assert len(torch.cat(calls).unique()) == 48  # a permutation: no image twice in an epoch
    val = make_loader(NucleiDataset(images, torch.arange(50), mean=[0.5] * 3, std=[0.2] * 3), 16, shuffle=False)
    assert torch.equal(torch.cat([y for _, y in val]), torch.arange(50))  # in order, all of them


def test_a_weighted_draw_follows_its_weights_and_its_seed():
    labels = torch.tensor([0] * 90 + [1] * 10)
    dataset = NucleiDataset(torch.zeros(100, 3, 100, 100, dtype=torch.uint8), labels, mean=[0.5] * 3, std=[0.2] * 3)
    weights = torch.where(labels == 0, 1 / 90, 1 / 10)  # both classes equally often

    def draw(seed):
        loader = make_loader(dataset, 50, shuffle=True, weights=weights, generator=torch.Generator().manual_seed(seed))
        return torch.cat([torch.cat([y for _, y in loader]) for _ in range(20)])

    drawn = draw(0)
    assert len(drawn) == 2000 and 0.4 < drawn.float().mean() < 0.6  # class 1 was 10% of the images
    assert torch.equal(drawn, draw(0)) and not torch.equal(drawn, draw(1))


def test_to_device_copies_the_split_once_and_keeps_the_settings():
    images = torch.randint(0, 256, (4, 3, 100, 100), dtype=torch.uint8)
    dataset = NucleiDataset(images, None, mean=[0.7, 0.6, 0.8], std=[0.2, 0.2, 0.1], augment=True)
    moved = dataset.to("cpu")
    assert moved.augment and moved.mean == dataset.mean and moved.std == dataset.std
    assert torch.equal(moved.scale, dataset.scale) and torch.equal(moved.shift, dataset.shift)


def test_the_gpus_one_gather_gives_each_image_one_of_its_eight_views_bit_for_bit():
    """random_dihedral's GPU way (one gather through a table of where each view takes each pixel from),
    run here on the CPU: every image comes out exactly as one of its 8 views, and all 8 occur."""
    from labkit.data import dihedral_view, random_dihedral

    images = torch.randint(0, 256, (16, 3, 100, 100), dtype=torch.uint8)
    torch.manual_seed(0)
    seen = torch.zeros(8, dtype=torch.int64)
    for _ in range(10):
        out = random_dihedral(images, by_gather=True)
        for i in range(16):
            matches = [v for v in range(8) if torch.equal(out[i], dihedral_view(images[i], v))]
            assert len(matches) == 1
            seen[matches[0]] += 1
    assert (seen > 0).all() and seen.max() < 3 * seen.min()  # 160 draws, 20 expected per view
