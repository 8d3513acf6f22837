"""The claims audit on three quick builds: the shared build (a stub in the real layout, read as real data,
with a weights file that is not ImageNet's), the stub that build.py makes itself (seed 1, offline, so model2
starts from random weights), and the real-image proxy with a weights file. Each notebook is read against its
own run's records (tests/claims.py says what is checked)."""
from __future__ import annotations

import pytest
from builds import quick_build as make_quick_build
from builds import random_weights_file
from claims import audit

from bench.proxy_data import make_proxy


@pytest.fixture(scope="module")
def stub_seed1_build(tmp_path_factory, ray_cluster):
    return make_quick_build(tmp_path_factory.mktemp("stub_seed1"), ray_cluster, "--seed", "1")


@pytest.fixture(scope="module")
def proxy_build(tmp_path_factory, ray_cluster):
    root = tmp_path_factory.mktemp("proxy")
    data = make_proxy(root / "data", n_train=320, n_test=80, seed=0)
    return make_quick_build(root, ray_cluster, "--seed", "0", data=data, weights=random_weights_file(root))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["quick_build", "stub_seed1_build", "proxy_build"])
def test_every_claim_rests_on_this_run_s_records(which, request):
    build = request.getfixturevalue(which)
    found = audit(build.notebook, build.run_dir)
    assert not any(found.values()), {check: items for check, items in found.items() if items}


def _notebook(tmp_path, cells, conclusions: dict):
    """A built notebook's shape: chapter metadata on each cell, Markdown outputs, an evidence record."""
    import json

    import nbformat

    from labkit.evidence import make_record, output_bundle

    nb = nbformat.v4.new_notebook()
    for chapter, kind, text, tags in cells:
        meta = {"labkit": {"chapter": chapter}, "tags": tags}
        if kind == "written":
            nb.cells.append(nbformat.v4.new_markdown_cell(text, metadata=meta))
        else:
            cell = nbformat.v4.new_code_cell("", metadata=meta)
            cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": text})]
            nb.cells.append(cell)
    record = nbformat.v4.new_code_cell("", metadata={"labkit": {"chapter": "07_submission"}})
    record.outputs = [nbformat.v4.new_output("display_data", data=output_bundle(make_record(
        "submission", "submission.csv from model2", model="model2", rows=80)))]
    nb.cells.append(record)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    (tmp_path / "run" / "conclusions").mkdir(parents=True)
    for name, facts in conclusions.items():
        (tmp_path / "run" / "conclusions" / f"{name}.json").write_text(json.dumps(facts))
    return path, tmp_path / "run"


def test_the_audit_catches_each_kind_of_unsupported_claim(tmp_path):
    """The issue's sentences: a one-patch lead called 'more accurate', a ratio no record holds, and the
    submission said to keep the model that was not submitted."""
    submission = {"model": "model2", "winner": None, "name_a": "model1", "name_b": "model2", "only_a": 1, "only_b": 2, "patches": 80, "p_value": 1.0}
    path, run = _notebook(tmp_path, [
        ("07_submission", "generated", "**model2** is the more accurate model, by 1.3 percentage points.", []),
        ("07_submission", "generated", ("model2 and model1 cannot be told apart: 2 patches only model2 gets right "
                                       "and 1 only model1 (p = 1)."), []),
        ("05_diagnostics", "generated", "**Not adopted**: the submission keeps the final model1.", []),
        ("07_submission", "generated", "model1 is the better model here.", []),
        ("07_submission", "written", "model1 is far better.", []),
        # written prose: a decimal reads as a result and is audited; whole numbers of names and facts are not
        ("03_model2", "written", "One of its epochs took 4.0 times as long.", []),
        ("02_model1", "written", "VGG-16 counts 13 convolutions and 3 fully connected layers.", []),
    ], {"submission": submission})
    found = audit(path, run)
    assert [number for _, number, _ in found["numbers without a record"]] == ["1.3", "4.0"]
    assert [cell for cell, _ in found["submission named otherwise"]] == [2]
    assert [cell for cell, _ in found["comparatives without a paired test"]] == [0, 3, 4]


def test_a_comparative_from_the_paired_test_s_winner_passes_and_one_for_its_loser_fails(tmp_path):
    submission = {"model": "model2", "winner": "model2", "name_a": "model1", "name_b": "model2", "only_a": 2, "only_b": 20, "patches": 80,
                  "p_value": 0.00011}
    path, run = _notebook(tmp_path, [
        ("07_submission", "generated", ("model2 is more accurate than model1 on the validation split: 2 patches "
                                       "only model1 gets right and 20 only model2 (McNemar's exact test, "
                                       "p < 0.001). `submission.csv` (80 rows) holds model2's predictions."), []),
        ("07_submission", "generated", "model2 is the more accurate model here, as transfer learning predicts.", []),
    ], {"submission": submission})
    assert not any(audit(path, run).values())
    submission["winner"] = "model1"
    path, run = _notebook(tmp_path / "loser", [
        ("07_submission", "generated", "model2 is the more accurate model here.", []),
    ], {"submission": submission})
    assert len(audit(path, run)["comparatives without a paired test"]) == 1
