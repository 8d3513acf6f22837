"""Code in cells: a chapter cell of ``%load labkit.x.Name`` lines becomes labkit's own source when the chapter is
built, and runs there; report cells show their output without their bookkeeping code."""
from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import jupytext
import nbformat
import pytest

from labkit.evidence import EVIDENCE_MIME, make_record, output_bundle
from labkit.notebook import (
    REPORT_TAG,
    expand_listing,
    expand_listings,
    listing_targets,
    resolve,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import build

CHAPTERS = sorted((REPO / "chapters").glob("[0-9][0-9]_*.py"))

# what the rubric asks to see in a cell, by the labkit object that holds it
RUBRIC_CODE = {
    "the Dataset": "labkit.data.NucleiDataset", "reading the PNGs": "labkit.data._decode",
    "the loader": "labkit.data.make_loader", "the split": "labkit.data.stratified_split",
    "model1": "labkit.models.Model1", "counting its layers": "labkit.models.count_layers",
    "model2's torchvision build": "labkit.models.build_model2", "model2's new head": "labkit.models.replace_head",
    "freezing stages": "labkit.models.set_unfrozen_stages", "model2's training": "labkit.recipes.train_model",
    "the training loop": "labkit.train.fit", "model1's search space": "labkit.recipes.model1_search_space",
    "model2's search space": "labkit.recipes.model2_search_space", "the Tuner": "labkit.tune.run_search",
    "the trainable": "labkit.tune._run_trial", "the confusion matrix": "labkit.diagnostics.rates_matrix",
    "the sampler": "labkit.diagnostics.pair_sample_weights", "the fix": "labkit.diagnostics.fix_experiment",
    "the verdict": "labkit.diagnostics.judge_fix", "the Captum calls": "labkit.interpret.attribute",
    "the randomisation check": "labkit.interpret.randomisation_check",
    "the submission": "labkit.submission.write_submission", "the paired test": "labkit.conclusions.paired_test",
}


def chapter_listings(path: Path) -> list[list[str]]:
    return [targets for cell in jupytext.read(path).cells if cell.cell_type == "code"
            and (targets := listing_targets(cell.source)) is not None]


def test_every_rubric_item_s_code_is_loaded_into_a_chapter_cell():
    loaded = {t for path in CHAPTERS for targets in chapter_listings(path) for t in targets}
    missing = {item: dotted for item, dotted in RUBRIC_CODE.items() if dotted not in loaded}
    assert not missing, f"not shown in any chapter cell: {missing}"


def test_each_object_is_listed_once_in_the_notebook():
    loaded = [t for path in CHAPTERS for targets in chapter_listings(path) for t in targets]
    assert len(loaded) == len(set(loaded)), "a listing repeated: later chapters import it instead"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_expanded_cells_are_labkit_s_source_and_run(path):
    """The cell is the tested code, verbatim, after the imports it needs; and it runs on its own."""
    nb = jupytext.read(path)
    expand_listings(nb.cells)
    namespace: dict = {"__name__": "__main__"}
    for cell in nb.cells:
        targets = cell.metadata.get("labkit_listing")
        if not targets:
            continue
        assert "listing" in cell.metadata["tags"]
        for dotted in targets:
            source = textwrap.dedent(inspect.getsource(resolve(dotted)))
            assert source.rstrip() in cell.source, f"{dotted}: the cell is not labkit's current source"
        exec(compile(cell.source, f"<{path.stem} listing>", "exec"), namespace)  # noqa: S102 - the cell, as a kernel runs it
        for dotted in targets:
            name = dotted.rsplit(".", 1)[-1]
            assert namespace[name].__module__ == "__main__", f"{name}: the cell must define it, not import it"


def test_a_listing_imports_what_its_code_needs_and_not_what_the_chapter_defined():
    code = expand_listing(["labkit.models.build_model1"])
    assert "from labkit.models import Model1" in code and code.splitlines()[1] == "from __future__ import annotations"
    code = expand_listing(["labkit.models.build_model1"], defined={"Model1"})
    assert "import Model1" not in code   # the chapter's own Model1 (listed before) is the one used
    assert listing_targets("# %load labkit.data.NucleiDataset\n%load labkit.data.make_loader\n") == [
        "labkit.data.NucleiDataset", "labkit.data.make_loader"]
    assert listing_targets("# %load labkit.data.NucleiDataset\nx = 1") is None


def _report_notebook():
    shown = nbformat.v4.new_code_cell("show_figure(fig)")
    shown.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    report = nbformat.v4.new_code_cell("evidence.record(...)\nsay(text)", metadata={"tags": [REPORT_TAG]})
    report.outputs = [nbformat.v4.new_output("display_data", data=output_bundle(make_record("curves_model1", "x"))),
                      nbformat.v4.new_output("display_data", data={"text/markdown": "The generated sentence."})]
    return shown, report


def test_report_cells_attach_their_records_to_the_cell_they_describe_and_hide_their_code():
    shown, report = _report_notebook()
    build.attach_evidence([shown, report])
    assert any(EVIDENCE_MIME in o.get("data", {}) for o in shown.outputs)
    assert not any(EVIDENCE_MIME in o.get("data", {}) for o in report.outputs)
    build.hide_report_input(report)
    build.hide_report_input(shown)
    assert report.metadata["jupyter"]["source_hidden"] and "remove-input" in report.metadata["tags"]
    assert "jupyter" not in shown.metadata


def test_the_html_shows_a_report_cell_s_prose_but_not_its_code(tmp_path):
    shown, report = _report_notebook()
    build.hide_report_input(report)
    nb = nbformat.v4.new_notebook(cells=[shown, report])
    build.export_html(nb, tmp_path / "x.html")
    html = (tmp_path / "x.html").read_text()
    assert "The generated sentence." in html and "show_figure" in html
    assert "evidence.record" not in html and "say(text)" not in html
