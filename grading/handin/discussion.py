"""Where a notebook's markdown compares the two models, read sentence by sentence.

A comparison compares: one sentence names a model, says which did better or worse ("outperformed",
"converges much lower than") and on something measured (accuracy, loss, curves, speed). A plan ("We are
going with 2 models") or an apology ("Because of the hardware limitation, run for only three samples")
names the models without measuring them. The narrative and the discussion criteria both ask which cells
these are (the narrative leaves them to the discussion), so the rule has its own module below the
detectors; it reads markdown cells and whether a result came before them, not the data flow.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import sections
from .cells import Cell


def any_word(*words: str) -> re.Pattern:
    """Any of these words (regex fragments), as whole words, ignoring case."""
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)


# Words of a comparison; a comparing sentence also names a model and something MEASURED.
COMPARES = any_word("better", "worse", r"outperform\w*", "higher", "lower", "than", "compared?", "comparison",
                    "whereas", "while", r"advantage\w*", "trade-?offs?", "faster", "slower",
                    r"superior", r"inferior")
# Something measured: a comparison of the models must be about one of these, not about the plan or the
# hardware. "Outperformed" and "performance" say it of the results as a whole.
MEASURED = re.compile(r"\b(?:acc\w*|loss\w*|curves?|confus\w*|f1|precision|recall|speed|faster|slower|"
                      r"training time|attributions?|saliency|parameters?|errors?|misclassif\w*|"
                      r"outperform\w*|performance|performs?|scores?)\b|"
                      r"\d+(?:\.\d+)?\s*(?:%|min\w*\b|s\b|sec\w*|hours?\b)|\b0\.\d+\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\d\"'(*])|;\s+|\n\s*\n|\n\s*[-*+]\s+|\n\s*\d+\.\s+")
# An apology or a plan talks about the machine or the run, not the results: there, only a named metric
# makes a comparison (a learning rate or a batch size quoted beside it is not one).
_CIRCUMSTANCES = re.compile(r"\b(?:hardware|gpus?|cpus?|memory|ram|session|sorry|could ?n[o']t|unable|"
                            r"limitation\w*|resources?)\b", re.IGNORECASE)
_METRIC = re.compile(r"\b(?:acc\w*|loss\w*|f1|precision|recall|confus\w*|misclassif\w*|scores?)\b", re.IGNORECASE)
_BOTH = re.compile(r"\b(?:both|two|2) models\b", re.IGNORECASE)


def prose(cell: Cell) -> str:
    """Markdown without headings, code blocks and HTML tags."""
    text = re.sub(r"```.*?```", " ", cell.source, flags=re.DOTALL)
    text = re.sub(r"<[^>]+>", " ", text)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def sentences(text: str) -> list[str]:
    return [" ".join(s.split()) for s in _SENTENCE_END.split(text) if s and s.strip()]


def models_named(text: str) -> set[str]:
    """The models a piece of prose names ("model 1", "our own CNN", "ResNet50", "the pretrained model")."""
    found = set()
    if sections.HEADING_MODEL1.search(text):
        found.add("model1")
    if sections.HEADING_MODEL2.search(text):
        found.add("model2")
    if _BOTH.search(text):
        found |= {"model1", "model2"}
    return found


def comparing_sentences(text: str) -> list[tuple[str, set[str]]]:
    """(sentence, models it names) for each sentence that compares on something measured ("converges much
    lower than", "outperformed"); what it compares is told by the models it, or its cell, names."""
    found = []
    for sentence in sentences(text):
        if not (COMPARES.search(sentence) and MEASURED.search(sentence)):
            continue
        if _CIRCUMSTANCES.search(sentence) and not _METRIC.search(sentence):
            continue
        found.append((sentence, models_named(sentence)))
    return found


@dataclass
class Comparison:
    """A markdown cell that compares the models, and the sentence that does."""
    cell: Cell
    sentence: str
    both: bool      # the cell names both models: a comparison of the two, not a remark about one


def comparisons(cells: list[Cell]) -> list[Comparison]:
    """Markdown cells after the first result that compare the two models (``both``), or say in passing
    how one of them compares (a comparing sentence that names it), in order."""
    found, seen_result = [], False
    for cell in cells:
        seen_result = seen_result or cell.shows_result
        if cell.cell_type != "markdown" or not seen_result:
            continue
        text = prose(cell)
        compared = comparing_sentences(text)
        both = bool(compared) and models_named(text) == {"model1", "model2"}
        if not (both or any(named for _, named in compared)):
            continue
        # quote the sentence that names most of the models
        sentence = max(compared, key=lambda item: len(item[1]))[0]
        found.append(Comparison(cell, sentence, both))
    return found


def discussion_cells(cells: list[Cell]) -> list[Cell]:
    """Markdown cells after the first result that name both models and compare them on something measured."""
    return [c.cell for c in comparisons(cells) if c.both]
