"""build.py end to end: a quick build on the stub, a failing chapter, and a refused team name."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from builds import REPO, TEAM, run_build

sys.path.insert(0, str(REPO))
import build


def notebook_text(nb) -> str:
    """Everything a reader sees in the cells' outputs, as text."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            for mime in ("text/plain", "text/markdown"):
                parts.append(output.get("data", {}).get(mime, ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_quick_build_makes_a_complete_executed_notebook(quick_build):
    out, result = quick_build.out, quick_build.result
    notebook_path = out / f"{TEAM}.ipynb"
    assert notebook_path.exists() and (out / f"{TEAM}.html").exists() and (out / "submission.csv").exists()
    nb = nbformat.read(notebook_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert len(code) > 30
    assert all(c.execution_count for c in code), "a code cell was not executed"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"error outputs: {[e.ename for e in errors]}"
    chapters = [c.metadata["labkit"]["chapter"] for c in nb.cells if c.metadata.get("labkit", {}).get("chapter_start")]
    assert chapters == [c.id for c in build.find_chapters()]
    # a progress line per chapter with its time
    assert all(cid in result.stdout for cid in chapters)


def grade(notebook: Path) -> dict:
    result = subprocess.run([sys.executable, "-m", "grading", "check", str(notebook), "--team", TEAM,
                             "--format", "json"], capture_output=True, text=True, cwd=REPO, check=False)
    report = json.loads(result.stdout)[0]
    return {c["id"]: c["status"] for c in report["criteria"]}


@pytest.mark.slow
def test_grader_finds_every_criterion_and_says_the_weights_are_not_verified(quick_build):
    status = grade(quick_build.out / f"{TEAM}.ipynb")
    # the weights file holds random numbers: loaded as given, honestly reported as not verified
    assert status.pop("model2_pretrained") == "warn"
    assert status == {cid: "pass" for cid in status}, status
    assert len(status) == 19


def _stripped_of_records(path: Path, out: Path) -> tuple[Path, nbformat.NotebookNode]:
    from labkit.evidence import EVIDENCE_MIME

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if EVIDENCE_MIME not in o.get("data", {})]
    nbformat.write(nb, out / path.name)
    return out / path.name, nb


@pytest.mark.slow
def test_the_grader_passes_every_criterion_from_the_code_cells_alone(quick_build, tmp_path):
    """Without a single evidence record the grader still finds every rubric item in the cells (model2's
    ImageNet weights aside: this build has none it can verify), and never in a hidden report cell."""
    import re

    stripped, nb = _stripped_of_records(quick_build.out / f"{TEAM}.ipynb", tmp_path)
    result = subprocess.run([sys.executable, "-m", "grading", "check", str(stripped), "--team", TEAM,
                             "--format", "json"], capture_output=True, text=True, cwd=REPO, check=False)
    verdicts = {c["id"]: c for c in json.loads(result.stdout)[0]["criteria"]}
    not_passed = {cid: f"{v['status']}: {v['evidence']}" for cid, v in verdicts.items()
                  if v["status"] != "pass" and cid != "model2_pretrained"}
    assert not not_passed, not_passed
    hidden = {i + 1 for i, cell in enumerate(nb.cells) if "report" in cell.metadata.get("tags", [])}
    for cid, verdict in verdicts.items():
        cited = {int(n) for n in re.findall(r"\bcell (\d+)", verdict["evidence"])}
        assert not cited & hidden, f"{cid} is credited to bookkeeping: {verdict['evidence']}"


@pytest.mark.slow
def test_the_built_notebook_s_listings_are_labkit_s_current_code(quick_build):
    from labkit.notebook import expand_listing

    nb = nbformat.read(quick_build.out / f"{TEAM}.ipynb", as_version=4)
    listings = [c for c in nb.cells if c.metadata.get("labkit_listing")]
    assert len(listings) >= 15
    defined = {}
    for cell in listings:
        chapter = cell.metadata["labkit"]["chapter"]
        expected = expand_listing(cell.metadata["labkit_listing"], defined.setdefault(chapter, set()))
        assert cell.source == expected, f"{chapter}: {cell.metadata['labkit_listing']} differs from labkit"
        defined[chapter] |= {t.rsplit(".", 1)[-1] for t in cell.metadata["labkit_listing"]}
        assert cell.execution_count and not any(o.get("output_type") == "error" for o in cell.outputs)


@pytest.mark.slow
def test_every_option_reaches_the_chapters(quick_build):
    b = quick_build
    expected = {"team": TEAM, "data_dir": str(b.data), "is_stub": False, "profile": "quick",
                "run_dir": str(b.out / "run"), "cache_dir": str(b.cache), "device": "cpu",
                "ray_address": b.address, "weights_file": str(b.weights),
                "submission_file": str(b.out / "submission.csv"), "seed": 3}
    received = {p.stem: json.loads(p.read_text()) for p in (b.out / "run" / "parameters").glob("*.json")}
    assert sorted(received) == [c.id for c in build.find_chapters()]
    for chapter, params in received.items():  # what each chapter's start_chapter got
        assert params == expected, chapter
    assert f"Ray cluster at {b.address}: 1 CPUs" in b.result.stdout  # the preflight joined it
    nb = nbformat.read(b.out / f"{TEAM}.ipynb", as_version=4)
    text, appendix = notebook_text(nb), nb.cells[-1].source
    # --ray-address and --profile: the appendix says where the trials ran and with which budget
    assert f"run on the Ray cluster at `{b.address}` (1 CPUs" in appendix and "**Profile:** quick" in appendix
    # --weights: named (in the appendix, from the folder that holds the build's), NOT verified, loaded
    shown_weights = f"…/{b.weights.relative_to(b.out.parent)}"
    assert shown_weights in appendix and "NOT verified" in appendix and "RANDOMLY INITIALISED" not in text
    assert "starts from: unverified weights file" in text and "does **not** match the hash torchvision" in text
    loaded = json.loads((b.out / "run" / "model2" / "weights.json").read_text())
    assert (loaded["source"], loaded["path"], loaded["pretrained"], loaded["verified"]) == \
        ("file", str(b.weights), True, False)
    # --seed, --device, --data: the split was made with seed 3 from this data, on the CPU
    assert json.loads((b.out / "run" / "data" / "split.json").read_text())["seed"] == 3
    assert "**Device:** cpu" in appendix and "synthetic" not in text
    # --cache: the zips were extracted and the images decoded into it (none into the repo's .cache)
    assert sorted(p.name.split("-")[0] for p in (b.cache / "extracted").iterdir()) == ["test", "train"]
    assert list(b.cache.glob("train-*.pt")) and list(b.cache.glob("example-*.pt"))


@pytest.mark.slow
def test_submission_is_valid_against_example(quick_build):
    from labkit.submission import validate_submission

    example = quick_build.data / "example.csv"
    report = validate_submission(quick_build.out / "submission.csv", example)
    assert report.rows == len(example.read_text().splitlines()) - 1


def same_options(quick_build, out: Path, *more: str) -> list[str]:
    """The quick build's options, with another output folder (a copy of its own)."""
    return ["--team", TEAM, "--profile", "quick", "--out", str(out), "--cache", str(quick_build.cache),
            "--data", str(quick_build.data), "--weights", str(quick_build.weights), "--seed", "3",
            "--device", "cpu", "--ray-address", quick_build.address, *more]


@pytest.fixture
def rebuild(quick_build, tmp_path, monkeypatch, ray_cluster):
    """A copy of the quick build's output folder and chapters, and this process set up as the build's was
    (the Ray cluster's token under HOME); returns (out, chapters folder)."""
    out, chapters = tmp_path / "out", tmp_path / "chapters"
    shutil.copytree(quick_build.out, out)
    shutil.copytree(REPO / "chapters", chapters)
    monkeypatch.setattr(build, "CHAPTERS_DIR", chapters)
    monkeypatch.setenv("MPLCONFIGDIR", str(Path.home() / ".cache" / "matplotlib"))
    monkeypatch.setenv("HOME", str(ray_cluster[1]))
    for name in [name for name in os.environ if name.startswith("RAY_AUTH")]:
        monkeypatch.delenv(name)
    return out, chapters


def executed_times(out: Path) -> dict[str, int]:
    return {p.stem: p.stat().st_mtime_ns for p in sorted((out / "chapters").glob("[0-9][0-9]_*.ipynb"))}


@pytest.mark.slow
def test_an_unchanged_rebuild_runs_no_chapter_and_the_appendix_says_where_each_came_from(quick_build, rebuild,
                                                                                          capsys):
    out, _ = rebuild
    before = executed_times(out)
    assert build.main(same_options(quick_build, out)) == 0
    printed = capsys.readouterr().out
    assert "Nothing any chapter depends on has changed" in printed
    assert executed_times(out) == before
    appendix = nbformat.read(out / f"{TEAM}.ipynb", as_version=4).cells[-1].source
    assert "This build ran no chapter" in appendix
    assert ("01_data, 02_model1, 03_model2, 04_tuning, 05_diagnostics, 06_interpretation and 07_submission come "
            "from the build of") in appendix


@pytest.mark.slow
def test_only_refuses_to_mix_two_runs_and_names_the_stale_chapter(quick_build, rebuild, capsys):
    out, chapters = rebuild
    script = chapters / "02_model1.py"
    script.write_text(script.read_text() + "\n# %% [markdown]\n# One more sentence about model1.\n")
    before, notebook = executed_times(out), (out / f"{TEAM}.ipynb").read_bytes()
    assert build.main(same_options(quick_build, out, "--only", "05")) == 1
    err = capsys.readouterr().err
    assert "--only 05 would assemble a notebook that mixes two runs" in err
    assert "02_model1: its script changed" in err
    assert "03_model2" not in err and "01_data" not in err
    assert executed_times(out) == before and (out / f"{TEAM}.ipynb").read_bytes() == notebook


@pytest.mark.slow
def test_a_markdown_edit_in_chapter_06_re_runs_only_06(quick_build, rebuild, capsys):
    out, chapters = rebuild
    script = chapters / "06_interpretation.py"
    script.write_text(script.read_text() + "\n# %% [markdown]\n# A closing remark on the attributions.\n")
    before = executed_times(out)
    assert build.main(same_options(quick_build, out)) == 0
    printed = capsys.readouterr().out
    assert "Chapters to run: 1 of 7\n  06_interpretation: its script changed" in printed
    after = executed_times(out)
    assert {cid for cid in after if after[cid] != before[cid]} == {"06_interpretation"}
    # not a terminal: plain progress lines, and the chapter's result line
    assert "06_interpretation  started:" in printed and "[1/1] 06_interpretation" in printed
    nb = nbformat.read(out / f"{TEAM}.ipynb", as_version=4)
    assert "A closing remark on the attributions." in "\n".join(c.source for c in nb.cells)
    assert "This build ran 06_interpretation (" in nb.cells[-1].source
    assert "05_diagnostics and 07_submission come from the build of" in nb.cells[-1].source


@pytest.mark.slow
def test_failed_chapter_keeps_last_good_notebook(quick_build, rebuild, capsys):
    work_out, chapters = rebuild
    good = (work_out / f"{TEAM}.ipynb").read_bytes()
    broken = chapters / "07_submission.py"
    broken.write_text(broken.read_text() + '\n# %%\nraise RuntimeError("deliberately broken for the test")\n')

    code = build.main(same_options(quick_build, work_out, "--only", "07"))
    err = capsys.readouterr().err
    assert code == 1
    assert "chapter 07_submission failed in cell" in err
    assert "deliberately broken for the test" in err
    assert (work_out / f"{TEAM}.ipynb").read_bytes() == good
    assert (work_out / "chapters" / "07_submission.failed.ipynb").exists()


def test_only_in_a_new_output_folder_asks_for_the_whole_build_first(tmp_path, capsys):
    code = build.main(["--team", TEAM, "--profile", "quick", "--out", str(tmp_path / "out"), "--data", str(tmp_path),
                       "--device", "cpu", "--only", "05"])
    err = capsys.readouterr().err
    assert code == 1
    assert ("--only 05 needs the earlier chapters' results, but 01_data, 02_model1, 03_model2, 04_tuning never ran "
            "in this output folder: run the whole build first") in err
    assert not list((tmp_path / "out" / "chapters").glob("*.ipynb"))


def test_bad_team_name_is_refused_before_any_work(tmp_path):
    out = tmp_path / "out"
    result = run_build("--team", "Dogs Versus Cats!", "--out", str(out), "--cache", str(tmp_path / "cache"))
    assert result.returncode == 1
    assert "--team Dogs_Versus_Cats" in result.stderr
    assert not out.exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name, fixed", [("Dogs Versus Cats", "Dogs_Versus_Cats"), ("  a  b ", "a_b"),
                                         ("Ünïcode & co.", "ncode_co"), ("!!!", "Team_Name")])
