"""What a chapter depends on (chapter_inputs.py) and what it reads (labkit.artifacts): the rules that decide
which chapters a rebuild runs again, tested without building."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import chapter_inputs
from labkit import artifacts

CHAPTERS = sorted((REPO / "chapters").glob("[0-9][0-9]_*.py"))
PARAMS = {"team": "T", "seed": 0, "run_dir": "/a/run"}


def inputs_of(labkit_dir: Path, params=PARAMS, environment=None) -> dict[str, dict]:
    code = chapter_inputs.LabkitCode(labkit_dir)
    return {p.stem: chapter_inputs.chapter_inputs(p, code, params, environment or {}) for p in CHAPTERS}


@pytest.fixture(scope="module")
def current():
    return inputs_of(REPO / "labkit")


def edited_labkit(tmp_path: Path, module: str, anchor: str, insert: str) -> Path:
    """A copy of labkit with ``insert`` put on the line after ``anchor`` in ``module``."""
    copy = tmp_path / "labkit"
    shutil.copytree(REPO / "labkit", copy, ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / module
    text = path.read_text()
    assert anchor in text, f"{module} no longer has {anchor!r}: update the test"
    path.write_text(text.replace(anchor, anchor + insert, 1))
    return copy


def stale(before: dict, after: dict) -> set[str]:
    return {cid for cid in after if chapter_inputs.own_changes(before[cid], after[cid])}


def test_a_change_to_model1_makes_chapter_02_and_the_chapters_using_model1_stale_never_03(current, tmp_path):
    changed = inputs_of(edited_labkit(tmp_path, "models.py", "class Model1(nn.Module):\n",
                                      "    # a comment changes the listing chapter 02 shows\n"))
    out_of_date = stale(current, changed)
    assert "02_model1" in out_of_date
    assert {"03_model2", "01_data"}.isdisjoint(out_of_date)
    assert {"04_tuning", "05_diagnostics"} <= out_of_date  # they load or retrain model1
    reasons = chapter_inputs.own_changes(current["02_model1"], changed["02_model1"])
    assert reasons == ["labkit code it runs changed (labkit.models.Model1)"]


def test_a_change_to_model2s_recipe_leaves_model1s_chapter_alone(current, tmp_path):
    changed = inputs_of(edited_labkit(tmp_path, "recipes.py", '    "model2": Recipe(\n', "        # tuned\n"))
    out_of_date = stale(current, changed)
    assert "03_model2" in out_of_date and "02_model1" not in out_of_date


def test_what_a_listed_object_calls_within_labkit_counts_too(current, tmp_path):
    # chapter 02 lists fit, and fit calls check_finite: a change there reaches chapter 02, not chapter 01
    changed = inputs_of(edited_labkit(tmp_path, "train.py", "def check_finite(loss_sum: torch.Tensor, name: str, "
                                      "epoch: int, lr: float) -> None:\n", "    # checked once per epoch\n"))
    out_of_date = stale(current, changed)
    assert "02_model1" in out_of_date and "01_data" not in out_of_date


def test_a_statement_that_binds_no_name_counts_for_every_object_of_its_module(tmp_path):
    module = chapter_inputs.read_module("labkit.m", "import os\n\ndef f():\n    return 1\n\nos.environ['X'] = '1'\n")
    assert [u.key for u in module.always] == ["labkit.m:<line 6>"]
    assert module.by_name["f"].text.startswith("def f():")


def test_parameters_and_environment_make_every_chapter_stale_but_the_output_folders_place_does_not(current):
    moved = inputs_of(REPO / "labkit", {**PARAMS, "run_dir": "/elsewhere/run"})
    assert stale(current, moved) == set()
    reseeded = inputs_of(REPO / "labkit", {**PARAMS, "seed": 1})
    assert stale(current, reseeded) == {p.stem for p in CHAPTERS}
    assert chapter_inputs.own_changes(current["01_data"], reseeded["01_data"]) == ["the build's options changed"]
    fp32 = inputs_of(REPO / "labkit", environment={"LABKIT_FP32": "1"})
    assert stale(current, fp32) == {p.stem for p in CHAPTERS}


def test_a_chapter_that_never_ran_is_stale(current):
    assert chapter_inputs.own_changes(None, current["01_data"]) == ["not run in this output folder yet"]


def test_the_data_fingerprint_changes_with_a_file_and_not_with_nothing(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "1.png").write_bytes(b"x")
    before = chapter_inputs.data_fingerprint(tmp_path)
    assert chapter_inputs.data_fingerprint(tmp_path) == before
    (tmp_path / "train" / "2.png").write_bytes(b"y")
    assert chapter_inputs.data_fingerprint(tmp_path) != before


def test_a_chapter_records_what_it_reads_of_other_chapters_results_with_hashes(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "_recording", {})
    earlier = artifacts.RunDir(tmp_path, chapter="04_tuning")
    earlier.save_json("tuning/best.json", {"lr": 0.1})
    reader = artifacts.RunDir(tmp_path, chapter="05_diagnostics")
    artifacts.record_reads(tmp_path, "05_diagnostics")
    reader.save_json("diagnostics/own.json", {"a": 1})
    assert artifacts.RunDir(tmp_path).load_json("tuning/best.json") == {"lr": 0.1}  # any RunDir of the folder
    reader.load_json("diagnostics/own.json")  # its own file: not an input
    reads = json.loads((tmp_path / "reads" / "05_diagnostics.json").read_text())
    assert reads == {"tuning/best.json": {"sha256": artifacts.sha256_file(tmp_path / "tuning/best.json"),
                                          "writer": "04_tuning"}}

    record = {"reads": reads}
    assert chapter_inputs.changed_reads(record, tmp_path) == []
    earlier.save_json("tuning/best.json", {"lr": 0.2})
    assert chapter_inputs.changed_reads(record, tmp_path) == ["tuning/best.json (written by 04_tuning) changed"]
    (tmp_path / "tuning/best.json").unlink()
    assert chapter_inputs.changed_reads(record, tmp_path) == ["tuning/best.json is gone"]


def test_nothing_is_recorded_outside_a_chapter(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "_recording", {})
    run = artifacts.RunDir(tmp_path, chapter="01_data")
    run.save_json("x.json", 1)
    artifacts.RunDir(tmp_path, chapter="02_model1").load_json("x.json")
    assert not (tmp_path / "reads").exists()


def test_a_file_a_chapter_reads_and_then_extends_does_not_make_it_stale_forever(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "_recording", {})
    artifacts.RunDir(tmp_path, chapter="03_model2").save_bytes("features/cache.pt", b"views 1")
    tuning = artifacts.RunDir(tmp_path, chapter="04_tuning")
    artifacts.record_reads(tmp_path, "04_tuning")
    assert tuning.load_bytes("features/cache.pt") == b"views 1"
    tuning.save_bytes("features/cache.pt", b"views 1 and 2")   # the cache, extended
    record = {"reads": json.loads((tmp_path / "reads" / "04_tuning.json").read_text())}
    assert chapter_inputs.changed_reads(record, tmp_path) == []  # what it left there
    artifacts.RunDir(tmp_path, chapter="03_model2").save_bytes("features/cache.pt", b"views 1")
    assert chapter_inputs.changed_reads(record, tmp_path) == []  # what it read (chapter 03 ran again, the same)
    artifacts.RunDir(tmp_path, chapter="03_model2").save_bytes("features/cache.pt", b"other views")
    assert chapter_inputs.changed_reads(record, tmp_path) == ["features/cache.pt (written by 03_model2) changed"]


def test_a_keyed_cache_is_not_recorded_as_an_input(tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "_recording", {})
    artifacts.RunDir(tmp_path, chapter="03_model2").save_torch("features/model2-u1-abc.pt", {"key": "abc"})
    artifacts.record_reads(tmp_path, "04_tuning")
    artifacts.RunDir(tmp_path).load_torch("features/model2-u1-abc.pt", recorded=False)
    assert json.loads((tmp_path / "reads" / "04_tuning.json").read_text()) == {}
