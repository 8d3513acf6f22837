"""The marking harness: reads handed-in notebooks as data (never runs them) and reports, per rubric
criterion, pass / fail / warn with evidence. Imports neither torch nor labkit: only the stdlib and nbformat.

    python -m grading check PATH... [--team NAME] [--format text|json|csv|html] [--out FILE]
    python -m grading match --leaderboard FILE SUBMISSIONS...
    python -m grading submission FILE --example example.csv
    python -m grading marks PATH --leaderboard CSV --thresholds CSV [--worksheet CSV] [--out DIR]
    python -m grading similar PATH [--template NB ...]
"""
from .handin.check import CRITERIA, check_paths, exit_code, grade_notebook
from .handin.reader import LoadedNotebook, load_notebooks, parse_notebook
from .handin.results import NotebookReport, Verdict
from .handin.rubric import Criterion, load_rubric

__all__ = [
           "CRITERIA",
           "Criterion",
           "LoadedNotebook",
           "NotebookReport",
           "Verdict",
           "check_paths",
           "exit_code",
           "grade_notebook",
           "load_notebooks",
           "load_rubric",
           "parse_notebook",
]