def test_suggested_team_names_are_valid(name, fixed):
    assert build.suggest_team_name(name) == fixed
    assert build.check_team_name(fixed) == fixed
    with pytest.raises(build.BuildError):
        build.check_team_name(name)


def _read_only_copy(source: Path, target: Path) -> Path:
    """``source`` copied to ``target`` and made read-only, as Kaggle mounts an input."""
    shutil.copytree(source, target)
    for path in [*target.rglob("*"), target]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return target


def _kernel_in_a_fresh_environment(root: Path) -> dict:
    """A kernel whose interpreter installs into a fresh environment of its own (a venv that sees this one's
    packages, as Kaggle's image has torch and the rest), so the notebook's setup cell can pip-install labkit's
    wheel without touching the environment the tests run in. Returns the env for JUPYTER_PATH."""
    import venv

    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(root / "venv")
    spec = root / "jupyter" / "kernels" / "kaggle-like"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(root / "venv" / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Kaggle-like", "language": "python"}))
    return {"JUPYTER_PATH": str(root / "jupyter")}


@pytest.mark.slow
def test_standalone_notebook_runs_as_on_kaggle(quick_build, tmp_path, monkeypatch):
    """The --standalone copy, run the way Kaggle runs it, top to bottom in one kernel.

    An empty working folder as cwd; the data read-only at a stand-in for /kaggle/input/<competition>, as
    zips, and the dataset folder the build wrote beside the notebook read-only at a stand-in for
    /kaggle/input/<slug>; no repo on the path (the kernel imports the labkit its setup cell installed from the
    wheel); the weights in TORCH_HOME's hub cache; no package index (offline).
    """
    from nbclient import NotebookClient

    import kaggle_dataset
    from labkit.submission import validate_submission

    kaggle_input = _read_only_copy(quick_build.data, tmp_path / "input" / "deep-learning-for-msc-2022-23")
    before = sorted(p.relative_to(kaggle_input) for p in kaggle_input.rglob("*"))
    dataset = _read_only_copy(quick_build.out / kaggle_dataset.SLUG, tmp_path / "input" / kaggle_dataset.SLUG)
    working = tmp_path / "working"
    working.mkdir()

    nb = nbformat.read(quick_build.out / f"{TEAM}_kaggle.ipynb", as_version=4)
    kaggle_dir = json.dumps(build.KAGGLE_PARAMS.data_dir)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and all(kaggle_dir in c.source and 'profile = "quick"' in c.source for c in injected)
    for cell in injected:  # where this machine keeps the stand-ins for Kaggle's input folders
        cell.source = cell.source.replace(kaggle_dir, json.dumps(str(kaggle_input)))
    setup = nb.cells[1]
    assert f"/kaggle/input/{kaggle_dataset.SLUG}/" in setup.source
    setup.source = setup.source.replace(f"/kaggle/input/{kaggle_dataset.SLUG}/", f"{dataset}/")
    nb.cells.append(nbformat.v4.new_code_cell("import labkit\nprint('labkit imported from', labkit.__file__)"))

    monkeypatch.setenv("JUPYTER_PATH", _kernel_in_a_fresh_environment(tmp_path)["JUPYTER_PATH"])
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(quick_build.weights.parents[2]))  # TORCH_HOME/hub/checkpoints/
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.chdir(tmp_path)
    NotebookClient(nb, kernel_name="kaggle-like", timeout=600,
                   resources={"metadata": {"path": str(working)}}).execute()

    errors = [(o.ename, o.evalue) for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert counts == list(range(1, len(counts) + 1)), "one kernel: counts run 1, 2, 3, ... top to bottom"
    text = notebook_text(nb)
    installed = tmp_path / "venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert f"labkit imported from {installed / 'labkit' / '__init__.py'}" in text, "the wheel's labkit, no other"
    assert f"labkit {kaggle_dataset.labkit_version()}" in text  # the appendix's versions, printed there
    loaded = json.loads((working / "run" / "model2" / "weights.json").read_text())
    assert Path(loaded["path"]).name == quick_build.weights.name and loaded["pretrained"]
    assert "starts from: unverified weights file" in text and "RANDOMLY INITIALISED" not in text
    validate_submission(working / "submission.csv", kaggle_input / "example.csv")  # where the Output tab looks
    assert sorted(p.relative_to(kaggle_input) for p in kaggle_input.rglob("*")) == before

    nb.cells.pop()  # the sandbox's own check
    executed = tmp_path / f"{TEAM}.ipynb"
    nbformat.write(nb, executed)
    status = grade(executed)
    assert status.pop("model2_pretrained") in ("pass", "warn")  # random numbers: not torchvision's file
    assert status == {cid: "pass" for cid in status}, status


@pytest.mark.slow
def test_the_kaggle_dataset_folder_holds_the_wheel_the_copy_installs(quick_build):
    import zipfile

    import kaggle_dataset

    folder = quick_build.out / kaggle_dataset.SLUG
    wheels = list(folder.glob("*.whl"))
    assert [w.name for w in wheels] == [kaggle_dataset.wheel_name()]
    assert sorted(p.name for p in folder.iterdir()) == sorted(["dataset-metadata.json", wheels[0].name])
    metadata = json.loads((folder / "dataset-metadata.json").read_text())
    assert metadata["id"] == f"USERNAME/{kaggle_dataset.SLUG}" and metadata["licenses"] and 6 <= len(metadata["title"]) <= 50
    packaged = {n for n in zipfile.ZipFile(wheels[0]).namelist() if n.endswith(".py")}
    assert packaged == {f"labkit/{p.name}" for p in (REPO / "labkit").glob("*.py")}
    nb = nbformat.read(quick_build.out / f"{TEAM}_kaggle.ipynb", as_version=4)
    assert f"/kaggle/input/{kaggle_dataset.SLUG}/{wheels[0].name}" in nb.cells[1].source


def _machine_paths(quick_build) -> list[str]:
    """This machine's absolute folders a hand-in must not show (the build's home folder is under /tmp)."""
    return [str(quick_build.out), str(quick_build.cache), str(quick_build.data), str(REPO), str(Path.home()),
            "/tmp"]


def _shown(cell, evidence: bool = False) -> list[str]:
    """A cell's source and the texts its outputs show a reader (images aside: base64 may hold any letters);
    with ``evidence``, the machine-readable evidence records instead."""
    from labkit.evidence import EVIDENCE_MIME

    texts = [] if evidence else [cell.source]
    for output in cell.get("outputs", []):
        if not evidence:
            texts.append(output.get("text", ""))
        for mime, value in output.get("data", {}).items():
            if (mime == EVIDENCE_MIME) == evidence and not mime.startswith("image/"):
                texts.append(value if isinstance(value, str) else json.dumps(value))
    return texts


def _cells_showing_machine_paths(quick_build, notebook: str, evidence: bool = False) -> list[tuple[int, str]]:
    nb = nbformat.read(quick_build.out / notebook, as_version=4)
    return [(i, path) for i, cell in enumerate(nb.cells) for text in _shown(cell, evidence)
            for path in _machine_paths(quick_build) if path in text]


@pytest.mark.slow
@pytest.mark.parametrize("notebook", [f"{TEAM}.ipynb", f"{TEAM}_kaggle.ipynb"])
def test_no_cell_shows_a_path_of_the_building_machine(quick_build, notebook):
    found = _cells_showing_machine_paths(quick_build, notebook)
    assert not found, f"cells showing this machine's paths (cell index, path): {found}"
    injected = [c for c in nbformat.read(quick_build.out / notebook, as_version=4).cells
                if "injected-parameters" in c.metadata.get("tags", [])]
    if notebook == f"{TEAM}.ipynb":  # the parameters are shown from the folder that holds the build's
        assert 'run_dir = "…/out/run"' in injected[0].source and 'data_dir = "…/data"' in injected[0].source


@pytest.mark.slow
def test_no_evidence_record_holds_a_path_of_the_building_machine(quick_build):
    found = _cells_showing_machine_paths(quick_build, f"{TEAM}.ipynb", evidence=True)
    assert not found, f"evidence records holding this machine's paths (cell index, path): {found}"


def test_standalone_notebook_installs_labkit_and_points_at_kaggle():
    import kaggle_dataset

    nb = nbformat.v4.new_notebook()
    title = nbformat.v4.new_markdown_cell("# Classifying cell nuclei")
    params = nbformat.v4.new_code_cell('data_dir = "/home/me/stub"\nis_stub = True', execution_count=1)
    params.metadata["tags"] = ["injected-parameters"]
    work = nbformat.v4.new_code_cell("print(1)", execution_count=2,
                                     outputs=[nbformat.v4.new_output("stream", text="1\n")])
    nb.cells += [title, params, work]
    kaggle = build.standalone_notebook(nb, TEAM, seed=3, kaggle_user="someone")
    first = next(i for i, c in enumerate(kaggle.cells) if c.source.startswith("# Classifying"))
    setup_lines = sum(len(c.source.splitlines()) for c in kaggle.cells[:first])
    assert setup_lines <= 20, f"{setup_lines} lines of setup before the title"
    setup = "\n".join(c.source for c in kaggle.cells[:first])
    assert "%pip install -q --no-deps {LABKIT_WHEEL}" in setup and kaggle_dataset.wheel_name() in setup
    assert "someone/nuclei-labkit" in setup and "%%writefile" not in setup
    sources = [c.source for c in kaggle.cells if c.cell_type == "code"]
    assert any("/kaggle/input/deep-learning-for-msc-2022-23" in s and "is_stub = False" in s for s in sources)
    assert not any("/home/me" in s for s in sources)
    assert all(not c.get("outputs") and c.execution_count is None for c in kaggle.cells if c.cell_type == "code")
    assert nb.cells[2].outputs, "the original notebook is left as it was"


def test_real_data_build_without_weights_stops_before_any_chapter(tmp_path, monkeypatch):
    import data_stub
    from labkit import models

    data = data_stub.make_stub(tmp_path / "data", n_train=40, n_test=8, seed=1)
    monkeypatch.setattr(models, "weights_cache_dir", lambda: tmp_path / "empty-cache")
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    out = tmp_path / "out"
    with pytest.raises(build.BuildError, match=r"resnet18-f37072fd\.pth.*empty-cache"):
        build.build(build.parse_args(["--team", TEAM, "--data", str(data), "--out", str(out),
                                      "--cache", str(tmp_path / "cache")]))
    assert not (out / "chapters" / "01_data.ipynb").exists()


def test_preflight_reports_every_problem_at_once_data_first(tmp_path, monkeypatch, capsys):
    from ray_cluster import free_port

    import data_stub

    data = data_stub.make_stub(tmp_path / "data", n_train=40, n_test=8, seed=1)
    broken = sorted((data / "train").glob("*.png"))[3]
    broken.write_bytes(b"not a png")
    missing = sorted((data / "test").glob("*.png"))[2]  # not the first: find_layout probes that one
    missing.unlink()
    port = free_port()
    out = tmp_path / "out"
    code = build.main(["--team", TEAM, "--data", str(data), "--out", str(out), "--cache", str(tmp_path / "cache"),
                       "--weights", str(tmp_path / "missing.pth"), "--ray-address", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 1
    assert "4 problem(s) found before running any chapter" in err
    lines = [line.strip() for line in err.splitlines() if line.strip()[:3] in ("1. ", "2. ", "3. ", "4. ")]
    assert lines[0].startswith("1. data:") and broken.name in lines[0] and "not a readable image" in lines[0]
    assert lines[1].startswith("2. data:") and missing.name in lines[1] and "example.csv" in lines[1]
    assert lines[2].startswith("3. weights:") and "missing.pth" in lines[2]
    assert lines[3].startswith("4. ray:") and f"ray start --head --port={port}" in lines[3]
    assert not (out / "chapters" / "01_data.ipynb").exists()


def test_preflight_notes_the_datas_warnings_and_no_one_elses(tmp_path, monkeypatch, capsys):
    """The next step's kernels start in threads while the preflight decodes: their warnings (an unclosed
    event loop) must not reach the user as notes about the data; a resized image must."""
    import threading
    import warnings

    from PIL import Image

    import data_stub
    import labkit.data

    data = data_stub.make_stub(tmp_path / "data", n_train=24, n_test=4, seed=2)
    Image.new("RGB", (64, 64)).save(min((data / "train").glob("*.png")))
    original_decode = labkit.data._decode

    def decode_while_a_thread_warns(*args):
        thread = threading.Thread(target=warnings.warn, args=("unclosed event loop", ResourceWarning))
        thread.start()
        thread.join()
        return original_decode(*args)

    monkeypatch.setattr(labkit.data, "_decode", decode_while_a_thread_warns)
    problems = build.check_data(data, tmp_path / "cache", str(data))
    out = capsys.readouterr().out
    assert problems == []
    assert "note: 1 image(s)" in out and "64x64" in out
    assert "unclosed event loop" not in out


@pytest.mark.parametrize("ename, evalue, cause", [
    ("DataError", "x.png is not a readable image", "the data in /d"),
    ("MissingWeightsError", "no weights", "model2's ImageNet weights (/w.pth)"),
    ("ConnectionError", "GCS unreachable", "the Ray cluster at 1.2.3.4:6379"),
    ("RaySystemError", "Authentication token is missing or incorrect", "the Ray cluster at 1.2.3.4:6379"),
    ("KeyError", "'val_acc'", None),
])
def test_a_chapter_failing_for_an_outside_cause_names_that_cause(ename, evalue, cause):
    params = {"data_dir": "/d", "weights_file": "/w.pth", "ray_address": "1.2.3.4:6379"}
    assert build.outside_cause(ename, evalue, params) == cause


@pytest.mark.slow
def test_contents_and_rubric_map_links_work_in_the_html(quick_build):
    import html as html_lib
    import re
    from urllib.parse import unquote

    out = quick_build.out
    page = (out / f"{TEAM}.html").read_text()
    # a browser matches a fragment to an id as is, then percent-decoded
    ids = {unquote(html_lib.unescape(i)) for i in re.findall(r'\sid="([^"]+)"', page)}
    hrefs = [unquote(html_lib.unescape(h)) for h in re.findall(r'href="#([^"]+)"', page)]
    assert not [h for h in hrefs if h not in ids], "contents or rubric-map links without a target"
    nb = nbformat.read(out / f"{TEAM}.ipynb", as_version=4)
    rubric_map = nb.cells[1].source
    assert rubric_map.count("](#") >= 15, "most rubric items link to the section that shows them"
    assert nb.cells[-1].source.startswith("# Appendix: the environment")
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1, "one parameters cell, in the first chapter"


def test_a_warm_kernel_preloads_a_chapters_imports_without_binding_names(tmp_path):
    chapter_file = tmp_path / "09_extra.py"
    chapter_file.write_text('# %% tags=["parameters"]\nimport colorsys\n\n# %%\nimport json\n'
                            "from email import utils\nfrom labkit.notebook import say\nx = 1\n")
    code = build.chapter_imports(build.find_chapters(tmp_path)[0], build.PRELOADED_LIBRARIES)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102  the build's own preload code, run as a kernel runs it
    assert set(namespace) == {"__builtins__"}, "the preload must leave the chapter's namespace empty"
    for module in ("json", "email.utils", "labkit.notebook", *build.PRELOADED_LIBRARIES):
        assert repr(module) in code
    assert "colorsys" not in code, "the parameters cell is papermill's, not an import to preload"


def test_chapters_run_in_four_steps_side_by_side_where_nothing_is_shared():
    steps = [[c.number for c in step] for step in build._steps(build.find_chapters())]
    assert steps == [["01", "02", "03"], ["04"], ["05"], ["06", "07"]]
    only = [[c.number for c in step] for step in build._steps([build.find_chapters()[4]])]
    assert only == [["05"]]


def _report_prose(nb) -> list[tuple[int, str]]:
    """(cell index, text) of what a reader reads as the report: markdown cells and generated Markdown
    outputs, the appendix excepted."""
    prose = []
    for index, cell in enumerate(nb.cells):
        if cell.get("id") == "appendix-environment":
            continue
        if cell.cell_type == "markdown":
            prose.append((index, cell.source))
        for output in cell.get("outputs", []):
            if "text/markdown" in output.get("data", {}):
                prose.append((index, output["data"]["text/markdown"]))
    return prose


@pytest.mark.slow
def test_no_generated_sentence_appears_twice(quick_build):
    import re
    from collections import Counter

    nb = nbformat.read(quick_build.out / f"{TEAM}.ipynb", as_version=4)
    generated = [text for index, text in _report_prose(nb) if nb.cells[index].cell_type == "code"]
    sentences = Counter(s.strip() for text in generated for s in re.split(r"(?<=[.:;])\s+(?=[A-Z*])", text)
                        if len(s.strip()) > 30)
    repeated = {s: n for s, n in sentences.items() if n > 1}
    assert not repeated, repeated


@pytest.mark.slow
def test_tool_language_appears_only_in_the_appendix(quick_build):
    """The build command and its options, profiles, "stub", the README and bench files belong to the
    appendix; the report body speaks of the work (synthetic data is called synthetic)."""
    import re

    tool = re.compile(r"\bbuild(?:\.py)?\b|\bprofiles?\b|\bstub\b|README|\bbench/|--\w+|pin_memory|channels_last|"
                      r"\b(?:/tmp|/home|/root|/Users)/", re.IGNORECASE)
    nb = nbformat.read(quick_build.out / f"{TEAM}.ipynb", as_version=4)
    found = [(index, m.group(0), text[max(0, m.start() - 40):m.end() + 40])
             for index, text in _report_prose(nb) for m in tool.finditer(text)]
    assert not found, found
    appendix = nb.cells[-1].source
    assert "python build.py" in appendix and "Profile" in appendix
    # the run's own files and paths: no stray PosixPath(...) outputs
    plain = [o["data"]["text/plain"] for c in nb.cells for o in c.get("outputs", [])
             if "text/plain" in o.get("data", {}) and "PosixPath(" in o["data"]["text/plain"]]
    assert not plain, plain


@pytest.mark.slow
def test_chapters_01_to_03_and_06_keep_within_their_words(quick_build):
    """Data, the two models and interpretation: at most 1,300 words in all, at most 250 of them generated by
    the run (the rest is the chapters' own markdown, written for this configuration)."""
    import re

    nb = nbformat.read(quick_build.out / f"{TEAM}.ipynb", as_version=4)
    written = generated = 0
    for index, text in _report_prose(nb):
        cell = nb.cells[index]
        if cell.metadata.get("labkit", {}).get("chapter", "")[:2] in ("01", "02", "03", "06"):
            words = len(re.findall(r"[A-Za-z0-9][\w'.%,+-]*", text))
            written, generated = (written + words, generated) if cell.cell_type == "markdown" \
                else (written, generated + words)
    assert generated <= 250 and written + generated <= 1300, (written, generated)
