"""Reading the run folder back: the final models, and the comparison of model1 with model2.

    load_final(run, name)             the final model1 or model2, weights restored, in eval mode
    choose_final(run, name, tuned, config, test=None, kept_because=None, **meta)
                                      keep the baseline, or the retrained model where a paired test finds
                                      it better; record the decision and say which (a retrained run's
                                      history is kept as NAME/tuned_history.json either way)
    tuned_history(run, name)          the History of chapter 4's retraining with the tuned settings
    fix_summary(fix)                  a JSON-able summary of diagnostics.fix_experiment's result
    final_val_acc(run, name)          validation accuracy of the final model's kept checkpoint
    save_fix(run, name, model, verdict)
                                      the fixed weights, and chapter 5's verdict in the record of conclusions
    kept_model(run, name)             the model as finally kept: the fixed one where its fix was adopted
    comparison_table(run, predictions)
                                      one row per model as finally kept: size, start, accuracy, macro F1

The decisions themselves (final weights, fixes, TTA, the submission) live in ``labkit.conclusions``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from labkit import N_CLASSES, conclusions
from labkit.diagnostics import describe_pair
from labkit.models import count_layers
from labkit.narrative import weights_start
from labkit.recipes import KINDS, recipe
from labkit.train import History, kept_val_acc


def load_final(run, name: str, stage: str = "final"):
    """Rebuild ``name`` ("model1"/"model2") from its checkpoint; no ImageNet download is needed for that."""
    state, meta = run.load_checkpoint(f"{name}/{stage}.pt")
    model = recipe(name).from_checkpoint(meta)  # the checkpoint holds every weight: the architecture is enough
    model.load_state_dict(state)
    return model.eval()


# why chapter 4 trains no second run when the search's winner is the baseline's own settings
BASELINE_CONFIRMED = "the search's best settings are the baseline's own"


def choose_final(run, name: str, tuned, config: dict, test: conclusions.PairedTest | None = None,
                 kept_because: str | None = None, **meta) -> str | None:
    """Save ``name``'s final model and record the decision (``conclusions``, ``final_<name>``).

    ``tuned`` None: the search gave no reason to retrain (``kept_because`` says why, as
    ``tuning_report.why_not_retrained`` words it), so the baseline, which chapter 2 or 3 already trained with
    the full budget, is final; chapter 4's search statement has said so, and this returns None.

    ``tuned`` a tune.FinalRun: ``test`` is its paired test against the baseline on the validation patches
    (``tuning_report.retrained_against_baseline``, "retrained" against "baseline"). The retrained model
    replaces the baseline only where the test finds it better; short trials on a subset can rank settings
    that learn fast above settings that end up better. Returns the sentence that says so.
    """
    baseline_acc = kept_val_acc(History.from_dict(run.load_json(f"{name}/baseline_history.json")))
    if tuned is None:
        _keep_baseline(run, name)
        run.path(f"{name}/tuned_history.json").unlink(missing_ok=True)  # a rerun's stale tuned run is not this one
        conclusions.decide(run, f"final_{name}", weights="baseline", retrained=False, val_acc=baseline_acc,
                           baseline_val_acc=baseline_acc, because=kept_because or BASELINE_CONFIRMED)
        return None
    if test is None or (test.name_a, test.name_b) != ("retrained", "baseline"):
        raise ValueError(f"choose_final({name!r}) needs the paired test of the retrained model against the "
                         "baseline (tuning_report.retrained_against_baseline)")
    tuned_acc = tuned.fit.best_val_acc
    adopt = test.winner == "retrained"
    run.save_json(f"{name}/tuned_history.json", tuned.fit.history.to_dict())  # chapter 5 shows its curves
    conclusions.decide(run, f"final_{name}", weights="tuned" if adopt else "baseline", retrained=True,
                       val_acc=tuned_acc if adopt else baseline_acc, tuned_val_acc=tuned_acc,
                       baseline_val_acc=baseline_acc, test=test.as_dict())
    # the sentence starts with the model's name: two retrainings never read the same
    counts = (f"**{name}** retrained reaches {tuned_acc:.1%} against its baseline's {baseline_acc:.1%}; they "
              f"differ on {test.differing} of {test.patches} patches, {test.only_a} to {test.only_b} (McNemar's p "
              f"{conclusions.format_p(test.p_value)})")
    if adopt:
        if getattr(tuned.fit, "best_epoch", None) is not None:
            meta.setdefault("best_epoch", tuned.fit.best_epoch)
        run.save_checkpoint(f"{name}/final.pt", tuned.model, config=config, **meta)
        run.save_json(f"{name}/final_history.json", tuned.fit.history.to_dict())
        return counts + f": the retrained {name} is final."
    _keep_baseline(run, name)
    if test.winner == "baseline":
        return (counts + ": the baseline stays final. The short trials on a subset favoured settings that learn "
                "fast, not those that end best.")
    return counts + ": they cannot be told apart, so the baseline stays final."


def _keep_baseline(run, name: str) -> None:
    for suffix in (".pt", "_history.json"):
        run.save_bytes(f"{name}/final{suffix}", run.load_bytes(f"{name}/baseline{suffix}"))


def final_val_acc(run, name: str) -> float:
    """Validation accuracy of ``name``'s final model: its kept (lowest validation loss) epoch. The one
    accuracy that the figures, the text, the comparison and the choice of the submission model quote."""
    return kept_val_acc(run.load_json(f"{name}/final_history.json"))


def tuned_history(run, name: str) -> History:
    """The history of chapter 4's retraining with the tuned settings (the final model's history when there was
    none: the search's winner was the baseline, or the run folder is older than tuned_history.json)."""
    stored = f"{name}/tuned_history.json" if run.exists(f"{name}/tuned_history.json") else f"{name}/final_history.json"
    return History.from_dict(run.load_json(stored))


