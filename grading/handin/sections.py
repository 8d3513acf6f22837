"""Tell which model (model1 or model2) a piece of evidence belongs to.

Students define helpers once (a training loop, a plotting function) and call them once per model, so
the code of a helper says nothing about the model. Two clues do:
- the arguments a call receives (``plot_curves(history2)``, ``Saliency(resnet)``), which win; and
- the nearest preceding markdown heading that names a model ("Model 1", "Model 2 (ResNet50)").
"""
from __future__ import annotations

import re
from functools import lru_cache

from .cells import Cell

# torchvision architecture families; any of them names model2 (the pretrained one).
ARCH_NAMES = ("resnet", "resnext", "wide_resnet", "vgg", "densenet", "efficientnet", "mobilenet",
              "convnext", "regnet", "inception", "googlenet", "alexnet", "squeezenet", "shufflenet",
              "mnasnet", "vit", "swin", "maxvit")
# "vit" and "swin" are also the start of ordinary words (activity, swing): match them only as names.
_ARCH = "|".join(a for a in ARCH_NAMES if a not in ("vit", "swin")) + r"|vit(?:_|\b)|swin(?:_|\b)"

# Variable names people give per-model objects: model2, history_2, net1, cm2, preds_1 ...
_STEMS = (r"model|net|network|cnn|clf|classifier|m|hist|history|histories|res|result|results|pred|preds|"
          r"predictions|y_pred|ypred|trainer|tuner|analysis|best_model|best_config|config|cm|conf_mat|"
          r"confusion|log|logs|curves|losses|train_losses|val_losses|accs|train_accs|val_accs|outputs|"
          r"trained_model|model_ft|scores|metrics|tuning|search|trials|explainer|attr|attrs")
_ARG_MODEL1 = re.compile(rf"\b(?:{_STEMS})_?1\b|\b(?:small|simple|custom|own|baseline|scratch)_?"
                         r"(?:cnn|convnet|net|model)\w*|\bmodel_?one\b", re.IGNORECASE)
_ARG_MODEL2 = re.compile(rf"\b(?:{_STEMS})_?2\b|\b\w*(?:{_ARCH})\w*|\bpretrained_?\w*|\btransfer\w*|"
                         r"\bfine_?tuned?\w*|\bmodel_?two\b", re.IGNORECASE)

HEADING_MODEL1 = re.compile(r"\bmodel\s*[-_#]?\s*(?:1|one)\b|\bfirst model\b|\bfrom[- ]scratch\b|"
                             r"\b(?:small|simple|custom|own|baseline)\b[\w\s-]{0,20}\b(?:cnn|convnet|"
                             r"conv ?net|network|model)\b", re.IGNORECASE)
HEADING_MODEL2 = re.compile(rf"\bmodel\s*[-_#]?\s*(?:2|two)\b|\bsecond model\b|\bpre-?trained\b|"
                             rf"\btransfer learning\b|\bfine-?tun\w*|\bimagenet\b|\b(?:{_ARCH})", re.IGNORECASE)
_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$|<h([1-6])[^>]*>(.*?)</h\3>", re.MULTILINE | re.IGNORECASE)


def models_named(text: str, model1_names=(), model2_names=()) -> set[str]:
    """Which models a piece of code names in its arguments: a subset of {"model1", "model2"}.

    ``model1_names``/``model2_names`` are variables known to hold each model (from assignments).
    """
    found = set()
    if _ARG_MODEL1.search(text) or _names_pattern(frozenset(model1_names)).search(text):
        found.add("model1")
    if _ARG_MODEL2.search(text) or _names_pattern(frozenset(model2_names)).search(text):
        found.add("model2")
    return found


@lru_cache(maxsize=256)
def _names_pattern(names: frozenset) -> re.Pattern:
    if not names:
        return re.compile(r"(?!x)x")   # matches nothing
    return re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(names))) + r")\b")


def heading_model(title: str) -> str | None:
    """The model a heading is about, or None when it names neither or both ("Comparing model 1 and 2")."""
    one, two = bool(HEADING_MODEL1.search(title)), bool(HEADING_MODEL2.search(title))
    if one and two:
        # "Model 1 vs model 2" is a comparison; "Model 2: pretrained ResNet vs. model 1's head" is rare
        return None
    return "model1" if one else "model2" if two else None


def headings(cell: Cell) -> list[tuple[int, str]]:
    """(level, title) of every markdown heading in a markdown cell."""
    if cell.cell_type != "markdown":
        return []
    found = []
    for match in _MD_HEADING.finditer(cell.source):
        if match.group(1):
            found.append((len(match.group(1)), match.group(2)))
        else:
            found.append((int(match.group(3)), re.sub(r"<[^>]+>", "", match.group(4))))
    return found


def section_models(cells: list[Cell]) -> dict[int, str | None]:
    """For each cell number, the model of the section it sits in (by the heading stack above it).

    A heading about model 1 opens a model-1 section; a later heading of the same or a higher level that
    names no model closes it; sub-headings ("### Training") stay inside it.
    """
    stack: list[tuple[int, str | None]] = []   # (level, model) of the open headings
    result = {}
    for cell in cells:
        for level, title in headings(cell):
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading_model(title)))
        result[cell.number] = next((model for _, model in reversed(stack) if model), None)
    return result


def section_titles(cells: list[Cell]) -> dict[int, str]:
    """For each cell number, the title of the innermost heading above it ('' before the first)."""
    current, result = "", {}
    for cell in cells:
        found = headings(cell)
        if found:
            current = found[-1][1]
        result[cell.number] = current
    return result
