"""`grading marks` against what Moodle's own code (mod/assign) does with the files, on files shaped as it writes them.

The helpers here transliterate Moodle's side, independently of grading/: the download's names
(``classes/downloader.php`` ``get_student_prefix``: ``clean_filename`` drops ``&<>"`|':\\/``, the zip writer
turns ``?`` and ``*`` into ``_``; folders have no trailing ``_`` since Moodle 4.1), the worksheet as PHP's
``fputcsv`` writes it (escape character ``\\``), and the feedback-zip importer's folder rule
(``feedback/file/importziplib.php`` ``is_valid_filename_for_import``: ``explode('_', $part, 5)``, the second
part must be a participant number). The worksheet we write is read back as PHP's ``fgetcsv`` reads it: by
``read_php_csv``, which is checked against real PHP where ``php`` is installed.
"""
from __future__ import annotations

import csv
import html
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grading.__main__ import main
from grading.classroom.moodle import read_php_csv

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAAABJRU5ErkJggg=="
HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
          "Last modified (submission)", "Last modified (grade)", "Feedback comments"]
SUBMITTED = "Submitted for grading"


def moodle_prefix(name: str, number: str) -> str:
    """get_student_prefix: "_" -> " ", clean_filename(name . "_" . number); then the zip writer's "?"/"*" -> "_"."""
    cleaned = re.sub(r"[\x00-\x1f\x7f&<>\"`|':\\/]", "", name.replace("_", " ") + "_" + number)
    return re.sub(r"[?*]", "_", cleaned)


def fputcsv(values: list[str]) -> str:
    """PHP 8's fputcsv with its defaults (delimiter ",", enclosure '"', escape "\\")."""
    out = []
    for value in values:
        if not any(c in value for c in ',"\\\n\r\t '):
            out.append(value)
            continue
        field, escaped = ['"'], False
        for char in value:
            if char == "\\":
                escaped = True
            elif not escaped and char == '"':
                field.append('"')
            else:
                escaped = False
            field.append(char)
        out.append("".join(field) + '"')
    return ",".join(out) + "\n"


def moodle_importable(folder: str, participants: set[str]) -> str | None:
    """The participant is_valid_filename_for_import files ``folder/...`` under, or None (the file is ignored)."""
    info = folder.split("_", 4)
    if len(info) < 4 or not info[1].isdigit() or info[1] not in participants:
        return None
    if (info[2], info[3]) != ("assignsubmission", "file"):
        return None
    return info[1]


def nb(title: str) -> str:
    cells = [new_markdown_cell(f"# {title}"),
             new_code_cell("class NucleiDataset(Dataset):\n    pass\ntrain, val = train_test_split(df, test_size=0.2)",
                           execution_count=1),
             new_code_cell("plt.plot(history['loss'])", execution_count=2,
                           outputs=[new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})])]
    return nbformat.writes(new_notebook(cells=cells))


def write_class(tmp_path: Path, students, board_rows, *, header=HEADER, layout="folders", blind=False,
                prefixes=None) -> dict[str, Path]:
    """students: (number, full name, file name or None, status, grade, grade can be changed)."""
    subs = tmp_path / "submissions.zip"
    with zipfile.ZipFile(subs, "w") as archive:
        for number, name, filename, *_ in students:
            if filename:
                prefix = (prefixes or {}).get(number) or moodle_prefix("Participant" if blind else name, number)
                member = (f"{prefix}_assignsubmission_file/{filename}" if layout == "folders"
                          else f"{prefix}_assignsubmission_file_{filename}")
                archive.writestr(member, nb(filename))
    rows = [fputcsv(header)]
    for number, name, _, status, grade, changeable in students:
        values = {"Identifier": f"Participant {number}", "Full name": name, "Email address": f"s{number}@uni.ac.uk",
                  "Status": status, "Grade": grade, "Maximum Grade": "100.00", "Grade can be changed": changeable,
                  "Last modified (submission)": "Monday, 3 April 2023, 11:02 PM",
                  "Last modified (grade)": "-" if not grade else "Tuesday, 4 April 2023, 9:00 AM",
                  "Feedback comments": ""}
        rows.append(fputcsv([values[c] for c in header]))
    worksheet = tmp_path / "Grades.csv"
    worksheet.write_bytes(b"\xef\xbb\xbf" + "".join(rows).encode())
    board = tmp_path / "leaderboard.csv"
    with board.open("w", newline="") as handle:   # Kaggle writes standard CSV (a quote doubled)
        writer = csv.writer(handle)
        writer.writerow(["TeamId", "TeamName", "SubmissionDate", "Score"])
        writer.writerows((i, team, "2023-03-01 10:00:00", score) for i, (team, score) in enumerate(board_rows, 1))
    thresholds = tmp_path / "thresholds.csv"
    thresholds.write_text("score,mark\n0.80,10\n0.90,20\n")
    return {"subs": subs, "worksheet": worksheet, "board": board, "thresholds": thresholds}


