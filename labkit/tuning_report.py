"""What a Ray Tune search looks like in the report: its search space as a table, its trials as figures,
and its outcome in a few generated sentences (chapter 4). ``labkit.tune`` runs the search and does not
import this module, so Ray's workers never pay for importing matplotlib.

    describe_space(space)     one row per hyperparameter: distribution and range or choices
    trials_table(result)      the trials as the notebook shows them: rounded, percentages, narrow columns
    search_record(result, majority_rate=...)
                              the search's outcome as chapter 4 records it: the best trial against the
                              baseline's and against always predicting the largest class, and the paired
                              test that decides whether the best earns a full-budget run
    describe_search(record)   that record in a few sentences
    trials_figure(result)     validation accuracy of each trial over epochs, ASHA's stops marked
    score_figure(result)      each trial's accuracy after the epochs every trial ran, against each hyperparameter
    why_not_retrained(result) why chapter 4 trains no full-budget run of the search's best (None: it does)
    retrained_against_baseline(run, name, final, data)
                              a retrained winner against its baseline, both fully trained (McNemar)
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from ray.tune.search.sample import Categorical, Float, Integer

from labkit import conclusions
from labkit.profiles import asha_grace_period
from labkit.recipes import is_log_scale
from labkit.results import BASELINE_CONFIRMED
from labkit.tune import paired_test, val_correct

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


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("s" if n != 1 else "")


def search_record(result, *, majority_rate: float | None = None,
                  majority_class: str = "the largest class") -> dict:
    """The search's outcome as chapter 4 records it (``conclusions``, ``search_<model>``): what ASHA stopped,
    the best trial and the baseline's on the half of the validation split that scores trials, how many
    trials did no better than always predicting ``majority_class`` (``majority_rate`` of the validation
    patches), and ``test``, the paired test on the other half that decides a full-budget run."""
    t = result.table
    scores = t.loc[t["status"] == "completed", "best_val_acc"].dropna()
    has_baseline = result.baseline_trial is not None and result.baseline_completed
    return {"model": result.kind, "trials": len(t), "failed": len(result.failed),
            "first_error": result.failed[0]["error"] if result.failed else None,
            "epochs": result.max_epochs, "stopped": int((t["stopped_early"] == "yes").sum()),
            "stopped_after": asha_grace_period(result.max_epochs), "completed": len(scores),
            "best_trial": result.best_trial, "best_val_acc": result.best_score,
            "best_is_baseline": result.winner_is_baseline,
            "baseline_val_acc": result.baseline_score if has_baseline else None,
            "majority_class": majority_class, "majority_rate": majority_rate,
            "below_majority": int((scores <= majority_rate).sum()) if majority_rate is not None else None,
            "test": result.comparison, "retrain": result.retrain}


def describe_search(record: dict) -> str:
    """A search's ``search_record`` in a few sentences (markdown), every number from it; the settings
    themselves are in the trials table."""
    kind, best = record["model"], f"trial {record['best_trial']}"
    text = f"{record['trials']} trials of up to {_epochs(record['epochs'])}"
    if record["stopped"]:
        text += f"; ASHA stopped {record['stopped']} after {_epochs(record['stopped_after'])}"
    text += "."
    if record["failed"]:
        text += f" {record['failed']} failed (first: {record['first_error']})."
    if record["best_is_baseline"]:
        text += (f" The best, at {100 * record['best_val_acc']:.1f}%, is the baseline's own settings: {kind}'s "
                 "baseline stays final.")
    elif record["baseline_val_acc"] is not None:
        text += (f" The best, {best}, scored {100 * record['best_val_acc']:.1f}% and the baseline's settings "
                 f"{100 * record['baseline_val_acc']:.1f}%.")
    else:
        text += f" The best, {best}, scored {100 * record['best_val_acc']:.1f}%."
    rate, below = record["majority_rate"], record["below_majority"]
    if rate is not None and record["best_val_acc"] <= rate:
        text += (f" No {kind} trial beat always answering '{record['majority_class']}' ({100 * rate:.1f}%), so "
                 "this ranking says little.")
    elif below:
        text += (f" {below} of the {record['completed']} that ran every epoch did not beat always answering "
                 f"'{record['majority_class']}' ({100 * rate:.1f}%).")
    c = record["test"]
    if c:
        text += (f" On the other half of the validation split they differ on {c['differing']} of {c['patches']} "
                 f"patches, {c['only_a']} to "
                 f"{c['only_b']} (McNemar's p {conclusions.format_p(c['p_value'])})")
        if c["winner"] == "best":
            text += f": {best}'s settings earn a full-budget run."
        elif c["winner"] == "baseline":
            text += f": the baseline's settings do better, so {kind}'s baseline stays final."
        else:
            text += f": the two cannot be told apart, so {kind}'s baseline stays final."
    elif record["retrain"]:
        text += " Its settings get a full-budget run."
    return text


def why_not_retrained(result) -> str | None:
    """Why chapter 4 trains no second, full-budget run after this search (the record's reason, as
    ``results.choose_final`` keeps it), or None when it does: ``SearchResult.retrain`` decides."""
    if result.retrain:
        return None
    if result.winner_is_baseline:
        return BASELINE_CONFIRMED
    c = result.comparison
    p = conclusions.format_p(c["p_value"])
    return f"its search's best trial was not found better than the baseline's (McNemar's p {p})"


def _colour_scale(result, name):
    """A colour map and norm for hyperparameter ``name`` (log-spaced where it was sampled on a log scale)."""
    from matplotlib.colors import LogNorm, Normalize

    values = result.table.loc[result.table["status"] != "failed", name].astype(float)
    norm = LogNorm if name in result.log_params else Normalize
    return plt.get_cmap("viridis"), norm(vmin=values.min(), vmax=values.max())


def retrained_against_baseline(run, name: str, final, data, *, device="cpu"):
    """The retrained ``final`` (a tune.FinalRun) against ``name``'s baseline from chapter 2 or 3, both trained on
    the whole split with the full budget, on the same validation patches: a ``conclusions.PairedTest``
    (McNemar's exact test), "retrained" against "baseline", for ``results.choose_final``."""
    from labkit.results import load_final

    _, meta = run.load_checkpoint(f"{name}/baseline.pt")  # its config: how chapter 2 or 3 trained it
    baseline = load_final(run, name, stage="baseline")
    return paired_test(val_correct(name, final.model, final.config, data, device=device, run_dir=run),
                       val_correct(name, baseline, meta.get("config", final.config), data, device=device, run_dir=run),
                       "retrained", "baseline")


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
    axes[0, -1].legend(fontsize=8, loc="best")  # "best" keeps clear of the points
    fig.suptitle(f"{result.kind}: each trial's validation accuracy after {epoch} epoch"
                 + ("s" if epoch != 1 else "") + ", which every trial ran", fontsize=10)
    fig.tight_layout()
    return fig