def was_retrained(run, name: str) -> bool:
    """Whether chapter 4 retrained ``name`` with the tuned settings (not when the baseline won the search)."""
    return run.exists(f"{name}/tuned_history.json")


def save_fix(run, name: str, model, verdict) -> None:
    """``name``/fixed.pt (the weights after the fix, with the final checkpoint's metadata) and chapter 5's
    verdict (``diagnostics.judge_fix``: adopted or not, and why) as the record's ``fix_<name>``."""
    _, meta = run.load_checkpoint(f"{name}/final.pt")
    run.save_checkpoint(f"{name}/fixed.pt", model, **meta)
    conclusions.decide(run, f"fix_{name}", **verdict.as_dict())


def kept_model(run, name: str):
    """``name`` as finally kept: the fixed weights where chapter 5 adopted its fix, else the final ones."""
    return load_final(run, name, conclusions.kept_stage(run, name))


def fix_summary(fix) -> dict:
    accuracy = lambda p: float((np.asarray(p.labels) == np.asarray(p.preds)).mean())
    pair = [fix.pair.true_class, fix.pair.predicted_class] if fix.pair is not None else None
    return {"pair": pair, "pair_text": describe_pair(fix.pair),
            "accuracy_before": accuracy(fix.before), "accuracy_after": accuracy(fix.after),
            "settings": fix.settings}


def comparison_table(run, predictions: dict) -> pd.DataFrame:
    """One row per model as finally kept. ``predictions``: name -> (labels, predicted classes) on the
    validation split, as chapter 7 measured the kept model (with TTA where it decided to use it)."""
    from sklearn.metrics import f1_score  # here: importing sklearn costs seconds

    rows = {}
    weights = run.load_json("model2/weights.json")
    record = conclusions.read(run)
    for name in KINDS:
        model = kept_model(run, name)
        labels, preds = (np.asarray(x) for x in predictions[name])
        imagenet = recipe(name).imagenet
        final = record.get(f"final_{name}", {}).get("weights", "final")
        tta = record.get(f"tta_{name}", {}).get("used", False)
        rows[name] = {
            "architecture": weights["arch"] if imagenet else "own ConvNet",
            "weight layers": count_layers(model).weight_layers,
            "parameters": sum(p.numel() for p in model.parameters()),
            "start": weights_start(weights) if imagenet else "random",
            "weights kept": final + (" + fix" if conclusions.fix_adopted(run, name) else ""),
            "TTA": "yes" if tta else "no",
            "validation accuracy (%)": round(100 * float((labels == preds).mean()), 1),
            "macro F1 (%)": round(100 * float(f1_score(labels, preds, average="macro",
                                                       labels=list(range(N_CLASSES)), zero_division=0)), 1),
        }
    return pd.DataFrame(rows).T.rename_axis("model")