def run(files, out=None, *extra):
    argv = ["marks", str(files["subs"]), "--leaderboard", str(files["board"]), "--thresholds",
            str(files["thresholds"]), "--worksheet", str(files["worksheet"]), "--jobs", "1", *extra]
    return main(argv + (["--out", str(out)] if out else []))


def imported(out: Path) -> dict[str, dict[str, str]]:
    """The filled worksheet as Moodle's upload reads it: PHP's fgetcsv, every record the header's width."""
    text = (out / "Grades_marked.csv").read_bytes().decode("utf-8-sig")
    records = read_php_csv(text)
    assert all(len(r) == len(records[0]) for r in records), "Moodle would refuse the file (csvweirdcolumns)"
    return {r[0]: dict(zip(records[0], r, strict=True)) for r in records[1:]}


ODD_NAMES = [("201", "Who? Me*", "Odd_One.ipynb"), ("202", "D'Arcy, Zoë", "Apostrophe_Team.ipynb"),
             ("203", "Müller, Jürgen", "Accents.ipynb"), ("204", "Back\\\"slash Bo", "Slash_Team.ipynb")]


@pytest.mark.parametrize("layout", ["folders", "flat"])
def test_feedback_folders_for_names_with_question_marks_apostrophes_commas_and_accents(tmp_path, layout):
    students = [(n, name, f, SUBMITTED, "", "Yes") for n, name, f in ODD_NAMES]
    files = write_class(tmp_path, students, [("Odd One", 0.95), ("Apostrophe Team", 0.85), ("Accents", 0.7),
                                             ("Slash Team", 0.91)], layout=layout)
    out = tmp_path / "out"
    assert run(files, out) in (0, 1)
    with zipfile.ZipFile(out / "feedback.zip") as archive:
        names = archive.namelist()
    filed = {moodle_importable(name.split("/")[0], {n for n, *_ in ODD_NAMES}) for name in names}
    assert filed == {"201", "202", "203", "204"}          # every page reaches its student
    rows = imported(out)
    assert [rows[f"Participant {n}"]["Grade"] for n, *_ in ODD_NAMES] == ["20", "10", "0", "20"]
    assert rows["Participant 204"]["Full name"] == "Back\\\"slash Bo"   # as PHP wrote it and reads it


def test_worksheet_reads_back_exactly_with_a_backslash_before_a_quote(tmp_path):
    students = [("301", "Ann Lee", "Plain.ipynb", SUBMITTED, "", "Yes"),
                ("302", "Bo \"The\\\" Kim", "Other.ipynb", SUBMITTED, "", "Yes")]
    files = write_class(tmp_path, students, [("Plain", 0.95), ('Back\\"slash', 0.85)])
    out = tmp_path / "out"
    assert run(files, out, "--confirm", '302=Back\\"slash') in (0, 1)
    rows = imported(out)
    assert set(rows) == {"Participant 301", "Participant 302"}
    assert rows["Participant 302"]["Full name"] == "Bo \"The\\\" Kim"
    assert rows["Participant 302"]["Grade"] == "10" and rows["Participant 301"]["Grade"] == "20"
    comment = rows["Participant 302"]["Feedback comments"]
    assert 'team Back\\"slash, best score 0.85' in html.unescape(comment)
    # Moodle keeps the comment as HTML: paragraphs and lists, one line, nothing unescaped
    assert comment.startswith("<p>") and "\n" not in comment and "<ul><li>" in comment
    if shutil.which("php"):
        script = ('$c = preg_replace("!\\r\\n?!", "\\n", file_get_contents($argv[1])); $f = fopen("php://temp", "r+");'
                  ' fwrite($f, $c); rewind($f); $r = []; while (($x = fgetcsv($f, 0, ",", "\\"")) !== false) $r[] = $x;'
                  ' echo json_encode($r);')
        done = subprocess.run(["php", "-r", script, str(out / "Grades_marked.csv")], capture_output=True, text=True,
                              check=True)
        records = json.loads(done.stdout)
        records[0][0] = records[0][0].removeprefix("\ufeff")
        assert {r[0]: dict(zip(records[0], r, strict=True)) for r in records[1:]} == rows


