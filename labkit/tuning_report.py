"""What a Ray Tune search looks like in the report: its search space as a table, its trials as figures,
and its outcome in a few generated sentences (chapter 4). ``labkit.tune`` runs the search and does not
import this module, so Ray's workers never pay for importing matplotlib.

    describe_space(space)     one row per hyperparameter: distribution and range or choices
    trials_table(result)      the trials as the notebook shows them: rounded, percentages, narrow columns
    describe_result(result, majority_rate=..., n_val=...)
                              a few sentences quoting the search's numbers, measured against always
                              predicting the largest class and against the noise of the validation split
    trials_figure(result)     validation accuracy of each trial over epochs, ASHA's stops marked
    score_figure(result)      best accuracy of each trial against each hyperparameter
    why_not_retrained(result, n_val)
                              why chapter 4 trains no full-budget run of the search's best (None: it does)
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
from ray.tune.search.sample import Categorical, Float, Integer

from labkit.profiles import asha_grace_period
from labkit.recipes import is_log_scale
from labkit.results import BASELINE_CONFIRMED
from labkit.tune import accuracy_noise

# one scatter panel per hyperparameter says something only with enough points: fewer trials, no scatter
MIN_TRIALS_FOR_SCATTER = 8


def format_value(value) -> str:
    """A hyperparameter value as the tables write it: 3 significant digits, lists as "16-32-64"."""
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def describe_space(space: dict) -> pd.DataFrame:
    """One row per hyperparameter: its name, how it is sampled and over which range or choices."""
    rows = []
    for name, domain in space.items():
        if isinstance(domain, Categorical):
            dist, values = "choice", ", ".join(format_value(c) for c in domain.categories)
        elif isinstance(domain, (Float, Integer)):
            kind = "integer " if isinstance(domain, Integer) else ""
            dist = kind + ("log-uniform" if is_log_scale(domain) else "uniform")
            values = f"{format_value(domain.lower)} to {format_value(domain.upper)}"
        elif isinstance(domain, dict) and "grid_search" in domain:
            dist, values = "grid", ", ".join(format_value(v) for v in domain["grid_search"])
        else:
            dist, values = "fixed", format_value(domain)
        rows.append({"hyperparameter": name, "distribution": dist, "range / choices": values})
    return pd.DataFrame(rows)


def trials_table(result) -> pd.DataFrame:
    """One row per trial, best first: its settings (3 significant digits), best validation accuracy and loss,
    epochs run (ASHA's stops show as fewer epochs) and seconds, rounded so that the table fits a page."""
    t = result.table
    rows = []
    for _, row in t.iterrows():
        failed = row["status"] == "failed"
        shown = {"trial": int(row["trial"])}
        shown.update({name: format_value(row[name]) for name in result.params if name in t.columns})
        shown["val. acc."] = "failed" if failed else f"{100 * row['best_val_acc']:.1f}%"
        shown["val. loss"] = "" if failed else f"{row['best_val_loss']:.3f}"
        shown["epochs"] = f"{int(row['epochs_run'])} of {result.max_epochs}"
        shown["seconds"] = "" if pd.isna(row["seconds"]) else f"{row['seconds']:.0f}"
        rows.append(shown)
    return pd.DataFrame(rows).set_index("trial")


def describe_result(result, kind: str | None = None, *, majority_rate: float | None = None,
                    majority_class: str = "the largest class", n_val: int | None = None) -> str:
    """A few sentences (markdown) about this search, quoting its numbers.

    ``majority_rate``: validation accuracy of always predicting ``majority_class``; a trial below it learned
    nothing useful. ``n_val``: validation patches; a spread of trials within two patches is noise.
    """
    kind = kind or result.kind
    t = result.table
    stopped = int((t["stopped_early"] == "yes").sum())
    settings = ", ".join(f"{k} = {'all' if k == 'unfrozen_stages' and v == -1 else format_value(v)}"
                         for k, v in result.best_config.items())
    epochs = f"{result.max_epochs} epoch" + ("s" if result.max_epochs != 1 else "")
    grace = asha_grace_period(result.max_epochs)
    if result.max_epochs <= 1:
        asha = "each trial ran a single epoch, so ASHA had no earlier point at which to stop one"
    elif grace >= result.max_epochs:
        asha = (f"ASHA judges a trial only after {grace} epochs, the trials' whole length, so it stopped none "
                "and every trial ran to the end")
    else:
        asha = f"ASHA stopped {stopped} of them before {epochs}"
    # (the run time is describe_cost's to say; that a best-of-N score is optimistic, the chapter says once)
    text = (f"The {kind} search ran {len(t)} trials; {asha}. "
            f"The best, trial {result.best_trial}, reached "
            f"**{100 * result.best_score:.1f}% validation accuracy** (at its lowest validation loss) with "
            f"{settings}.")
    if result.winner_is_baseline:
        text += (" The winner is the baseline's own settings (trial 0): no sampled setting beat them, so the "
                 "search confirms the baseline rather than improving on it.")
    elif result.baseline_trial is not None:
        base = t.loc[t["trial"] == result.baseline_trial, "best_val_acc"]
        if len(base) and base.notna().all():
            text += (f" {kind}'s baseline settings (trial {result.baseline_trial}) reached "
                     f"{100 * float(base.iloc[0]):.1f}% in the same trial budget.")
    scores = t["best_val_acc"].dropna()
    if majority_rate is not None and result.best_score <= majority_rate:
        text += (f" {kind}'s best is no better than always predicting '{majority_class}' ({100 * majority_rate:.1f}% "
                 f"of the validation patches): within this budget no {kind} trial beat that trivial answer, so the "
                 "ranking of its settings says little.")
    elif len(scores) > 1:
        worst, best = float(scores.min()), float(scores.max())
        noise = 2 / n_val if n_val else 0.0   # two validation patches
        below = int((scores <= majority_rate).sum()) if majority_rate is not None else 0
        if below:
            text += (f" {below} of the {len(scores)} trials scored no better than always predicting "
                     f"'{majority_class}' ({100 * majority_rate:.1f}%; the weakest {100 * worst:.1f}%), while the "
                     f"best beat it by {100 * (best - majority_rate):.1f} points: within this budget the settings "
                     "decide whether a model gets past the trivial answer at all.")
        elif best - worst <= noise:
            text += (f" All trials scored between {100 * worst:.1f}% and {100 * best:.1f}%, within two validation "
                     "patches of each other: over this range the settings make no measurable difference.")
        else:
            text += (f" The trials range from {100 * worst:.1f}% to {100 * best:.1f}%"
                     + (f" (always predicting '{majority_class}' gives {100 * majority_rate:.1f}%)"
                        if majority_rate is not None else "")
                     + f": {100 * (best - worst):.1f} points between the weakest and the best settings.")
    spread = result.spread
    if spread["completed"] > 2:
        text += (f" The median of the {spread['completed']} trials that ran all {epochs} reached "
                 f"{100 * spread['median']:.1f}%.")
    if result.failed:
        text += (f" {len(result.failed)} trial(s) failed (first: {result.failed[0]['error']}); "
                 "the others were not affected.")
    return text


def why_not_retrained(result, n_val: int) -> str | None:
    """Why chapter 4 trains no second, full-budget run after this search (a clause for
    ``results.choose_final``), or None when it does: ``SearchResult.beats_baseline`` decides."""
    if result.beats_baseline(n_val):
        return None
    if result.winner_is_baseline:
        return BASELINE_CONFIRMED
    lead, noise = result.best_score - result.baseline_score, accuracy_noise(result.baseline_score, n_val)
    best = f"the search's best, trial {result.best_trial} ({100 * result.best_score:.1f}%),"
    baseline = f"the baseline's settings (trial {result.baseline_trial}, {100 * result.baseline_score:.1f}%)"
    if round(100 * lead, 1) <= 0:  # a tie broken by validation loss, or a baseline trial ASHA stopped early
        return f"{best} scored no higher than {baseline}, which is no evidence that its settings are better"
    return (f"{best} led {baseline} by only {100 * lead:.1f} points, no more than one standard error of an "
            f"accuracy on {n_val} validation patches ({100 * noise:.1f} points), which is no evidence that its "
            "settings are better")


def trials_figure(result):
    """Validation accuracy per trial over epochs; a trial ASHA stopped ends early, marked with an x."""
    fig, ax = plt.subplots(figsize=(7, 4))
    stopped = set(result.table.loc[result.table["stopped_early"] == "yes", "trial"])
    for trial, curve in result.curves.groupby("trial"):
        best = trial == result.best_trial
        line, = ax.plot(curve["epoch"], 100 * curve["val_acc"], marker="o", markersize=4,
                        linewidth=2.8 if best else 1.4, alpha=1.0 if best else 0.75,
                        label=f"trial {trial}" + (" (best)" if best else "")
                        + (", stopped by ASHA (x)" if trial in stopped else ""))
        if trial in stopped:
            ax.plot(curve["epoch"].iloc[-1], 100 * curve["val_acc"].iloc[-1], marker="x", markersize=11,
                    markeredgewidth=2.5, color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_xticks(range(1, max(result.max_epochs, 1) + 1))
    ax.set_title(f"{result.kind}: validation accuracy of each Ray Tune trial")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig


def score_figure(result):
    """Best validation accuracy of each trial against each searched hyperparameter (log x for rates)."""
    params = [p for p in result.params if p in result.table.columns]
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.9 * rows), sharey=True, squeeze=False)
    ok = result.table[result.table["status"] != "failed"]
    colours = ["tab:red" if s == "yes" else "tab:blue" for s in ok["stopped_early"]]
    is_best = ok["trial"] == result.best_trial
    for ax, name in zip(axes.flat, params):
        x = ok[name]
        if pd.api.types.is_float_dtype(x):  # sampled from a range; integer choices get columns below
            positions = x
            if name in result.log_params:
                ax.set_xscale("log")
                # ticks at 1 and 3 times powers of ten, written plainly (0.003, not 3x10^-3)
                ax.xaxis.set_major_locator(plt.LogLocator(base=10, subs=(1.0, 3.0)))
                ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(plt.NullFormatter())
                # over less than a decade matplotlib falls back to linear ticks, which collide unrotated
                ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        else:  # categories (optimizer, channels, batch size): one column each
            categories = sorted(x.unique(), key=lambda v: (isinstance(v, str), v))
            positions = x.map({c: i for i, c in enumerate(categories)})
            ax.set_xticks(range(len(categories)), [format_value(c) for c in categories], fontsize=8)
            ax.set_xlim(-0.5, len(categories) - 0.5)
        ax.scatter(positions, 100 * ok["best_val_acc"], c=colours, s=40, edgecolor="black", linewidth=0.5)
        ax.scatter(positions[is_best], 100 * ok.loc[is_best, "best_val_acc"], marker="*", s=250, c="gold",
                   edgecolor="black", zorder=3)
        ax.margins(y=0.15)  # room for the star at the top
        ax.set_xlabel(name + (" (log scale)" if name in result.log_params else ""))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(params):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("val. accuracy, kept epoch (%)")
    fig.suptitle(f"{result.kind}: validation accuracy per trial (kept epoch) against each hyperparameter\n"
                 "(star = best trial, red = stopped early by ASHA, blue = ran all epochs)", fontsize=10)
    fig.tight_layout()
    return fig


def describe_cost(result) -> str:
    """What the search cost on this machine, from ``SearchResult.timings``: its seconds and seconds per trial epoch.

    Wall seconds include waiting for the CPU that concurrent trials share; the epochs are those the
    trials actually ran (ASHA stopped some early)."""
    timings = result.timings
    if timings is None or not len(timings):
        return f"The {result.kind} search took {result.seconds:.0f} s."
    ran = result.table[result.table["status"] != "failed"]
    epochs = int(ran["epochs_run"].sum())
    train = float(timings["train_seconds"].sum())
    per_epoch = f", {train / epochs:.1f} s per trial epoch" if epochs else ""
    return f"The {result.kind} search took {result.seconds:.0f} s for {epochs} trial epochs{per_epoch}."
