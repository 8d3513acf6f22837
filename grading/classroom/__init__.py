"""Marking a class: hand-ins matched to Kaggle teams and the leaderboard, marks and Moodle's worksheet and
feedback files, and notebooks that share unusual code. Stands on grading.handin, one notebook at a time."""
