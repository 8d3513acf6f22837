"""labkit.artifacts: checkpoints round-trip, a failed write leaves the old file, the manifest hashes files."""
import json
import os
import stat

import pytest
import torch

from labkit import artifacts
from labkit.artifacts import ArtifactError, RunDir, atomic_write_text, sha256_file
from labkit.models import Model1
from labkit.train import History


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = Model1(channels=(4, 8), hidden=8)
    model.eval()
    run = RunDir(tmp_path, chapter="02_model1")
    run.save_checkpoint("model1/baseline.pt", model, config={"channels": [4, 8], "hidden": 8}, epoch=3)

    state, meta = RunDir(tmp_path).load_checkpoint("model1/baseline.pt")
    assert meta == {"config": {"channels": [4, 8], "hidden": 8}, "epoch": 3}
    torch.manual_seed(1)
    restored = Model1(**meta["config"])
    restored.load_state_dict(state)
    restored.eval()
    x = torch.randn(2, 3, 100, 100)
    assert torch.equal(model(x), restored(x))


def test_history_round_trips_through_json(tmp_path):
    run = RunDir(tmp_path)
    h = History()
    h.append(epoch=1, train_loss=1.2, train_acc=0.4, val_loss=1.1, val_acc=0.5, lr=1e-3, seconds=3.5)
    run.save_json("model1/baseline_history.json", h.to_dict())
    assert History.from_dict(run.load_json("model1/baseline_history.json")) == h


def test_failed_write_leaves_the_old_file_and_no_temp_files(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.save_json("tuning/model1_best.json", {"lr": 1e-3})
    before = run.path("tuning/model1_best.json").read_bytes()

    def crash(*args):
        raise OSError("disk full (test)")

    monkeypatch.setattr(artifacts.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        run.save_json("tuning/model1_best.json", {"lr": 5.0})
    monkeypatch.undo()
    assert run.path("tuning/model1_best.json").read_bytes() == before
    assert os.listdir(tmp_path / "tuning") == ["model1_best.json"]


def test_manifest_records_hash_and_chapter_of_every_file(tmp_path):
    run = RunDir(tmp_path, chapter="01_data")
    run.save_json("data/split.json", {"train": [0, 1], "val": [2]})
    run.save_torch("data/tensor.pt", torch.arange(5))
    manifest = run.manifest()
    assert set(manifest) == {"data/split.json", "data/tensor.pt"}
    for name, entry in manifest.items():
        assert entry["sha256"] == sha256_file(run.path(name))
        assert entry["chapter"] == "01_data"
    old_hash = manifest["data/split.json"]["sha256"]
    RunDir(tmp_path, chapter="04_tuning").save_json("data/split.json", {"train": [0], "val": [1, 2]})
    entry = RunDir(tmp_path).manifest()["data/split.json"]
    assert entry["sha256"] != old_hash and entry["chapter"] == "04_tuning"
    assert json.loads((tmp_path / "manifest.json").read_text()) == RunDir(tmp_path).manifest()


def test_missing_and_corrupt_files_are_named(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(ArtifactError, match="model1/final.pt is missing"):
        run.load_checkpoint("model1/final.pt")
    run.path("broken.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="broken.json is not valid JSON"):
        run.load_json("broken.json")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_umask_mode_not_the_temp_files(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "TEAM.ipynb", "{}")
        RunDir(tmp_path / "run").save_json("x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "run" / "x.json").stat().st_mode) == 0o666 & ~umask
