"""One place for each fact (issue 10): the rubric ids and the evidence MIME type inside grading/ come
from grading/rubric.json and must equal labkit's copy; one team-name rule for build.py and the grader."""
from __future__ import annotations

import json

import pytest

from grading.handin import check, rubric
from grading.handin.names import TEAM_NAME, suggest_team_name


def test_grading_and_labkit_agree_on_criteria_and_mime():
    evidence = pytest.importorskip("labkit.evidence")
    assert rubric.CRITERIA == tuple(evidence.CRITERIA)
    assert rubric.EVIDENCE_MIME == evidence.EVIDENCE_MIME


def test_rubric_json_is_the_only_list_of_ids_in_grading():
    raw = json.loads(rubric.DEFAULT_RUBRIC.read_text(encoding="utf-8"))
    assert check.CRITERIA is rubric.CRITERIA
    assert [c["id"] for c in raw["criteria"]] == list(rubric.CRITERIA)
    assert "grading/handin/check.py" in raw["about"] and "detect.py" not in raw["about"]
    # every id has a detector
    assert set(check.DETECTORS) | set(check.STRUCTURAL) >= set(rubric.CRITERIA)


@pytest.mark.parametrize("kaggle, expected", [
    ("Dogs Versus Cats", "Dogs_Versus_Cats"),
    ("  Dogs   Versus\tCats  ", "Dogs_Versus_Cats"),
    ("Dogs_Versus_Cats", "Dogs_Versus_Cats"),
    ("Team Ñandú & Co.", "Team_and_Co"),
    ("__hidden--", "hidden"),
    ("a _ b", "a_b"),
    ("!!!", "Team_Name"),
    ("x" * 100, "x" * 80),
])
def test_suggest_team_name(kaggle, expected):
    suggested = suggest_team_name(kaggle)
    assert suggested == expected
    assert TEAM_NAME.match(suggested)


@pytest.mark.parametrize("name, ok", [("Dogs_Versus_Cats", True), ("team-7", True), ("Dogs Versus Cats", False),
                                      ("_team", False), ("-team", False), ("x" * 81, False), ("", False), ("team\n", False)])
def test_team_name_rule(name, ok):
    assert bool(TEAM_NAME.match(name)) is ok
