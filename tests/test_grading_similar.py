"""`python -m grading similar`: a copy with renamed variables and reordered cells ranks first among
independent notebooks, and code that comes from the course's own notebook (--template) does not pair."""
from __future__ import annotations

import html
import json
import random
import re
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from grading.__main__ import main
from grading.classroom.similar import (
    WINDOW,
    K,
    kgram_hashes,
    normalised_tokens,
    similar_notebooks,
    winnow,
)

STATEMENTS = [
    "{a} = {b} + {n}", "{a} = {b}.{c}({d}, {n})", "{a}.append({b})", "if {a} > {n}:\n    {b} = {a} * {n}",
    "for {a} in range({n}):\n    {b} += {a}", "{a} = [{b} for {b} in {c} if {b}]", "print(f'{{{a}}}', {b})",
    "{a}, {b} = {c}({d})", "{a} = {{'{c}': {n}, '{d}': {b}}}", "while {a} < {n}:\n    {a} += 1",
    "{a} = {b}[{n}:{n}]", "return {a}", "{a} = not {b}", "{a} = {b}.{c}.{d}()", "try:\n    {a}()\nexcept {b}:\n    pass",
    "with {a}({b}) as {c}:\n    {d} = {c}.{a}()", "{a} = lambda {b}: {b} ** {n}", "assert {a} == {b}, '{c}'",
    "{a} = {b} if {c} else {n}", "del {a}[{n}]", "{a} |= {b}", "{a} = ({b}, {c}, {n})", "{a}[{b}] = {c}",
]
WORDS = ["loss", "acc", "net", "batch", "epoch", "images", "labels", "device", "optimiser", "history", "scores",
         "x", "y", "preds", "frame", "path", "total", "count", "best", "model", "layer", "size", "rate", "data"]


def random_cell(rng: random.Random, statements: int) -> str:
    lines = [f"def {rng.choice(WORDS)}_{rng.randrange(99)}({rng.choice(WORDS)}, {rng.choice(WORDS)}):"]
    for _ in range(statements):
        text = rng.choice(STATEMENTS).format(a=rng.choice(WORDS), b=rng.choice(WORDS), c=rng.choice(WORDS),
                                             d=rng.choice(WORDS), n=rng.randrange(1, 500))
        lines += ["    " + line for line in text.splitlines()]
    return "\n".join(lines)


TEMPLATE_CELLS = [  # the course's lab notebook, which everyone may reuse
    "import torch\nimport torch.nn as nn\nfrom torch.utils.data import Dataset, DataLoader\n",
    ("class NucleiDataset(Dataset):\n    def __init__(self, frame, root, transform=None):\n        self.frame = frame\n"
    "        self.root = root\n        self.transform = transform\n\n    def __len__(self):\n        return len(self.frame)\n\n"
    "    def __getitem__(self, index):\n        row = self.frame.iloc[index]\n        image = Image.open(self.root / row.Filename)\n"
    "        if self.transform:\n            image = self.transform(image)\n        return image, row.Label\n"),
    ("def train_one_epoch(model, loader, optimiser, criterion):\n    model.train()\n    total = 0.0\n"
    "    for images, labels in loader:\n        optimiser.zero_grad()\n        loss = criterion(model(images), labels)\n"
    "        loss.backward()\n        optimiser.step()\n        total += loss.item()\n    return total / len(loader)\n"),
]


def student(rng: random.Random, with_template: bool = True) -> list[str]:
    own = [random_cell(rng, rng.randrange(10, 16)) for _ in range(6)]
    return (list(TEMPLATE_CELLS) if with_template else []) + own


def disguise(cells: list[str], rng: random.Random) -> list[str]:
    """Rename every identifier a student chose, add comments, reorder the cells: what a copier does."""
    names = {w: f"{w[::-1]}_v" for w in WORDS}
    renamed = [re.sub(r"\b(" + "|".join(WORDS) + r")\b", lambda m: names[m[1]], c) for c in cells]
    commented = ["# my own work\n" + c.replace("\n", "  # step\n", 2) for c in renamed]
    rng.shuffle(commented)
    return commented


def write(folder: Path, name: str, cells: list[str], extra: list[str] = ()) -> Path:
    nb = new_notebook(cells=[new_markdown_cell(f"# {name}")] + [new_code_cell(c, execution_count=i + 1)
                                                                 for i, c in enumerate([*extra, *cells])])
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def planted_class(tmp_path: Path) -> tuple[Path, Path]:
    rng = random.Random(24)
    folder = tmp_path / "class"
    folder.mkdir()
    original = student(rng)
    write(folder, "Original", original)
    write(folder, "Copier", disguise(original, rng),
          extra=["!pip install captum", "%matplotlib inline\nimport numpy as np", "x = !ls\nprint(x)",
                 "def broken(:\n    return 'unterminated", "%%time\nfor i in range(3):\n    pass"])
    for i in range(8):
        write(folder, f"Independent_{i}", student(rng))
    # two students who both reused a lab notebook that the rest of the class did not use
    lab_rng = random.Random(7)
    lab = [random_cell(lab_rng, 14) for _ in range(4)]
    write(folder, "Lab_User_A", student(rng, with_template=False) + lab)
    write(folder, "Lab_User_B", lab + student(rng, with_template=False))
    template = write(tmp_path, "starter", list(TEMPLATE_CELLS) + lab)
    return folder, template


