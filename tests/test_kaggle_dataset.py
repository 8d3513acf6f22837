"""The Kaggle copy's pieces: labkit's wheel and dataset folder, the prose it keeps, and paths as shown."""
from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import nbformat
import pytest

import kaggle_dataset
import portable_paths


def test_the_dataset_folder_holds_one_wheel_of_labkit_and_kaggle_s_metadata(tmp_path):
    folder = tmp_path / kaggle_dataset.SLUG
    folder.mkdir()
    (folder / "labkit-0.0.1+00000000-py3-none-any.whl").write_bytes(b"an older build")
    wheel = kaggle_dataset.write_dataset(folder, "someone")
    assert sorted(p.name for p in folder.iterdir()) == ["dataset-metadata.json", kaggle_dataset.wheel_name()]
    metadata = json.loads((folder / "dataset-metadata.json").read_text())
    assert metadata["id"] == "someone/nuclei-labkit" and metadata["licenses"]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    labkit = Path(kaggle_dataset.__file__).parent / "labkit"
    assert {n for n in names if n.endswith(".py")} == {f"labkit/{p.name}" for p in labkit.glob("*.py")}
    assert f"Version: {kaggle_dataset.labkit_version()}" in info and "Requires-Dist: captum" in info


def test_the_wheel_s_version_changes_with_labkit_s_code(tmp_path, monkeypatch):
    copy = tmp_path / "labkit"
    copy.mkdir()
    (copy / "__init__.py").write_text('__version__ = "0.1.0"\n')
    monkeypatch.setattr(kaggle_dataset, "LABKIT", copy)
    before = kaggle_dataset.source_hash()
    (copy / "data.py").write_text("X = 1\n")
    assert kaggle_dataset.source_hash() != before


def test_without_a_user_name_the_dataset_id_says_what_to_fill_in():
    assert kaggle_dataset.dataset_metadata(None)["id"] == "USERNAME/nuclei-labkit"
    with pytest.raises(argparse.ArgumentTypeError, match="kaggle.com/NAME"):
        kaggle_dataset.user_name("me/other")


def _cell(text: str, *conditions: str):
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = [f"if:{c}" for c in conditions]
    return cell


def test_the_kaggle_copy_keeps_the_pretrained_prose_and_both_blocks_of_an_undecided_condition():
    cells = [_cell("always"), _cell("imagenet", "pretrained"), _cell("random", "not-pretrained"),
             _cell("searched", "searched_lr"), _cell("fixed", "not-searched_lr"),
             _cell("imagenet, searched", "pretrained", "searched_lr")]
    kept = kaggle_dataset.keep_kaggle_cells(cells, kaggle_dataset.KAGGLE_CONFIGURATION, where="chapters/x.py:")
    assert [c.source for c in kept] == ["always", "imagenet", "searched", "fixed", "imagenet, searched"]


@pytest.mark.parametrize("text, out, shown", [
    ("{repo}/build/run", "{repo}/build", "build/run"),
    ("cd {repo} && ls", "{repo}/build", "cd . && ls"),
    ("{home}/kaggle/data", "{repo}/build", "~/kaggle/data"),
    ('data_dir = "/scratch/q/data"', "/scratch/q/out", 'data_dir = "…/data"'),
    ("/scratch/q/out/run", "/scratch/q/out", "…/out/run"),
    ("/mnt/data", "/scratch/q/out", "/mnt/data"),  # nothing to show it relative to
])
def test_paths_are_shown_relative_to_the_project_home_or_the_build(text, out, shown):
    repo, home = str(portable_paths.PROJECT), str(Path.home())
    fill = {"repo": repo, "home": home}
    assert portable_paths.portable(text.format(**fill), Path(out.format(**fill))) == shown.format(**fill)


def test_a_folder_whose_name_starts_as_the_project_s_is_not_the_project():
    other = f"{portable_paths.PROJECT}2/x"
    assert not portable_paths.portable(other, portable_paths.PROJECT / "build").startswith(("2/", "./", "."))


def test_the_kaggle_copy_keeps_no_prose_written_for_the_stub_or_random_weights():
    """On Kaggle the data is real and model2 starts from verified ImageNet weights: of the chapters' own tagged
    cells, none written for synthetic data, random weights or unverified weights may reach the hand-in."""
    import jupytext

    from labkit import configuration

    cells = [cell for path in sorted((Path(__file__).parents[1] / "chapters").glob("[0-9][0-9]_*.py"))
             for cell in jupytext.read(path).cells]
    kept = kaggle_dataset.keep_kaggle_cells(cells, kaggle_dataset.KAGGLE_CONFIGURATION)
    kept_conditions = {pair for cell in kept for pair in configuration.conditions_of(cell)}
    assert not kept_conditions & {("synthetic_data", True), ("pretrained", False), ("imagenet_verified", False)}
    assert ("synthetic_data", False) in kept_conditions and ("pretrained", True) in kept_conditions