PHP_CASES = ['a,"b\\"c",d\n', '"x""y" ,z\n', '"multi\nline",2\n', ' lead,"\\\\""q",\\\n', '"un\\\\"closed,x\n']


@pytest.mark.parametrize("text", PHP_CASES)
def test_the_php_reader_agrees_with_php(text):
    expected = {'a,"b\\"c",d\n': [["a", 'b\\"c', "d"]], '"x""y" ,z\n': [['x"y ', "z"]],
                '"multi\nline",2\n': [["multi\nline", "2"]], ' lead,"\\\\""q",\\\n': [[" lead", '\\\\"q', "\\"]]}
    rows = read_php_csv(text)
    if text in expected:
        assert rows == expected[text]
    if not shutil.which("php"):
        pytest.skip("php is not installed (apt-get install php-cli): checked against the expected rows only")
    script = ('$f = fopen("php://temp", "r+"); fwrite($f, stream_get_contents(STDIN)); rewind($f); $r = [];'
              ' while (($x = fgetcsv($f, 0, ",", "\\"")) !== false) $r[] = $x; echo json_encode($r);')
    done = subprocess.run(["php", "-r", script], input=text, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == rows


@pytest.mark.parametrize("group_id", ["102", "900"])
def test_team_submissions_are_refused_not_credited(tmp_path, capsys, group_id):
    students = [("101", "Ann Lee", None, SUBMITTED, "", "Yes"), ("102", "Bob Ray", None, SUBMITTED, "", "Yes"),
                ("103", "Cy Day", "Solo.ipynb", SUBMITTED, "", "Yes")]
    files = write_class(tmp_path, students, [("Group Team", 0.95), ("Solo", 0.85)])
    with zipfile.ZipFile(files["subs"], "a") as archive:   # "Students submit in groups": the group's name and id
        archive.writestr(f"{moodle_prefix('Team_Rocket', group_id)}_assignsubmission_file/Group_Team.ipynb", nb("g"))
    out = tmp_path / "out"
    assert run(files, out) == 2
    err = capsys.readouterr().err
    assert "Team Rocket" in err and not out.exists()
    if group_id == "102":    # the group's id is Bob's participant number: never credited to him
        assert "look like team submissions" in err and "'Team Rocket' is nobody's name" in err
    else:
        assert "participant 900 is not in the grading worksheet" in err and "group's id" in err


def test_students_in_no_group_and_a_file_named_for_someone_else(tmp_path, capsys):
    students = [("101", "Ann Lee", "Solo.ipynb", SUBMITTED, "", "Yes"), ("102", "Bob Ray", None, SUBMITTED, "", "Yes")]
    files = write_class(tmp_path, students, [("Solo", 0.85)])
    with zipfile.ZipFile(files["subs"], "a") as archive:
        archive.writestr("Default group_assignsubmission_file/Solo2.ipynb", nb("g"))
    assert run(files) == 2
    assert "look like team submissions" in capsys.readouterr().err
    files = write_class(tmp_path, students, [("Solo", 0.85)], prefixes={"101": "Bob Ray_101"})
    assert run(files) == 2
    assert "named for 'Bob Ray' (participant 102) but carries number 101, which belongs to 'Ann Lee'" in \
        capsys.readouterr().err


def test_blind_marking_worksheet(tmp_path, capsys):
    header = [c for c in HEADER if c != "Full name"]
    students = [("5551", "", "Alpha.ipynb", SUBMITTED, "", "Yes"), ("5552", "", "Beta.ipynb", SUBMITTED, "", "Yes")]
    files = write_class(tmp_path, students, [("Alpha", 0.95), ("Beta", 0.81)], header=header, blind=True)
    out = tmp_path / "out"
    assert run(files, out, "--format", "json") == 0
    rows = imported(out)
    assert rows["Participant 5551"]["Grade"] == "20" and rows["Participant 5552"]["Grade"] == "10"
    with zipfile.ZipFile(out / "feedback.zip") as archive:
        assert sorted(archive.namelist()) == ["Participant_5551_assignsubmission_file_/feedback_Alpha.html",
                                              "Participant_5552_assignsubmission_file_/feedback_Beta.html"]
    report = json.loads((out / "marks.json").read_text())
    assert [s["full_name"] for s in report["students"]] == ["Participant 5551", "Participant 5552"]


def test_a_draft_is_pending_in_the_report_and_the_worksheet_alike(tmp_path):
    students = [("401", "Ann Lee", "Drafty.ipynb", "Draft (not submitted)", "", "Yes")]
    files = write_class(tmp_path, students, [("Drafty", 0.95)])
    out = tmp_path / "out"
    assert run(files, out, "--format", "json") == 1
    student = json.loads((out / "marks.json").read_text())["students"][0]
    assert student["mark_status"] == "pending" and student["grade"] is None
    assert any("Draft (not submitted)" in f for f in student["flags"])
    assert imported(out)["Participant 401"]["Grade"] == ""
    assert run(files, out, "--format", "json", "--confirm", "401=Drafty") == 0
    student = json.loads((out / "marks.json").read_text())["students"][0]
    assert student["grade"] == 20 and imported(out)["Participant 401"]["Grade"] == "20"


def test_locked_grades_are_left_alone_and_existing_grades_warned_about(tmp_path, capsys):
    students = [("501", "Ann Lee", "Locked.ipynb", SUBMITTED, "55.00", "No"),
                ("502", "Bob Ray", "Graded.ipynb", SUBMITTED, "12.00", "Yes"),
                ("503", "Cy Day", "Same.ipynb", SUBMITTED, "20.00", "Yes")]
    files = write_class(tmp_path, students, [("Locked", 0.95), ("Graded", 0.95), ("Same", 0.95)])
    out = tmp_path / "out"
    assert run(files, out, "--format", "json") == 1
    rows = imported(out)
    assert rows["Participant 501"]["Grade"] == "55.00"                  # locked: as it was
    assert rows["Participant 502"]["Grade"] == "20"
    report = json.loads((out / "marks.json").read_text())
    locked = report["students"][0]
    assert locked["locked"] and locked["grade"] is None and any("Grade can be changed" in f for f in locked["flags"])
    err = capsys.readouterr().err
    assert "warning: 1 row of the worksheet already carries a grade" in err and "502 (12.00 -> 20)" in err
    assert "503" not in err.split("warning:")[1] and report["warnings"]
    assert run(files, out, "--format", "html") == 1
    assert "Before you upload: 1 row of the worksheet already carries a grade" in (out / "marks.html").read_text()


def test_out_takes_a_folder_or_says_what_to_pass(tmp_path, capsys):
    folder = tmp_path / "nbs"
    folder.mkdir()
    for name in ("A.ipynb", "B.ipynb"):
        (folder / name).write_text(nb(name))
    reports = tmp_path / "reports"
    reports.mkdir()
    assert main(["similar", str(folder), "--out", str(reports), "--jobs", "1"]) == 0
    assert main(["check", str(folder), "--format", "json", "--out", str(reports), "--jobs", "1"]) == 1
    assert (reports / "similar.txt").read_text().startswith("Shared code")
    assert len(json.loads((reports / "check.json").read_text())) == 2
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    capsys.readouterr()
    assert main(["similar", str(folder), "--out", str(blocker / "report.txt"), "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write --out") and "Traceback" not in err and err.count("\n") == 1
