"""Which configuration ran, so the notebook keeps only the prose written for it.

A chapter's explanation is its own markdown. Where it differs by configuration (a pretrained or a random
backbone, a hyperparameter searched or not), the chapter holds one markdown cell per case, each tagged with
the condition it is written for:

    # %% [markdown] tags=["if:pretrained"]
    # model2 starts from ImageNet weights ...
    # %% [markdown] tags=["if:not-pretrained"]
    # No ImageNet weights could be had here, so ...

The chapter that decides a condition records it with ``note(run, pretrained=True)``; build.py reads every
chapter's record after the run (``read``) and keeps a tagged cell only where each of its conditions holds
(``keep_cells``). A condition that no chapter recorded is an error naming the cell, never a silent drop.
Each chapter writes its own file, so chapters that run side by side never write the same one.
"""
from __future__ import annotations

import json
from pathlib import Path

CONDITION_PREFIX = "if:"
NEGATION = "not-"


def note(run, **conditions: bool) -> None:
    """Record conditions this chapter decided, e.g. ``note(ctx.run, pretrained=weights["pretrained"])``."""
    if run.chapter is None:
        raise ValueError("configuration.note needs the chapter's RunDir (RunDir(root, chapter=...))")
    for name, value in conditions.items():
        if not isinstance(value, bool):
            raise TypeError(f"configuration condition {name}={value!r} must be True or False")
    name = f"configuration/{run.chapter}.json"
    recorded = run.load_json(name) if run.exists(name) else {}
    run.save_json(name, {**recorded, **conditions})


def read(run_dir) -> dict[str, bool]:
    """Every condition the run's chapters recorded (a name recorded twice must agree)."""
    merged: dict[str, bool] = {}
    for path in sorted(Path(run_dir, "configuration").glob("*.json")):
        for name, value in json.loads(path.read_text()).items():
            if merged.get(name, value) != value:
                raise ValueError(f"{path}: condition {name!r} is {value}, another chapter recorded {merged[name]}")
            merged[name] = value
    return merged


def conditions_of(cell) -> list[tuple[str, bool]]:
    """The (name, wanted value) pairs of a cell's ``if:`` tags."""
    pairs = []
    for tag in cell.get("metadata", {}).get("tags", []):
        if tag.startswith(CONDITION_PREFIX):
            name = tag[len(CONDITION_PREFIX):]
            pairs.append((name[len(NEGATION):], False) if name.startswith(NEGATION) else (name, True))
    return pairs


def applies(cell, configuration: dict[str, bool], where: str = "a cell") -> bool:
    """Whether every condition of ``cell`` holds in ``configuration``."""
    wanted = conditions_of(cell)
    unknown = sorted({name for name, _ in wanted} - set(configuration))
    if unknown:
        raise KeyError(f"{where} is tagged for condition(s) {', '.join(unknown)} that no chapter recorded "
                       f"(recorded: {', '.join(sorted(configuration)) or 'none'}). Record it with "
                       "labkit.configuration.note(ctx.run, NAME=...) in the chapter that decides it, or fix the tag.")
    return all(configuration[name] == value for name, value in wanted)


def keep_cells(cells, configuration: dict[str, bool], where: str = "") -> list:
    """The cells written for this configuration, in order; untagged cells are always kept."""
    def named(cell) -> str:
        first_line = "".join(cell.get("source", "")).strip().splitlines()[:1]
        return f"{where} the cell starting {first_line[0][:60]!r}".strip() if first_line else f"{where} an empty cell"

    return [cell for cell in cells if applies(cell, configuration, named(cell))]
