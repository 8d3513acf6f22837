"""The chapter-parameter contract: one definition (labkit.notebook.ChapterParameters), used everywhere."""
from __future__ import annotations

import ast
import sys
from dataclasses import asdict, fields
from pathlib import Path

import jupytext
import pytest

from labkit.notebook import (
    PARAMETER_NAMES,
    ChapterParameters,
    chapter_parameters,
    listing_targets,
    start_chapter,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import build

CHAPTERS = sorted((REPO / "chapters").glob("[0-9][0-9]_*.py"))


def parameters_cell(path: Path):
    nb = jupytext.read(path)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    assert next(c for c in nb.cells if c.cell_type == "code") is cells[0], f"{path.name}: parameters cell first"
    return nb, cells[0]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_parameters_cell_matches_the_contract(path):
    _, cell = parameters_cell(path)
    namespace: dict = {}
    exec(cell.source, namespace)  # noqa: S102  the repo's own chapter cell, run to read its names
    namespace.pop("__builtins__")
    assert list(namespace) == list(PARAMETER_NAMES), f"{path.name}: names or order differ from ChapterParameters"
    assert namespace == asdict(ChapterParameters()), f"{path.name}: defaults differ from ChapterParameters"
    ChapterParameters(**namespace)  # and the types


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_hands_all_its_parameters_to_start_chapter(path):
    nb, _ = parameters_cell(path)
    calls = [node for cell in nb.cells if cell.cell_type == "code" and listing_targets(cell.source) is None
             for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == "start_chapter"]
    assert len(calls) == 1, f"{path.name}: one start_chapter call"
    call = calls[0]
    assert [a.value for a in call.args] == [path.stem]
    assert ast.unparse(call.keywords[0]) == "**chapter_parameters(globals())", \
        f"{path.name}: start_chapter must get **chapter_parameters(globals())"


def test_the_kaggle_copy_and_the_contract_agree():
    assert isinstance(build.KAGGLE_PARAMS, ChapterParameters)
    assert build.KAGGLE_PARAMS.submission_file == "submission.csv", "Kaggle's Output tab reads the working folder"
    assert not Path(build.KAGGLE_PARAMS.run_dir).is_absolute()


def test_start_chapter_refuses_a_missing_unknown_or_mistyped_parameter(tmp_path):
    params = {**asdict(ChapterParameters()), "run_dir": str(tmp_path / "run")}
    with pytest.raises(TypeError, match="missing parameter.*weights_file"):
        start_chapter("01_data", load_data=False, **{k: v for k, v in params.items() if k != "weights_file"})
    with pytest.raises(TypeError, match="unknown parameter.*weight_file"):
        start_chapter("01_data", load_data=False, **params, weight_file="x.pth")
    with pytest.raises(TypeError, match="seed = '3' should be a int"):
        start_chapter("01_data", load_data=False, **{**params, "seed": "3"})
    with pytest.raises(NameError, match="does not set ray_address"):
        chapter_parameters({k: v for k, v in params.items() if k != "ray_address"})


def test_start_chapter_keeps_every_parameter_and_records_it(tmp_path):
    import json

    params = {**asdict(ChapterParameters()), "run_dir": str(tmp_path / "run"), "weights_file": "/w/r18.pth",
              "ray_address": "10.0.0.1:6379", "seed": 7, "is_stub": False}
    ctx = start_chapter("03_model2", load_data=False, **chapter_parameters(params))
    assert (ctx.weights_file, ctx.ray_address, ctx.seed, ctx.is_stub) == ("/w/r18.pth", "10.0.0.1:6379", 7, False)
    assert json.loads((tmp_path / "run" / "parameters" / "03_model2.json").read_text()) == params
    assert [f.name for f in fields(ChapterParameters)] == list(PARAMETER_NAMES)
