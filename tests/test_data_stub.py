"""The synthetic stub: the real Kaggle layout, reproducible bytes, real-looking colours, and classes
that colour statistics alone cannot tell apart."""
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_stub import CLASS_MIX, FIRST_TEST_NUMBER, make_stub
from data_stub.generator import make_image

REPO = Path(__file__).resolve().parents[1]


def _digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_writes_the_kaggle_layout(tmp_path):
    out = tmp_path / "stub"
    subprocess.run([sys.executable, "-m", "data_stub", "--out", str(out), "--train", "12", "--test", "5",
                    "--seed", "3", "--zip"], check=True, cwd=REPO, capture_output=True)
    train_lines = (out / "train.csv").read_text().splitlines()
    example_lines = (out / "example.csv").read_text().splitlines()
    assert train_lines[0] == example_lines[0] == "Filename,Label"
    assert [line.split(",")[0] for line in train_lines[1:]] == [f"{i}.png" for i in range(1, 13)]
    assert all(int(line.split(",")[1]) in range(4) for line in train_lines[1:])
    assert example_lines[1:] == [f"{FIRST_TEST_NUMBER + i}.png,0" for i in range(5)]
    for name in ("train/1.png", "train/12.png", f"test/{FIRST_TEST_NUMBER + 4}.png"):
        with Image.open(out / name) as image:
            assert image.size == (100, 100) and image.mode == "RGB"
    with zipfile.ZipFile(out / "train.zip") as archive:
        assert archive.read("train/7.png") == (out / "train/7.png").read_bytes()
    with zipfile.ZipFile(out / "test.zip") as archive:
        assert len(archive.namelist()) == 5


def test_same_arguments_same_bytes_whatever_the_worker_count(tmp_path):
    first = make_stub(tmp_path / "a", 30, 6, seed=1, zip=True, workers=1)
    second = make_stub(tmp_path / "b", 30, 6, seed=1, zip=True, workers=2)
    assert _digests(first) == _digests(second)
    other_seed = make_stub(tmp_path / "c", 30, 6, seed=2, workers=1)
    assert (other_seed / "train/1.png").read_bytes() != (first / "train/1.png").read_bytes()


def test_make_stub_reuses_a_complete_stub_and_rebuilds_on_other_arguments(tmp_path):
    out = make_stub(tmp_path / "s", 8, 2, seed=0, workers=1)
    before = (out / "train/1.png").stat().st_mtime_ns
    make_stub(out, 8, 2, seed=0, workers=1)  # same arguments: nothing rewritten
    assert (out / "train/1.png").stat().st_mtime_ns == before
    make_stub(out, 5, 2, seed=0, workers=1)  # fewer images: no stale files left behind
    assert sorted(p.name for p in (out / "train").iterdir()) == [f"{i}.png" for i in range(1, 6)]
    assert len((out / "train.csv").read_text().splitlines()) == 6


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="n_train"):
        make_stub(tmp_path / "x", 0, 1)


@pytest.fixture(scope="module")
def sample():
    """1,500 generated patches (in memory: the PNG round trip is lossless), enough for stable statistics."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # as make_stub does: BLAS threads only contend on tiny products
        made = [make_image(11, "train", i) for i in range(1500)]
    labels = np.array([label for label, _ in made])
    pixels = np.stack([image for _, image in made]).reshape(len(made), -1, 3) / 255.0
    return labels, pixels


@pytest.mark.slow
def test_colours_and_class_mix_match_the_real_data(sample):
    labels, pixels = sample
    assert np.allclose(pixels.reshape(-1, 3).mean(0), (0.759, 0.616, 0.821), atol=0.05)
    assert np.allclose(pixels.reshape(-1, 3).std(0), (0.173, 0.198, 0.118), atol=0.06)
    mix = np.bincount(labels, minlength=4) / len(labels)
    assert np.allclose(mix, CLASS_MIX, atol=0.04), mix
    per_image_mean = pixels.mean(1)
    assert per_image_mean.std(0).min() > 0.01  # stain varies between patches


@pytest.mark.slow
def test_colour_statistics_alone_do_not_give_the_class_away(sample):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels, pixels = sample
    features = np.concatenate([pixels.mean(1), pixels.std(1)], axis=1)  # per-channel mean and std
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    accuracy = cross_val_score(model, features, labels, cv=5).mean()
    assert accuracy < 0.60, f"colour statistics alone reach {accuracy:.1%}"
