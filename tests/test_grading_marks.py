"""`python -m grading marks`: Moodle's submissions zip, its grading worksheet and Kaggle's leaderboard, round trip.

The files are shaped exactly like the exports: the zip names each student's folder
``Full Name_123456_assignsubmission_file_``, the worksheet has Moodle's header, a UTF-8 BOM and quoted
names with commas, the leaderboard is Kaggle's ``TeamId,TeamName,SubmissionDate,Score``.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grading.__main__ import main
from grading.classroom.leaderboard import (
    LeaderboardFileError,
    read_scores,
    read_thresholds,
)
from grading.classroom.moodle import MoodleError, participant_of, read_worksheet

HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
          "Last modified (submission)", "Last modified (grade)", "Feedback comments"]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAAABJRU5ErkJggg=="

# (participant, full name, team on Kaggle, the notebook's file name or None, Moodle status)
CLASS = [
    ("101", "Lee, Ann", "Dogs Versus Cats", "Dogs_Versus_Cats.ipynb", "Submitted for grading"),
    ("102", "O'Neil, Bob \"Bobby\"", "the best team", "The_Best_Team.ipynb", "Submitted for grading"),
    ("103", "Zoë Dé", "Lonely Wolves", "Lonely_Wolfs_v2.ipynb", "Submitted for grading"),
    ("104", "Nobody, Here", None, None, "No submission"),
    ("105", "Pat Kim", "Low Scorers", "Low_Scorers.ipynb", "Submitted for grading"),
]


def notebook(title: str, evil: str = "") -> dict:
    cells = [new_markdown_cell(f"# {title}"),
             new_code_cell("class NucleiDataset(Dataset):\n    pass\ntrain, val = train_test_split(df, test_size=0.2)"
                           + evil, execution_count=1, outputs=[]),
             new_code_cell("plt.plot(history['loss'])", execution_count=2,
                           outputs=[new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})])]
    return new_notebook(cells=cells)


def moodle_class(tmp_path: Path, layout: str = "folders") -> dict[str, Path]:
    """The three downloads: submissions zip, grading worksheet (BOM, CRLF, quoted commas), leaderboard."""
    subs = tmp_path / "submissions.zip"
    with zipfile.ZipFile(subs, "w") as archive:
        for participant, name, _, filename, _ in CLASS:
            if filename:
                prefix = f"{name}_{participant}_assignsubmission_file_"
                member = f"{prefix}/{filename}" if layout == "folders" else f"{prefix}{filename}"
                archive.writestr(member, nbformat.writes(notebook(filename)))
    sheet = io.StringIO()
    writer = csv.writer(sheet, lineterminator="\r\n")
    writer.writerow(HEADER)
    for participant, name, _, _, status in CLASS:
        writer.writerow([f"Participant {participant}", name, f"s{participant}@example.ac.uk", status, "", "100.00",
                         "Yes", "Monday, 3 April 2023, 11:02 PM" if status != "No submission" else "-", "-", ""])
    worksheet = tmp_path / "Grades-DL-Coursework.csv"
    worksheet.write_bytes(b"\xef\xbb\xbf" + sheet.getvalue().encode())
    board = tmp_path / "deep-learning-for-msc-2022-23-publicleaderboard.csv"
    board.write_text("TeamId,TeamName,SubmissionDate,Score\n"
                     "11,Dogs Versus Cats,2023-03-01 10:00:00,0.91000\n"
                     "11,Dogs Versus Cats,2023-03-04 18:30:00,0.95500\n"      # the team's best counts
                     "12,the best team,2023-03-02 09:00:00,0.93\n"
                     "13,Lonely Wolves,2023-03-02 09:00:00,0.97\n"
                     "15,Low Scorers,2023-03-02 09:00:00,0.70\n"
                     "16,Ghost Team,2023-03-02 09:00:00,0.85\n", encoding="utf-8")
    thresholds = tmp_path / "thresholds.csv"
    thresholds.write_text("score,mark\n0.80,10\n0.90,20\n0.95,25\n", encoding="utf-8")
    return {"subs": subs, "worksheet": worksheet, "board": board, "thresholds": thresholds}


def run_marks(files, out=None, *extra):
    argv = ["marks", str(files["subs"]), "--leaderboard", str(files["board"]), "--thresholds",
            str(files["thresholds"]), "--worksheet", str(files["worksheet"]), "--jobs", "1", *extra]
    return main(argv + (["--out", str(out)] if out else []))


def read_back(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize("layout", ["folders", "flat"])
def test_participant_numbers_from_moodle_names(layout):
    path = ("Lee, Ann_101_assignsubmission_file_/Dogs_Versus_Cats.ipynb" if layout == "folders"
            else "Lee, Ann_101_assignsubmission_file_Dogs_Versus_Cats.ipynb")
    name = participant_of(path)
    assert (name.participant, name.full_name, name.filename) == ("101", "Lee, Ann", "Dogs_Versus_Cats.ipynb")
    assert name.folder == "Lee, Ann_101_assignsubmission_file_"
    assert participant_of("hand-ins/Dogs_Versus_Cats.ipynb").participant is None


def test_worksheet_status_and_identifiers(tmp_path):
    sheet = tmp_path / "w.csv"
    sheet.write_text(",".join(HEADER) + "\n" + "".join(
        f"Participant {n},\"Name, {n}\",e,{status},,100,Yes,-,-,\n" for n, status in
        ((1, "Submitted for grading - Graded"), (2, "No submission"), (3, "Draft (not submitted)"))))
    worksheet = read_worksheet(sheet)
    assert [worksheet.submitted(p) for p in "123"] == [True, False, False]
    assert worksheet.get("1", "Full name") == "Name, 1"
    sheet.write_text(",".join(HEADER) + "\nStudent 7,x,e,Submitted,,100,Yes,-,-,\n")
    with pytest.raises(MoodleError, match=r"w.csv, row 2: Identifier 'Student 7' is not 'Participant NNN'"):
        read_worksheet(sheet)


@pytest.mark.parametrize("layout", ["folders", "flat"])
def test_round_trip_worksheet_and_feedback_zip(tmp_path, capsys, layout):
    files = moodle_class(tmp_path, layout)
    before = files["worksheet"].read_bytes()
    out = tmp_path / "marked"
    assert run_marks(files, out) == 1                     # some students need a look
    assert files["worksheet"].read_bytes() == before      # never written in place
    written = out / "Grades-DL-Coursework_marked.csv"
    original, filled = read_back(files["worksheet"]), read_back(written)
    assert b"\r\n" in written.read_bytes()                # Moodle's line ends kept
    assert filled[0] == HEADER and len(filled) == len(original)
    grade, comments = HEADER.index("Grade"), HEADER.index("Feedback comments")
    for before_row, after_row in zip(original, filled, strict=True):  # every other column unchanged
        assert [c for i, c in enumerate(before_row) if i not in (grade, comments)] == \
               [c for i, c in enumerate(after_row) if i not in (grade, comments)]
    rows = {r[0]: r for r in filled[1:]}
    assert rows["Participant 101"][grade] == "25"          # exact match, best score 0.955 >= 0.95
    assert rows["Participant 105"][grade] == "0"           # exact match, below every threshold
    assert rows["Participant 102"][grade] == ""            # differs only in case/spaces: pending
    assert rows["Participant 103"][grade] == ""            # no team: pending until confirmed
    assert rows["Participant 104"][grade] == "" and rows["Participant 104"][comments] == ""   # no submission
    assert "Kaggle leaderboard: team Dogs Versus Cats, best score 0.955, leaderboard mark 25." in \
        rows["Participant 101"][comments]
    assert "Missing:" in rows["Participant 101"][comments]
    assert "leaderboard" not in rows["Participant 103"][comments].lower()   # nothing said before it is decided
    with zipfile.ZipFile(out / "feedback.zip") as archive:
        names = sorted(archive.namelist())
        page = archive.read("Lee, Ann_101_assignsubmission_file_/feedback_Dogs_Versus_Cats.html").decode()
    assert names == ["Lee, Ann_101_assignsubmission_file_/feedback_Dogs_Versus_Cats.html",   # Moodle drops ' and "
                     "ONeil, Bob Bobby_102_assignsubmission_file_/feedback_The_Best_Team.html",
                     "Pat Kim_105_assignsubmission_file_/feedback_Low_Scorers.html",
                     "Zoë Dé_103_assignsubmission_file_/feedback_Lonely_Wolfs_v2.html"]
    assert "Dogs Versus Cats" in page and "cell 2:" in page and "train_test_split" in page
    report = (out / "marks.txt").read_text()
    assert "Ghost Team" in report and "wrote" in capsys.readouterr().out


def test_confirmations_settle_flagged_names(tmp_path, capsys):
    files = moodle_class(tmp_path)
    out = tmp_path / "marked"
    notebook_marks = tmp_path / "notebook_marks.csv"
    notebook_marks.write_text("participant,mark\n101,40\n103,35.5\n")
    assert run_marks(files, out, "--confirm", "102=the best team", "--confirm", "Lonely_Wolfs_v2.ipynb=none",
                     "--notebook-marks", str(notebook_marks), "--format", "json") == 1
    rows = {r[0]: r for r in read_back(out / "Grades-DL-Coursework_marked.csv")[1:]}
    assert rows["Participant 102"][4] == "20"       # confirmed: 0.93 -> 20
    assert rows["Participant 103"][4] == "35.5"     # confirmed no leaderboard mark, plus the notebook half
    assert rows["Participant 101"][4] == "65"
    students = {s["participant"]: s for s in json.loads((out / "marks.json").read_text())["students"]}
    assert students["102"]["match"] == "confirmed" and students["102"]["leaderboard_mark"] == 20
    assert students["104"]["notebook"] is None and "no submission" in students["104"]["flags"]
    assert run_marks(files, None, "--confirm", "999=none") == 2
    assert "--confirm names no hand-in: 999" in capsys.readouterr().err


def test_marks_json_and_csv_to_stdout(tmp_path, capsys):
    files = moodle_class(tmp_path)
    assert run_marks(files, None, "--format", "json") == 1
    data = json.loads(capsys.readouterr().out)
    by = {s["participant"]: s for s in data["students"]}
    assert by["101"]["team"] == "Dogs Versus Cats" and by["101"]["score"] == 0.955 and by["101"]["match"] == "exact"
    assert by["102"]["mark_status"] == "pending" and by["102"]["proposed_mark"] == 20
    assert any("only in case" in f for f in by["102"]["flags"])
    assert by["103"]["suggestion"] == "Lonely Wolves" and by["103"]["leaderboard_mark"] is None
    assert set(by["101"]["criteria"]) >= {"filename", "executed", "data_loader"}
    assert data["teams_without_notebook"] == [{"team": "Lonely Wolves", "closest": "Lonely_Wolfs_v2.ipynb"},
                                              {"team": "Ghost Team", "closest": None}]
    assert run_marks(files, None, "--format", "csv") == 1
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["participant"] for r in table] == ["101", "102", "103", "104", "105"]
    assert table[0]["leaderboard_mark"] == "25" and table[0]["data_loader"] == "pass"


def test_a_plain_folder_and_a_notebook_handed_in_twice(tmp_path, capsys):
    files = moodle_class(tmp_path)
    folder = tmp_path / "folder"
    folder.mkdir()
    text = nbformat.writes(notebook("x"))
    (folder / "Dogs_Versus_Cats.ipynb").write_text(text)
    (folder / "dogs versus cats.ipynb").write_text(text)
    code = main(["marks", str(folder), "--leaderboard", str(files["board"]), "--thresholds", str(files["thresholds"]),
                 "--format", "json", "--jobs", "2"])
    assert code == 1
    rows = json.loads(capsys.readouterr().out)["students"]
    assert [r["match"] for r in rows] == ["exact", "normalised"]
    assert all(any("the same file as" in f for f in r["flags"]) for r in rows)
    assert all(any("also handed in by" in f for f in r["flags"]) for r in rows)


def test_bad_input_names_the_file_and_row(tmp_path, capsys):
    files = moodle_class(tmp_path)
    out = tmp_path / "marked"
    # a worksheet with the wrong header
    bad = tmp_path / "bad_sheet.csv"
    bad.write_text("Name,Mark\nAnn,3\n")
    assert main(["marks", str(files["subs"]), "--leaderboard", str(files["board"]), "--thresholds",
                 str(files["thresholds"]), "--worksheet", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}, row 1: the header lacks" in err and "'Identifier'" in err and not out.exists()
    # a participant in the zip but not in the worksheet
    lines = files["worksheet"].read_bytes().split(b"\r\n")
    files["worksheet"].write_bytes(b"\r\n".join(line for line in lines if b"Participant 103" not in line))
    assert run_marks(files, out) == 2
    err = capsys.readouterr().err
    assert "Zoë Dé_103_assignsubmission_file_/Lonely_Wolfs_v2.ipynb: participant 103 is not in the grading " \
           "worksheet" in err and not out.exists()
    # a team on the leaderboard twice
    files = moodle_class(tmp_path)
    files["board"].write_text("TeamId,TeamName,SubmissionDate,Score\n1,Dogs,2023-03-01,0.9\n2,Cats,2023-03-01,0.8\n"
                              "3,Dogs,2023-03-02,0.7\n")
    assert run_marks(files, out) == 2
    assert "row 4: team 'Dogs' is on the leaderboard twice (also row 2, with another TeamId)" in capsys.readouterr().err
    files["board"].write_text("TeamId,TeamName,SubmissionDate,Score\n1,Dogs,2023-03-01,high\n")
    assert run_marks(files, out) == 2
    assert "row 2: Score 'high' is not a number" in capsys.readouterr().err
    assert not out.exists()
    # no output replaces an input: here the leaderboard is called marks.csv and --out is its folder
    files = moodle_class(tmp_path)
    clash = tmp_path / "marks.csv"
    shutil.copy(files["board"], clash)
    files["board"] = clash
    before = clash.read_bytes()
    assert run_marks(files, tmp_path, "--format", "csv") == 2
    assert f"{clash} is one of the inputs" in capsys.readouterr().err and clash.read_bytes() == before


@pytest.mark.parametrize(("text", "says"), [
    ("mark,score\n10,0.8\n", "row 1: the header must be 'score,mark'"),
    ("score,mark\n0.9,20\n0.8,10\n", "row 3: score 0.8 does not increase"),
    ("score,mark\n0.8,20\n0.9,10\n", "row 3: mark 10 is lower"),
    ("score,mark\n0.8,ten\n", "row 2: mark 'ten' is not a number"),
    ("score,mark\n", "no thresholds"),
])
def test_thresholds_are_validated(tmp_path, text, says):
    path = tmp_path / "thresholds.csv"
    path.write_text(text)
    with pytest.raises(LeaderboardFileError, match=re.escape(says)):
        read_thresholds(path)


def test_thresholds_and_best_scores(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("score,mark\n0.80,10\n0.90,20\n")
    thresholds = read_thresholds(path)
    assert [thresholds.mark(s) for s in (None, 0.79, 0.80, 0.899, 0.9, 1.0)] == [0, 0, 10, 10, 20, 20]
    board = tmp_path / "lb.csv"
    board.write_text("\ufeffTeamId,TeamName,SubmissionDate,Score\n1,A,d,0.5\n1,A,d,0.7\n1,A,d,0.6\n")
    assert read_scores(board)["A"].score == 0.7
    with zipfile.ZipFile(tmp_path / "lb.zip", "w") as archive:   # Kaggle's download is a zip of the CSV
        archive.write(board, "deep-learning-for-msc-2022-23-publicleaderboard.csv")
    assert read_scores(tmp_path / "lb.zip")["A"].score == 0.7
    board.write_text("TeamId,TeamName,SubmissionDate,Score\n1,Dogs Cats,d,0.5\n2,dogs_cats,d,0.7\n")
    with pytest.raises(LeaderboardFileError, match="row 3: team 'dogs_cats' and team 'Dogs Cats'"):
        read_scores(board)


def test_feedback_and_overview_escape_everything(tmp_path, capsys):
    files = moodle_class(tmp_path)
    evil = "\n# <script>alert(1)</script> <img src=http://example.com/x.png>"
    with zipfile.ZipFile(files["subs"], "a") as archive:
        archive.writestr("<b>Eve</b>_106_assignsubmission_file_/Dogs_Versus_Cats.ipynb",
                         nbformat.writes(notebook("<script>x</script>", evil)))
    folder = tmp_path / "marked"
    assert main(["marks", str(files["subs"]), "--leaderboard", str(files["board"]), "--thresholds",
                 str(files["thresholds"]), "--format", "html", "--out", str(folder)]) == 1
    pages = [(folder / "marks.html").read_text()]
    with zipfile.ZipFile(folder / "feedback.zip") as archive:
        pages += [archive.read(n).decode() for n in archive.namelist()]
    for page in pages:
        assert "<script" not in page and "<img" not in page and "<b>Eve" not in page
        assert not re.search(r"<[a-z][^>]*\s(src|href)=", page)     # no tag loads anything
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in p for p in pages)
    overview = pages[0]
    assert overview.index("Needs a look") < overview.index("<svg") < overview.index("Every student")
    assert overview.count('stroke-dasharray="5 3"') == 3      # one dashed line per threshold
    assert "&#8805;0.95: 25" in overview and "data_loader" in overview


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="headless Chromium is not installed")
def test_overview_renders_in_headless_chromium(tmp_path):
    files = moodle_class(tmp_path)
    folder = tmp_path / "marked"
    main(["marks", str(files["subs"]), "--leaderboard", str(files["board"]), "--thresholds",
          str(files["thresholds"]), "--format", "html", "--out", str(folder)])
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "overview.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp}/profile", f"--screenshot={shot}", "--window-size=1280,1400",
                        (folder / "marks.html").as_uri()], check=False, capture_output=True, timeout=90)
        assert shot.exists() and shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


def test_two_notebooks_from_one_student_wait_for_a_choice(tmp_path, capsys):
    files = moodle_class(tmp_path)
    with zipfile.ZipFile(files["subs"], "a") as archive:
        archive.writestr("Lee, Ann_101_assignsubmission_file_/Dogs_Versus_Cats_old.ipynb",
                         nbformat.writes(notebook("old")))
    assert run_marks(files, None, "--format", "json") == 1
    ann = [s for s in json.loads(capsys.readouterr().out)["students"] if s["participant"] == "101"]
    assert len(ann) == 2 and all(s["mark_status"] == "pending" for s in ann)
    assert all(any("handed in 2 notebooks" in f for f in s["flags"]) for s in ann)
    assert run_marks(files, None, "--confirm", "101=Dogs Versus Cats") == 2
    assert "confirm the one that counts by its file name" in capsys.readouterr().err
    out = tmp_path / "marked"
    run_marks(files, out, "--format", "json", "--confirm", "Dogs_Versus_Cats.ipynb=Dogs Versus Cats")
    ann = {s["filename"]: s for s in json.loads((out / "marks.json").read_text())["students"] if s["participant"] == "101"}
    assert ann["Dogs_Versus_Cats.ipynb"]["grade"] == 25 and ann["Dogs_Versus_Cats.ipynb"]["flags"] == []
    assert ann["Dogs_Versus_Cats_old.ipynb"]["mark_status"] == "none"
    assert ann["Dogs_Versus_Cats_old.ipynb"]["notes"] == ["not marked: Dogs_Versus_Cats.ipynb counts"]
    rows = {r[0]: r for r in read_back(out / "Grades-DL-Coursework_marked.csv")[1:]}
    assert rows["Participant 101"][4] == "25" and "Dogs_Versus_Cats.ipynb:" in rows["Participant 101"][9]
