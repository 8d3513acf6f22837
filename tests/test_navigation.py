"""Contents, rubric map and heading anchors of the assembled notebook: links that work once exported."""
from __future__ import annotations

import re
from urllib.parse import unquote

import nbformat
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from labkit import navigation
from labkit.evidence import make_record, output_bundle

CRITERIA = [{"id": "filename", "description": "Named after the team."},
            {"id": "data_loader", "description": "A PyTorch Dataset."},
            {"id": "curves_model2", "description": "Curves of model 2."}]


def evidence_cell(criterion, model=None):
    cell = new_code_cell("evidence.record(...)", execution_count=1)
    cell.outputs = [new_output("display_data", data=output_bundle(make_record(criterion, "x", model)))]
    return cell


def chapter_cells():
    return [
        new_markdown_cell("# 1. Introduction, data and preprocessing\n\nText."),
        new_markdown_cell("## 1.1 The `Dataset` and **loader**\n\n```python\n# not a heading\n```"),
        evidence_cell("data_loader"),
        new_markdown_cell("# 5. Diagnostics: curves & confusion (model1/model2)"),
        new_markdown_cell("## 5.2 model2's curves, 3 epochs"),
        new_code_cell("plot()"),
        evidence_cell("curves_model2", "model2"),
    ]


def test_headings_are_found_with_markup_removed_and_code_fences_skipped():
    found = navigation.headings(chapter_cells())
    assert [(h.level, h.text) for h in found] == [
        (1, "1. Introduction, data and preprocessing"), (2, "1.1 The Dataset and loader"),
        (1, "5. Diagnostics: curves & confusion (model1/model2)"), (2, "5.2 model2's curves, 3 epochs")]


def test_rubric_map_links_each_record_to_its_section():
    table = navigation.rubric_map_markdown(chapter_cells(), CRITERIA)
    rows = table.splitlines()[2:]
    assert len(rows) == 2, "the file name is about the whole notebook: no row for it"
    assert rows[0].startswith("| The custom PyTorch Dataset")
    assert "[1.1 The Dataset and loader](#1.1-The-Dataset-and-loader)" in rows[0]
    assert "(#5.2-model2's-curves,-3-epochs)" in rows[1]


def test_the_dataset_row_links_to_the_cell_that_holds_the_dataset_class():
    """Not to the section where the loader's record happens to be (1.5 Augmentation, in the issue)."""
    listing = new_code_cell("class NucleiDataset(Dataset): ...", metadata={"labkit_listing": [
        "labkit.data.NucleiDataset"]})
    cells = [new_markdown_cell("# 1. Data"), new_markdown_cell("## 1.1 Reading the data, and the Dataset"), listing,
             new_markdown_cell("## 1.5 Augmentation"), evidence_cell("data_loader")]
    table = navigation.rubric_map_markdown(cells, [{"id": "data_loader", "description": "x"}])
    assert "(#1.1-Reading-the-data,-and-the-Dataset)" in table and "Augmentation" not in table


def test_the_map_marks_random_or_unverified_model2_weights_and_reads_for_a_marker():
    cells = [new_markdown_cell("## 3.1 Weights"), new_code_cell("x"), new_markdown_cell("## 7.3 Limitations"),
             evidence_cell("narrative")]
    cells[1].outputs = [new_output("display_data", data=output_bundle(make_record(
        "model2_pretrained", "x", "model2", pretrained=False, verified=False)))]
    table = navigation.rubric_map_markdown(cells)
    assert "✗ random weights" in table
    cells[1].outputs = [new_output("display_data", data=output_bundle(make_record(
        "model2_pretrained", "x", "model2", pretrained=True, verified=True)))]
    assert "✗" not in navigation.rubric_map_markdown(cells)
    # a marker's map: no checker rows, and the narrative is not sent to the limitations list
    assert "Every code cell" not in table and "run" not in table.lower().split("|")[1]
    assert f"| Interpretation of the results | {navigation.EVERY_CHAPTER} |" in table


def test_every_link_has_a_target_in_the_exported_html():
    cells = chapter_cells()
    nb = new_notebook(cells=[new_markdown_cell("## Contents\n\n" + navigation.contents_markdown(cells)),
                             new_markdown_cell(navigation.rubric_map_markdown(cells, CRITERIA))] + cells)
    html, _ = HTMLExporter().from_notebook_node(nbformat.from_dict(nb))
    # A browser matches a fragment to an id as is, then percent-decoded (HTML's "indicated part").
    ids = {unquote(i) for i in re.findall(r'\sid="([^"]+)"', html)}
    hrefs = [unquote(h) for h in re.findall(r'href="#([^"]+)"', html)]
    assert len(hrefs) >= 6
    missing = [h for h in hrefs if h not in ids]
    assert not missing, f"links without a target: {missing}"
