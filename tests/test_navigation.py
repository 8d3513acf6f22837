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
    table = navigation.rubric_map_markdown(chapter_cells(), CRITERIA, "the whole notebook")
    rows = table.splitlines()[2:]
    assert rows[0] == "| Named after the team. | the whole notebook |"
    assert "[1.1 The Dataset and loader](#1.1-The-Dataset-and-loader)" in rows[1]
    assert "(#5.2-model2's-curves,-3-epochs)" in rows[2]


def test_every_link_has_a_target_in_the_exported_html():
    cells = chapter_cells()
    nb = new_notebook(cells=[new_markdown_cell("## Contents\n\n" + navigation.contents_markdown(cells)),
                             new_markdown_cell(navigation.rubric_map_markdown(cells, CRITERIA, "-"))] + cells)
    html, _ = HTMLExporter().from_notebook_node(nbformat.from_dict(nb))
    # A browser matches a fragment to an id as is, then percent-decoded (HTML's "indicated part").
    ids = {unquote(i) for i in re.findall(r'\sid="([^"]+)"', html)}
    hrefs = [unquote(h) for h in re.findall(r'href="#([^"]+)"', html)]
    assert len(hrefs) >= 6
    missing = [h for h in hrefs if h not in ids]
    assert not missing, f"links without a target: {missing}"
