"""Reading one hand-in as data: its notebook (cells, code flow, sections, evidence) checked against the
rubric, and its submission.csv. Never runs a notebook; stands on nothing in grading.classroom."""