def test_normalising_hides_renames_and_survives_magics_and_bad_code():
    a = normalised_tokens("total = price * 3  # sum\nprint('x', total)\n")
    b = normalised_tokens("s=p*7\n\n\nprint(\"y\",s)")
    assert [t for t, _ in a] == [t for t, _ in b] == ["N", "=", "N", "*", "0", ";", "N", "(", "S", ",", "N", ")", ";"]
    assert [t for t, _ in normalised_tokens("!pip install captum\n%matplotlib inline\nx = 1\n")] == ["N", "=", "0", ";"]
    assert normalised_tokens("def f(:\n  'unterminated") and normalised_tokens("") == []
    assert normalised_tokens("if x:\nprint(1)")      # an IndentationError: tokens from the fallback


def test_winnowing_keeps_a_fingerprint_of_every_long_shared_run():
    rng = random.Random(1)
    common = random_cell(rng, 8)
    one = kgram_hashes(normalised_tokens(random_cell(rng, 6) + "\n" + common))
    two = kgram_hashes(normalised_tokens(common + "\n" + random_cell(rng, 6)))
    picked_one, picked_two = {h for h, _, _ in winnow(one)}, {h for h, _, _ in winnow(two)}
    assert picked_one & picked_two                                   # the guarantee: a run >= K + WINDOW - 1 tokens
    assert len(winnow(one)) < len(one) / 2 and K + WINDOW - 1 < len(normalised_tokens(common))


