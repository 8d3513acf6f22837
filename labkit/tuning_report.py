"""What a Ray Tune search looks like in the report: its search space as a table, its trials as figures,
and its outcome in a few generated sentences (chapter 4). ``labkit.tune`` runs the search and does not
import this module, so Ray's workers never pay for importing matplotlib.

    describe_space(space)     one row per hyperparameter: distribution and range or choices
    trials_table(result)      the trials as the notebook shows them: rounded, percentages, narrow columns
    describe_result(result, majority_rate=..., n_val=...)
                              a few sentences quoting the search's numbers, measured against always
                              predicting the largest class and against the noise of the validation split
    describe_comparison(result)
                              the best trial against the baseline's trial at the same budget (McNemar)
    trials_figure(result)     validation accuracy of each trial over epochs, ASHA's stops marked
    score_figure(result)      each trial's accuracy after the epochs every trial ran, against each hyperparameter
    why_not_retrained(result) why chapter 4 trains no full-budget run of the search's best (None: it does)
    describe_retrained(run, name, final, data)
                              a retrained winner against its baseline, both fully trained (McNemar)
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from ray.tune.search.sample import Categorical, Float, Integer

from labkit.profiles import asha_grace_period
from labkit.recipes import is_log_scale
from labkit.results import BASELINE_CONFIRMED
from labkit.tune import SIGNIFICANCE, paired_test, val_correct

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
    """A few sentences (markdown) about this search, quoting its numbers. Scores are compared only between
    trials that ran all their epochs (ASHA's stops ran fewer): the same budget each.

    ``majority_rate``: validation accuracy of always predicting ``majority_class``; a trial below it learned
    nothing useful. ``n_val``: validation patches; a spread of trials within two patches is noise.
    """
    kind = kind or result.kind
    t = result.table
    stopped = int((t["stopped_early"] == "yes").sum())
    settings = ", ".join(f"{k} = {format_value(result.best_config[k])}" for k in result.params)
    epochs = f"{result.max_epochs} epoch" + ("s" if result.max_epochs != 1 else "")
    grace = asha_grace_period(result.max_epochs)
    if result.max_epochs <= 1:
        asha = "each ran a single epoch, so ASHA had no earlier point at which to stop one"
    elif grace >= result.max_epochs:
        asha = f"ASHA judges a trial only after {grace} epochs, the trials' whole length, so it stopped none"
    else:
        asha = f"ASHA stopped {stopped} of them after {grace} epochs"
    completed = t[t["status"] == "completed"]
    text = (f"The {kind} search ran {len(t)} trials of up to {epochs}; {asha}. Of the {len(completed)} that ran "
            f"every epoch, trial {result.best_trial} reached the highest validation accuracy, "
            f"**{100 * result.best_score:.1f}%** (at its lowest validation loss), with {settings}.")
    if result.winner_is_baseline:
        text += f" These are {kind}'s baseline settings: no sampled {kind} setting beat them at this budget."
    elif result.baseline_trial is not None and result.baseline_completed:
        text += (f" The baseline's settings (trial {result.baseline_trial}) reached "
                 f"{100 * result.baseline_score:.1f}% with the same epochs.")
    scores = completed["best_val_acc"].dropna()
    if majority_rate is not None and result.best_score <= majority_rate:
        text += (f" That is no better than always predicting '{majority_class}' ({100 * majority_rate:.1f}% "
                 f"of the validation patches): within this budget no {kind} trial beat that trivial answer, so the "
                 "ranking of its settings says little.")
    elif len(scores) > 1:
        worst, best = float(scores.min()), float(scores.max())
        noise = 2 / n_val if n_val else 0.0   # two validation patches
        below = int((scores <= majority_rate).sum()) if majority_rate is not None else 0
        if below:
            text += (f" {below} of these {len(scores)} trials scored no better than always predicting "
                     f"'{majority_class}' ({100 * majority_rate:.1f}%; the weakest {100 * worst:.1f}%): within this "
                     "budget the settings decide whether a model gets past the trivial answer at all.")
        elif best - worst <= noise:
            text += (f" They all scored between {100 * worst:.1f}% and {100 * best:.1f}%, within two validation "
                     "patches of each other: over this range the settings make no measurable difference.")
        else:
            text += f" These trials range from {100 * worst:.1f}% to {100 * best:.1f}%."
    if result.failed:
        text += (f" {len(result.failed)} trial(s) failed (first: {result.failed[0]['error']}); "
                 "the others were not affected.")
    return text


def describe_comparison(result) -> str:
    """The best trial against the baseline's trial, both after all their epochs on the same subset, on the same
    validation patches: how many patches each alone got right and McNemar's exact p-value; "" without one."""
    c = result.comparison
    if not c:
        return ""
    both = f"Trial {c['best_trial']} and the baseline's trial both ran {result.max_epochs} epoch" + (
        "s" if result.max_epochs != 1 else "")
    if c["only_a"] + c["only_b"] == 0:
        return both + f" and get the same {c['correct_a']} of the {c['n']} validation patches right: they cannot be told apart."
    same = (both + f"; they disagree on {c['only_a'] + c['only_b']} of the {c['n']} validation patches, of which "
            f"trial {c['best_trial']} gets {c['only_a']} right and the baseline's trial {c['only_b']} "
            f"(McNemar's exact test, p = {c['p_value']:.2g}).")
    if c["retrain"]:
        verdict = (f" The best settings are better than the baseline's at this budget (p < {SIGNIFICANCE:g}), "
                   "so they earn a full-budget run.")
    else:
        verdict = (f" At this budget the two cannot be told apart (p ≥ {SIGNIFICANCE:g})."
                   if c["p_value"] >= SIGNIFICANCE else
                   " The baseline's trial gets significantly more patches right.")
    return same + verdict


def why_not_retrained(result, n_val: int | None = None) -> str | None:
    """Why chapter 4 trains no second, full-budget run after this search (a clause for
    ``results.choose_final``), or None when it does: ``SearchResult.retrain`` decides (``n_val`` is unused:
    the paired test counts the patches itself)."""
    if result.retrain:
        return None
    if result.winner_is_baseline:
        return BASELINE_CONFIRMED
    c = result.comparison
    # section 4.3 gives the counts; the verdict refers back to them rather than repeating them
    return f"its search's best trial could not be told apart from the baseline's (p = {c['p_value']:.2g}, no evidence)"


def _colour_scale(result, name):
    """A colour map and norm for hyperparameter ``name`` (log-spaced where it was sampled on a log scale)."""
    from matplotlib.colors import LogNorm, Normalize

    values = result.table.loc[result.table["status"] != "failed", name].astype(float)
    norm = LogNorm if name in result.log_params else Normalize
    return plt.get_cmap("viridis"), norm(vmin=values.min(), vmax=values.max())


def describe_retrained(run, name: str, final, data, *, device="cpu") -> str:
    """The retrained ``final`` (a tune.FinalRun) against ``name``'s baseline from chapter 2 or 3, both trained on
    the whole split with the full budget, on the same validation patches (McNemar's exact test)."""
    from labkit.results import load_final

    _, meta = run.load_checkpoint(f"{name}/baseline.pt")  # its config: how chapter 2 or 3 trained it
    baseline = load_final(run, name, stage="baseline")
    c = paired_test(val_correct(name, final.model, final.config, data, device=device, run_dir=run),
                    val_correct(name, baseline, meta.get("config", final.config), data, device=device, run_dir=run))
    differ = (f"Retrained with the full budget, the search's settings and the baseline's disagree on "
              f"{c['only_a'] + c['only_b']} of {c['n']} validation patches, {c['only_a']} to {c['only_b']} "
              f"(McNemar's exact test, p = {c['p_value']:.2g}): ")
    if c["p_value"] >= SIGNIFICANCE:
        return differ + "the two cannot be told apart."
    if c["only_a"] > c["only_b"]:
        return differ + "the search's settings are better."
    return differ + ("the baseline's are better. The short trials on a subset favoured settings that learn fast, "
                     "not the ones that end up best.")


def trials_figure(result):
    """Validation accuracy per trial over epochs, coloured by the first searched hyperparameter; the baseline's
    trial dashed, the best thick, a trial ASHA stopped ends in an x."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    stopped = set(result.table.loc[result.table["stopped_early"] == "yes", "trial"])
    first = result.params[0]
    numeric = pd.api.types.is_numeric_dtype(result.table[first])
    if numeric:
        cmap, norm = _colour_scale(result, first)
        settings = result.table.set_index("trial")[first]
    for trial, curve in result.curves.groupby("trial"):
        best, baseline = trial == result.best_trial, trial == result.baseline_trial
        colour = cmap(norm(float(settings.loc[trial]))) if numeric else None
        label = ("best trial" if best else "") + (" = " if best and baseline else "") + (
            "baseline's settings" if baseline else "")
        line, = ax.plot(curve["epoch"], 100 * curve["val_acc"], marker="o", markersize=3, color=colour,
                        linewidth=3 if best else 1.2, linestyle="--" if baseline else "-",
                        alpha=1.0 if best or baseline else 0.7, label=label or None, zorder=3 if best else 2)
        if trial in stopped:
            ax.plot(curve["epoch"].iloc[-1], 100 * curve["val_acc"].iloc[-1], marker="x", markersize=9,
                    markeredgewidth=2, color=line.get_color())
    if stopped:
        ax.plot([], [], "x", color="grey", markeredgewidth=2, label="stopped by ASHA")
    if numeric:
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax)
        bar.set_label(first + (" (log scale)" if first in result.log_params else ""))
        if first in result.log_params:  # ticks at 1 and 3 times powers of ten, written 0.003, not 3x10^-3
            bar.ax.yaxis.set_major_locator(plt.LogLocator(base=10, subs=(1.0, 3.0)))
            bar.ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
            bar.ax.yaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_xticks(range(1, max(result.max_epochs, 1) + 1))
    ax.set_title(f"{result.kind}: validation accuracy of each of the {len(result.table)} trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def common_epoch(result) -> int:
    """The last epoch every trial that ran reached (ASHA's first rung): where all of them are compared alike."""
    ran = result.table[result.table["status"] != "failed"]
    return int(ran["epochs_run"].min()) if len(ran) else 0


def score_figure(result):
    """Each trial's validation accuracy after ``common_epoch`` epochs (the same budget for all of them) against
    each searched hyperparameter, on a log axis where it was sampled on one."""
    params = [p for p in result.params if p in result.table.columns]
    epoch = common_epoch(result)
    at = result.curves[result.curves["epoch"] == epoch].set_index("trial")["val_acc"]
    ok = result.table[result.table["status"] != "failed"].set_index("trial").join(at.rename("acc_at"), how="inner")
    fig, axes = plt.subplots(1, len(params), figsize=(3.4 * len(params), 3.2), sharey=True, squeeze=False)
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
                ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        else:  # categories (unfrozen stages): one column each
            categories = sorted(x.unique(), key=lambda v: (isinstance(v, str), v))
            positions = x.map({c: i for i, c in enumerate(categories)})
            ax.set_xticks(range(len(categories)), [format_value(c) for c in categories], fontsize=8)
            ax.set_xlim(-0.5, len(categories) - 0.5)
        y = 100 * ok["acc_at"]
        ax.scatter(positions, y, s=40, c="tab:blue", edgecolor="black", linewidth=0.5, label="trial")
        for trial, marker, size, colour, label in ((result.baseline_trial, "s", 90, "none", "baseline's settings"),
                                                   (result.best_trial, "*", 260, "gold", "best trial")):
            if trial in ok.index:
                ax.scatter(positions.loc[[trial]], y.loc[[trial]], marker=marker, s=size, facecolor=colour,
                           edgecolor="black", linewidth=1.2, zorder=3, label=label)
        ax.margins(y=0.15)
        ax.set_xlabel(name + (" (log scale)" if name in result.log_params else ""))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(f"val. accuracy after epoch {epoch} (%)")
    axes[0, -1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{result.kind}: each trial's validation accuracy after {epoch} epoch"
                 + ("s" if epoch != 1 else "") + ", which every trial ran", fontsize=10)
    fig.tight_layout()
    return fig
