"""The record of conclusions: every decision of the report, made once, where every later sentence reads it.

Each decision is one JSON file under ``conclusions/`` in the run folder, written by the chapter that makes
it (chapters that run side by side never write the same file); ``read(run)`` gives them all:

    data, class_mix chapter 1: the data's size and class mix (``narrative.class_mix_record``)
    training_<model> chapters 2 and 3: the baseline's run (``narrative.training_record``)
    search_<model>  chapter 4: the search's outcome and whether it earns a full-budget run
                    (``tuning_report.search_record``)
    final_<model>   chapter 4: the tuned or the baseline weights (``results.choose_final``)
    fix_<model>     chapter 5: the fix for the worst confusion, adopted or not, with its paired statistics
    captum          chapter 6: each method's share of attribution inside the central disc, and its checks
    tta_<model>     chapter 7: test-time augmentation used or not, from a paired test on the validation split
    submission      chapter 7: the submitted model and why, from a paired test of model1 against model2
    comparison      chapter 7: the comparison table's numbers, each model as finally kept

Comparatives come from paired statistics on the same validation patches: ``paired_test`` is McNemar's exact
test (``scipy.stats.binomtest`` on the patches that exactly one of the two gets right). "Better" is said only
where it rejects "no difference" at ``ALPHA``; otherwise the two cannot be told apart, and the sentence says
how many patches differ.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ALPHA = 0.05       # McNemar's test: a difference counts when p < ALPHA
FOLDER = "conclusions"
MODELS = ("model1", "model2")


@dataclass(frozen=True)
class PairedTest:
    """Two predictors scored on the same patches: who gets which right, and McNemar's exact test."""
    name_a: str
    name_b: str
    patches: int
    correct_a: int
    correct_b: int
    only_a: int        # patches a gets right and b wrong
    only_b: int        # ... and the other way round
    p_value: float
    alpha: float = ALPHA

    @property
    def accuracy_a(self) -> float:
        return self.correct_a / self.patches

    @property
    def accuracy_b(self) -> float:
        return self.correct_b / self.patches

    @property
    def differing(self) -> int:
        return self.only_a + self.only_b

    @property
    def winner(self) -> str | None:
        """The name of the more accurate of the two where the test tells them apart, else None."""
        if self.p_value >= self.alpha or self.only_a == self.only_b:
            return None
        return self.name_a if self.only_a > self.only_b else self.name_b

    def as_dict(self) -> dict:
        return {**asdict(self), "accuracy_a": self.accuracy_a, "accuracy_b": self.accuracy_b,
                "differing": self.differing, "winner": self.winner}

    def sentence(self) -> str:
        """The verdict in one sentence, every number from this test."""
        a, b = self.name_a, self.name_b
        p = format_p(self.p_value)
        if self.differing == 0:
            return (f"{a} and {b} get the same {self.correct_a} of the {self.patches} validation patches right: "
                    "they cannot be told apart here.")
        counts = (f"{self.only_a} patches only {a} gets right and {self.only_b} only {b} "
                  f"(McNemar's exact test, p {p})")
        if self.winner is None:
            return f"{a} and {b} cannot be told apart on the validation split: {counts}."
        loser = b if self.winner == a else a
        return f"{self.winner} is more accurate than {loser} on the validation split: {counts}."


def format_p(p: float) -> str:
    """'= 0.42', '= 0.031' or '< 0.001': two significant digits, as a p-value is read."""
    return "< 0.001" if p < 0.001 else f"= {p:.2g}"


def paired_test(labels, preds_a, preds_b, name_a: str, name_b: str) -> PairedTest:
    """McNemar's exact test of two predictors on the same patches (a two-sided binomial test on the
    discordant pairs, scipy's ``binomtest``)."""
    from scipy.stats import binomtest

    y, a, b = (np.asarray(x, dtype=np.int64).ravel() for x in (labels, preds_a, preds_b))
    if not len(y) == len(a) == len(b):
        raise ValueError(f"paired_test needs predictions of the same patches: {len(y)} labels, {len(a)} "
                         f"predictions of {name_a}, {len(b)} of {name_b}")
    if len(y) == 0:
        raise ValueError(f"paired_test of {name_a} and {name_b} got no patches")
    right_a, right_b = a == y, b == y
    only_a, only_b = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return PairedTest(name_a, name_b, len(y), int(right_a.sum()), int(right_b.sum()), only_a, only_b, p)


def decide(run, decision: str, **facts) -> dict:
    """Write one decision (``final_model1``, ``submission``, ...) into the record and return it."""
    run.save_json(f"{FOLDER}/{decision}.json", facts)
    return facts


def read(run) -> dict[str, dict]:
    """Every decision recorded so far, by name."""
    folder = Path(run.path(FOLDER))
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def get(run, decision: str) -> dict:
    """One decision; a clear error where the chapter that makes it has not run."""
    name = f"{FOLDER}/{decision}.json"
    if not run.exists(name):
        maker = {"data": "chapter 1", "class": "chapter 1", "training": "chapter 2 or 3", "search": "chapter 4",
                 "final": "chapter 4", "fix": "chapter 5", "captum": "chapter 6", "tta": "chapter 7",
                 "submission": "chapter 7", "comparison": "chapter 7"}[decision.split("_")[0]]
        raise FileNotFoundError(f"{run.path(name)} is missing: {maker} records it; run that chapter first.")
    return run.load_json(name)


def fix_adopted(run, name: str) -> bool:
    """Whether chapter 5 adopted ``name``'s fix (False where no fix was judged)."""
    return run.exists(f"{FOLDER}/fix_{name}.json") and bool(get(run, f"fix_{name}")["adopted"])


def kept_stage(run, name: str) -> str:
    """The checkpoint that is ``name`` from chapter 5 on: "fixed" where its fix was adopted, else "final"."""
    return "fixed" if fix_adopted(run, name) else "final"


def describe_tta(record: dict) -> str:
    """One sentence: what TTA changed for each model where it was tried, and where it is used."""
    tried = [name for name in MODELS if record.get(f"tta_{name}", {}).get("tried")]
    if not tried:
        return ""
    def gained_lost(test: dict) -> str:
        gained = test["only_a"]
        return (f"{gained} patch{'' if gained == 1 else 'es'} gained and {test['only_b']} lost "
                f"(p {format_p(test['p_value'])})")

    parts = [f"{name} {gained_lost(record[f'tta_{name}'])}" for name in tried]
    used = [name for name in tried if record[f"tta_{name}"]["used"]]
    where = ("it is not used" if not used else "it is used for both models" if len(used) == len(tried) > 1 else
             f"it is used for {used[0]} only" if len(tried) > 1 else "it is used")
    return f"Against one pass, TTA gives {'; '.join(parts)}: {where}."