def test_the_planted_copy_ranks_first_and_template_code_does_not_pair(tmp_path, capsys):
    folder, template = planted_class(tmp_path)
    assert main(["similar", str(folder), "--template", str(template), "--format", "json", "--jobs", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["notebooks"] == 12 and report["common_cutoff"] == 3 and report["templates"] == [str(template)]
    pairs = report["pairs"]
    first = pairs[0]
    assert {Path(first["a"]).stem, Path(first["b"]).stem} == {"Original", "Copier"}
    assert first["score"] > 0.8 and first["cells"]
    assert [p["score"] for p in pairs] == sorted((p["score"] for p in pairs), reverse=True)
    stems = [{Path(p["a"]).stem, Path(p["b"]).stem} for p in pairs]
    assert {"Lab_User_A", "Lab_User_B"} not in stems              # they share only the template's code
    assert all(p["score"] < first["score"] / 2 for p in pairs[1:])  # chance overlaps of independent ones: far below
    # without the template, the two lab users do pair (so the test above tested something)
    result = similar_notebooks([str(folder)], jobs=1)
    ranked = [{Path(p.a.label).stem, Path(p.b.label).stem} for p in result.pairs]
    assert ranked[:2] == [{"Original", "Copier"}, {"Lab_User_A", "Lab_User_B"}]


def test_similar_text_csv_html_and_zip(tmp_path, capsys):
    folder, template = planted_class(tmp_path)
    archive = tmp_path / "subs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.glob("*.ipynb")):
            zf.write(path, f"Student {path.stem}_{abs(hash(path.stem)) % 10**6}_assignsubmission_file_/{path.name}")
    assert main(["similar", str(archive), "--template", str(template)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Shared code is a reason to look, not a finding") and "Copier.ipynb" in text
    assert main(["similar", str(folder), "--format", "csv", "--jobs", "1"]) == 0
    assert capsys.readouterr().out.startswith("a,b,score,share,shared_fingerprints,shared_lines,longest_run")
    out = tmp_path / "similar.html"
    (folder / "Evil.ipynb").write_text(nbformat.writes(new_notebook(cells=[
        new_code_cell("x = '<script>alert(1)</script>'\n" + random_cell(random.Random(3), 12)),
        new_code_cell(random_cell(random.Random(4), 12))])))
    (folder / "Evil_copy.ipynb").write_text((folder / "Evil.ipynb").read_text())
    assert main(["similar", str(folder), "--template", str(template), "--format", "html", "--out", str(out)]) == 0
    page = out.read_text()
    assert "<script" not in page and "&lt;script&gt;" in page and "not a finding" in page
    assert page.count("<mark>") > 10 and "Copier.ipynb" in page
    assert main(["similar", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


HANDINS = Path(__file__).resolve().parents[2] / "shared" / "handins"


def handin_code(name: str) -> list[str]:
    nb = nbformat.read(HANDINS / f"{name}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def real_class(tmp_path: Path) -> Path:
    """The five real hand-ins, with planted copies made from them:
    - a ring of four: Mathew_Shaji and three copies of it (comments added, `model` renamed, cells shuffled);
    - a partial copy: about 190 lines of Cell_Nuclei_Recognition pasted into cellNucleiIdentify;
    - a near-empty hand-in: one read_csv line and the first 23 lines of the public PyTorch-tutorial
      `train_model` that ConvNetModels also uses."""
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("Cell_Nuclei_Recognition", "ConvNetModels", "queensbridge", "Mathew_Shaji"):
        write(folder, name, handin_code(name))
    ring = handin_code("Mathew_Shaji")
    for i in range(1, 4):
        copied = ["# my own work\n" + re.sub(r"\bmodel\b", f"net{i}", cell) for cell in ring]
        random.Random(i).shuffle(copied)
        write(folder, f"Ring_{i}", copied)
    pasted: list[str] = []
    for cell in handin_code("Cell_Nuclei_Recognition")[5:]:
        if sum(c.count("\n") + 1 for c in pasted) >= 190:
            break
        pasted.append(cell)
    write(folder, "cellNucleiIdentify", handin_code("cellNucleiIdentify") + pasted)
    tutorial = next(c for c in handin_code("ConvNetModels") if "def train_model" in c)
    write(folder, "Near_Empty", ["import pandas as pd\ndf = pd.read_csv('train.csv')",
                                 "\n".join(tutorial.splitlines()[:23])])
    return folder


@pytest.mark.skipif(not HANDINS.is_dir(), reason=f"the real hand-ins are not at {HANDINS}")
def test_real_hand_ins_a_ring_a_partial_copy_and_a_near_empty_notebook(tmp_path, capsys):
    folder = real_class(tmp_path)
    assert main(["similar", str(folder), "--format", "json", "--jobs", "1", "--min-share", "0.05"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["notebooks"] == 9 and report["common_cutoff"] == 3 and report["templates"] == []
    ring = {"Mathew_Shaji", "Ring_1", "Ring_2", "Ring_3"}
    # the ring is one group (four notebooks: more than the common-code cut-off of three)
    assert [{Path(n).stem for n in g["notebooks"]} for g in report["groups"]] == [ring]
    assert report["groups"][0]["share"] > 0.8
    origin = {name: "ring" if name in ring else name for name in
              (Path(p).stem for p in folder.glob("*.ipynb"))}
    partial, near_empty = {"Cell_Nuclei_Recognition", "cellNucleiIdentify"}, {"ConvNetModels", "Near_Empty"}
    ranked = [({Path(p["a"]).stem, Path(p["b"]).stem}, p) for p in report["pairs"]]
    position = {frozenset(names): i for i, (names, _) in enumerate(ranked)}
    ring_pairs = [i for names, i in position.items() if names <= ring]
    independent = [(i, p) for (names, p), i in zip(ranked, range(len(ranked)), strict=True)
                   if len({origin[n] for n in names}) == 2 and names not in (partial, near_empty)]
    assert len(ring_pairs) == 6 and independent
    assert position[frozenset(partial)] < min(i for i, _ in independent)      # above every independent pair
    assert position[frozenset(near_empty)] > max(ring_pairs + [position[frozenset(partial)]])
    partial_pair = ranked[position[frozenset(partial)]][1]
    near_pair = ranked[position[frozenset(near_empty)]][1]
    assert partial_pair["longest_run"] > max(p["longest_run"] for _, p in independent)
    assert near_pair["share"] > 0.8 and near_pair["shared_lines"] < 25   # a high share of very little code


def test_html_shows_shared_lines_wherever_they_are_each_cell_once(tmp_path, capsys):
    rng = random.Random(11)
    folder = tmp_path / "pair"
    folder.mkdir()
    filler = random_cell(rng, 40)                      # 40+ lines of A's own code first
    copied = random_cell(rng, 14)                      # then the shared part, far below line 40
    marker = copied.splitlines()[len(copied.splitlines()) // 2].strip()
    write(folder, "A", [f"import numpy as np\n{filler}\n{copied}", f"import numpy as np\n{copied}"])  # said twice
    write(folder, "B", [f"import numpy as np\n{copied}", random_cell(rng, 12)])
    for i in range(3):
        write(folder, f"Other_{i}", [random_cell(rng, 12), "import numpy as np\nx = np.zeros(3)"])
    out = tmp_path / "similar.html"
    assert main(["similar", str(folder), "--format", "html", "--out", str(out), "--jobs", "1"]) == 0
    page = out.read_text()
    assert re.search(rf"<mark>\s*{re.escape(html.escape(marker))}</mark>", page)   # beyond line 40, shown
    assert "<mark>import numpy as np</mark>" not in page                                 # never highlighted
    assert "lines not shared" in page
    section = page.split('id="pair-1"')[1]
    shown = re.findall(r"<tr><th>(cell \d+) \(\d+ shared\)</th><th>(cell \d+)</th></tr>", section)
    b_cells = [b for _, b in shown]
    assert "cell 2" in b_cells and len(b_cells) == len(set(b_cells))   # once, though A holds its code twice
