"""Heuristic detectors: find rubric evidence in notebooks that carry no evidence records.

Each detector reads code, outputs and headings of a ``NotebookView`` and returns Verdicts whose
evidence cites 1-based cell numbers and quotes a short snippet. Nothing is executed.
"""
from __future__ import annotations

import ast
import re

from . import discussion, sections
from .cells import PRINTED_MATRIX, Cell
from .codeparse import base_names, call_name, uses
from .flow import ARCH_CALL, MODELS, NotebookView, Site, strip_comments
from .marker import Marker
from .names import TEAM_NAME, suggest_team_name
from .results import FAIL, PASS, WARN, Verdict

SNIPPET_CHARS = 80
__all__ = ["MODELS", "NotebookView"]   # re-exported: check.py builds the view through this module


def snippet(text: str, pattern: re.Pattern | None = None) -> str:
    """A short quote: the first line matching ``pattern`` (or the first non-blank line), <= 80 chars."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if pattern is not None:
        lines = [line for line in lines if pattern.search(line)] or lines
    line = lines[0] if lines else ""
    return line if len(line) <= SNIPPET_CHARS else line[:SNIPPET_CHARS - 3] + "..."


def cite(cell: Cell, text: str, pattern: re.Pattern | None = None) -> str:
    quote = snippet(text, pattern)
    return f'cell {cell.number} "{quote}"' if quote else f"cell {cell.number}"


def cell_list(numbers: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


# --- structural criteria -------------------------------------------------------------------------

def detect_filename(filename: str, team: str | None) -> Verdict:
    stem, dot, ext = filename.rpartition(".")
    if not dot or ext != "ipynb":
        return Verdict("filename", FAIL, f'"{filename}" does not end in .ipynb')
    if not TEAM_NAME.fullmatch(stem):
        return Verdict("filename", FAIL, f'"{filename}" is not a valid team name (letters, digits, _ and - '
                       f'only, starting with a letter or digit); rename it {suggest_team_name(stem)}.ipynb')
    if team:
        wanted = suggest_team_name(team)
        if stem == wanted:
            return Verdict("filename", PASS, f'"{filename}" matches team {team}')
        if stem.lower() == wanted.lower():
            return Verdict("filename", WARN, f'"{filename}" matches team {team} only if case is ignored; '
                           f"expected {wanted}.ipynb")
        return Verdict("filename", FAIL, f'"{filename}" does not match team {team}; expected {wanted}.ipynb')
    return Verdict("filename", PASS, f'"{filename}" is a valid team name')


def detect_executed(view: NotebookView) -> Verdict:
    if view.code and all(c.ran_without_count for c in view.code):
        shown = sum(bool(c.outputs) for c in view.code)
        return Verdict("executed", PASS, f"no execution counts (exported without them, as Colab does), but "
                       f"{shown} of {len(view.code)} code cells show outputs: the notebook ran")
    unrun = [c.number for c in view.code if not c.ran]
    if unrun:
        return Verdict("executed", FAIL, f"{len(unrun)} of {len(view.code)} code cells never ran: cells "
                       f"{cell_list(unrun)} (first: {cite(view.cells[unrun[0] - 1], view.cells[unrun[0] - 1].source)})")
    if not view.code:
        return Verdict("executed", FAIL, "the notebook has no code cells")
    return Verdict("executed", PASS, f"all {len(view.code)} non-empty code cells ran")


def detect_no_errors(view: NotebookView) -> Verdict:
    errored = [c for c in view.code if c.has_error]
    if not errored:
        return Verdict("no_errors", PASS, "no cell ended in an error")
    parts = []
    for cell in errored[:5]:
        error = cell.errors[0]
        following = view.cells[cell.number] if cell.number < len(view.cells) else None
        explained = (" (explained in the next markdown cell)" if following is not None and
                     following.cell_type == "markdown" and re.search(r"error|fail|crash|exception|bug",
                                                                    following.source, re.IGNORECASE) else "")
        parts.append(f"cell {cell.number}: {snippet(error.text)}{explained}")
    more = f" and {len(errored) - 5} more cells" if len(errored) > 5 else ""
    return Verdict("no_errors", FAIL, "; ".join(parts) + more)


def detect_run_order(view: NotebookView) -> Verdict:
    previous, restarts, problems = None, 0, []
    restart_allowed = False   # build.py ran each chapter in its own kernel and marked its first cell
    for cell in view.cells:
        restart_allowed = restart_allowed or cell.chapter_start
        if not cell.is_code or cell.execution_count is None:
            continue
        count = cell.execution_count
        if previous is not None and count <= previous:
            if restart_allowed:
                restarts += 1
            else:
                problems.append(f"cell {cell.number} (count {count} after {previous})")
        previous, restart_allowed = count, False
    if previous is None:
        return Verdict("run_order", WARN, "no cell has an execution count (a Colab export drops them): "
                       "the order the cells ran in cannot be checked")
    if problems:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        return Verdict("run_order", WARN, "cells run out of order: " + ", ".join(problems[:5]) + more)
    extra = f" ({restarts} restarts at chapter markers)" if restarts else ""
    return Verdict("run_order", PASS, "execution counts increase top to bottom" + extra)


# --- data -----------------------------------------------------------------------------------------

_SPLITTERS = ("train_test_split", "random_split", "StratifiedShuffleSplit", "StratifiedKFold", "KFold",
              "ShuffleSplit", "SubsetRandomSampler", "stratified_split")
_SPLIT = Marker(r"\b(" + "|".join(_SPLITTERS) + r")\s*\(", _SPLITTERS)
_OTHER_DATA = re.compile(r"\b(ImageFolder|TensorDataset|DataLoader)\s*\(")


def _ok(cell: Cell) -> bool:
    return cell.ran and not cell.has_error


def detect_data_loader(view: NotebookView) -> Verdict:
    found = [(cell, d) for cell, d in view.definitions if d.kind == "class" and (
        any(b.endswith("Dataset") for b in base_names(d.node)) if d.node is not None
        else re.match(r"class\s+\w+\s*\(\s*[\w.]*Dataset\s*\)", d.text))]
    good = [(cell, d) for cell, d in found if _ok(cell)]
    if good:
        cell, d = good[0]
        return Verdict("data_loader", PASS, f"{cite(cell, d.text)}: a Dataset subclass")
    if found:
        cell, d = found[0]
        return Verdict("data_loader", FAIL, f"{cite(cell, d.text)} defines a Dataset but the cell "
                       f"{'never ran' if not cell.ran else 'ended in an error'}")
    other = [c for c in view.code if _ok(c) and _OTHER_DATA.search(c.source)]
    if other:
        return Verdict("data_loader", WARN, f"{cite(other[0], other[0].source, _OTHER_DATA)}: a ready-made "
                       "dataset or loader, but no Dataset subclass of its own")
    return Verdict("data_loader", FAIL, "no Dataset subclass found")


def detect_validation_split(view: NotebookView) -> Verdict:
    return _first_executed("validation_split", view, _SPLIT, "splits off a validation set",
                           "no train/validation split found (train_test_split, random_split, ...)")


def _first_executed(cid: str, view: NotebookView, pattern: re.Pattern, what: str, missing: str) -> Verdict:
    cells = [c for c in view.code if pattern.search(c.source)]
    good = [c for c in cells if _ok(c)]
    if good:
        return Verdict(cid, PASS, f"{cite(good[0], good[0].source, pattern)}: {what}")
    if cells:
        cell = cells[0]
        return Verdict(cid, FAIL, f"{cite(cell, cell.source, pattern)} "
                       f"{'never ran' if not cell.ran else 'ended in an error'}")
    return Verdict(cid, FAIL, missing)


# --- models ---------------------------------------------------------------------------------------

_ARCH_CALL = ARCH_CALL
_MODEL2_HINT = re.compile(r"pretrained|weights|timm|load_state_dict|torch\.load|get_model|" + "|".join(sections.ARCH_NAMES))
_GET_MODEL = re.compile(r"\bget_model\s*\(\s*['\"](\w+)['\"]([^()]*(?:\([^()]*\)[^()]*)*)\)")
_IMAGENET_WEIGHTS = re.compile(r"weights\s*=\s*(?:[\w.]*IMAGENET\w*|[\w.]*DEFAULT|['\"](?:DEFAULT|IMAGENET1K_\w+)['\"])")
_WEIGHTS_ENUM = Marker(r"\b\w+_Weights\.(?:IMAGENET\w*|DEFAULT)\b|['\"](?:DEFAULT|IMAGENET1K_\w+)['\"]",
                       ("_Weights.", "DEFAULT", "IMAGENET1K_"))
_WEIGHTS_VAR = re.compile(r"weights\s*=\s*(?!None\b)[A-Za-z_]\w*\s*(?:[,)]|$)")
_RANDOM = re.compile(r"pretrained\s*=\s*False|weights\s*=\s*None")
_TIMM = re.compile(r"timm\.create_model\s*\([^)]*pretrained\s*=\s*True")
_WEIGHT_FILE = re.compile(r"""(?:load_state_dict|torch\.load)\s*\(.*?['"]([^'"]+\.(?:pth|pt|bin|ckpt))['"]""")


def detect_model1(view: NotebookView, params: dict) -> Verdict:
    low, high = int(params.get("min_weight_layers", 1)), int(params.get("max_weight_layers", 8))
    candidates = view.model1_candidates
    if not candidates:
        return Verdict("model1_small_convnet", FAIL, "no nn.Module or nn.Sequential with Conv2d layers found")

    def preference(item):
        cell, d, _ = item
        model = view.section_model.get(cell.number)
        named = sections.models_named(d.name)
        return (0 if model == "model1" or "model1" in named else 2 if model == "model2" or "model2" in named
                else 1, cell.number)

    cell, d, count = min(candidates, key=preference)
    where = cite(cell, d.text)
    if not cell.ran or cell.has_error:
        return Verdict("model1_small_convnet", FAIL,
                       f"{where} defines model 1 but {'never ran' if not cell.ran else 'ended in an error'}")
    if count.total > high:
        return Verdict("model1_small_convnet", FAIL, f"{where}: {count.describe()}; at most {high} allowed")
    if count.total < low:
        return Verdict("model1_small_convnet", FAIL, f"{where}: {count.describe()}; at least {low} needed")
    if count.in_loop:
        printed = _printed_weight_layers(view, d.name)
        if printed is not None:   # the model as PyTorch prints it: the real count, loop or not
            total, shown_in = printed
            verdict = PASS if low <= total <= high else FAIL
            return Verdict("model1_small_convnet", verdict, f"{where}: layers built in a loop; the {d.name} printed "
                           f"in cell {shown_in.number} has {total} weight layers (allowed {low}..{high})")
        return Verdict("model1_small_convnet", WARN, f"{where}: {count.describe()} (layers built in a loop: "
                       f"check that the real count is at most {high})")
    return Verdict("model1_small_convnet", PASS, f"{where}: {count.describe()} (allowed {low}..{high})")


_PRINTED_WEIGHT_LAYER = re.compile(r"^\s*\(\w+\):\s*(?:Conv2d|Linear)\(", re.MULTILINE)


def _printed_weight_layers(view: NotebookView, name: str) -> tuple[int, Cell] | None:
    """(Conv2d + Linear count, cell) of the first ``name(...)`` module repr a cell printed, or None."""
    if not name:
        return None
    starts = re.compile(rf"^{re.escape(name)}\(\s*$", re.MULTILINE)
    for cell in view.code:
        if not _ok(cell):
            continue
        for output in cell.shown_outputs:
            match = starts.search(output.text)
            if match:
                return len(_PRINTED_WEIGHT_LAYER.findall(output.text[match.start():])), cell
    return None


def detect_model2(view: NotebookView) -> Verdict:
    enum_cells = [c for c in view.code if _ok(c) and _WEIGHTS_ENUM.search(c.source)]
    random_hit = timm_hit = file_hit = broken = None
    for cell in view.code:
        if not _MODEL2_HINT.search(cell.source):
            continue   # (a cheap test first: most cells build no model and load no weights)
        source = strip_comments(cell.source)   # a commented-out resnet50(pretrained=True) never ran
        calls = [(m.group(0), m.group(2)) for m in _ARCH_CALL.finditer(source)]
        calls += [(m.group(0), m.group(2)) for m in _GET_MODEL.finditer(source)]
        for call, args in calls:
            pretrained = (re.search(r"pretrained\s*=\s*True", args) or _IMAGENET_WEIGHTS.search(call)
                          or (_WEIGHTS_VAR.search(args) and enum_cells))
            if pretrained and _ok(cell):
                api = "old pretrained=True API" if "pretrained" in args else "weights API"
                return Verdict("model2_pretrained", PASS,
                               f'cell {cell.number} "{snippet(call)}": ImageNet weights ({api})')
            if pretrained and broken is None:
                broken = cell
            elif _RANDOM.search(args) and random_hit is None:
                random_hit = (cell, call)
        if _TIMM.search(source) and _ok(cell) and timm_hit is None:
            timm_hit = cell
        if _WEIGHT_FILE.search(source) and _ok(cell) and file_hit is None:
            file_hit = cell
    if timm_hit:
        return Verdict("model2_pretrained", WARN, f"{cite(timm_hit, timm_hit.source, _TIMM)}: pretrained "
                       "weights through timm, not torchvision")
    if file_hit:
        # Reloading one's own checkpoint ('best-model.pt') says nothing about where training started.
        name = _WEIGHT_FILE.search(file_hit.source).group(1)
        return Verdict("model2_pretrained", FAIL, f"{cite(file_hit, file_hit.source, _WEIGHT_FILE)}: reloads "
                       f"the checkpoint '{name}', which is not ImageNet weights; no torchvision model with "
                       "pretrained=True or ImageNet weights= anywhere")
    if broken:
        return Verdict("model2_pretrained", FAIL, f"{cite(broken, broken.source, _ARCH_CALL)} asks for ImageNet "
                       f"weights but {'never ran' if not broken.ran else 'ended in an error'}")
    if random_hit:
        cell, call = random_hit
        return Verdict("model2_pretrained", FAIL, f'cell {cell.number} "{snippet(call)}": random weights, '
                       "not ImageNet")
    return Verdict("model2_pretrained", FAIL, "no torchvision model with ImageNet weights found")


# --- per-model steps: tuning, curves, confusion matrices, Captum ---------------------------------

_TUNE = Marker(r"\btune\.run\s*\(|\bTuner\s*\(|\btune\.run_experiments\s*\(", ("tune.run", "Tuner"))
_TUNER_VARIABLE = Marker(r"(\w+)\s*=\s*(?:tune\.)?Tuner\s*\(", ("Tuner",))
_CURVE_PLOT = Marker(r"\bplt\.plot\s*\(|\.plot\s*\(|\blineplot\s*\(|\bax\w*\.plot\s*\(", ("plot",))
_CURVE_WHAT = re.compile(r"loss|acc", re.IGNORECASE)
_CONFUSION = Marker(r"\bconfusion_matrix\s*\(|\bConfusionMatrixDisplay\b|\bplot_confusion\w*\s*\(|"
                    r"\bheatmap\s*\(|\bcrosstab\s*\(|\bMulticlassConfusionMatrix\s*\(",
                    ("confusion", "ConfusionMatrix", "heatmap", "crosstab"))
_CONFUSION_WHAT = re.compile(r"confus|\bcm\w*\b|crosstab", re.IGNORECASE)
# What draws a matrix as a picture; an image from a cell without one of these is some other figure.
_MATRIX_PLOT = re.compile(r"\bheatmap\s*\(|\bConfusionMatrixDisplay\b|\b(?:imshow|matshow)\s*\(|"
                          r"\bplot_confusion\w*\s*\(")
_MATRIX_TEXT = PRINTED_MATRIX
_CAPTUM_CLASSES = ("Occlusion", "Saliency", "IntegratedGradients", "NoiseTunnel", "GuidedGradCam", "LayerGradCam",
                   "GuidedBackprop", "Deconvolution", "DeepLift", "DeepLiftShap", "GradientShap", "InputXGradient",
                   "FeatureAblation", "ShapleyValueSampling", "Lime", "KernelShap", "LayerConductance",
                   "LayerIntegratedGradients")
_CAPTUM = Marker(r"\b(?:" + "|".join(_CAPTUM_CLASSES) + r")\s*\(|\bvisualize_image_attr\w*\s*\(",
                 _CAPTUM_CLASSES + ("visualize_image_attr",))
_CAPTUM_CALLS = frozenset(_CAPTUM_CLASSES)
_DRAWS = re.compile(r"\bvisualize_image_attr\w*\s*\(|\bplt\.|\bimshow\s*\(|\.show\s*\(|\bsubplots?\s*\(")


def _per_model(view: NotebookView, stem: str, sites: list[Site], good, what: str, bad_reason,
               chain=lambda site: "") -> dict[str, Verdict]:
    """Turn sites into one verdict per model: pass for a good site attributed to it, warn for a good site
    that could not be attributed, fail otherwise (saying what was wrong with the sites that were found).
    ``chain(site)`` tells where what the site uses came from, when that is not the site itself."""
    verdicts = {}
    for model in MODELS:
        cid = f"{stem}_{model}"
        mine = [s for s in sites if model in s.models]
        hit = next((s for s in mine if good(s)), None)
        if hit:
            verdicts[cid] = Verdict(cid, PASS, f"{_quote(hit)}{chain(hit)}: {what}{_attributed(view, hit)}")
            continue
        unknown = next((s for s in sites if not s.models and good(s)), None)
        if unknown:
            verdicts[cid] = Verdict(cid, WARN, f"{_quote(unknown)}{chain(unknown)}: {what}, but neither its "
                                    f"variables, its helpers nor its section say which model")
            continue
        if mine:
            verdicts[cid] = Verdict(cid, FAIL, f"{_quote(mine[0])}: {bad_reason(mine[0])}")
        else:
            verdicts[cid] = Verdict(cid, FAIL, f"nothing found for {model.replace('model', 'model ')}: "
                                    f"expected {what}")
    return verdicts


def _quote(site: Site) -> str:
    quote = site.quote if len(site.quote) <= SNIPPET_CHARS else site.quote[:SNIPPET_CHARS - 3] + "..."
    versions = f" [{site.versions}]" if site.versions else ""
    return f'cell {site.cell.number} "{quote}"{versions}'


def _attributed(view: NotebookView, site: Site) -> str:
    if site.attributed_by == "variables":
        # the data flow, for an instructor to check: variable <- where it was assigned <- where it was built
        model = "model 1" if site.models == {"model1"} else "model 2" if site.models == {"model2"} else "both"
        return f" (by the data flow of its variables: {site.note}: {model})"
    if site.attributed_by == "only model":
        return f" (the notebook builds only this model: {site.note})"
    if site.attributed_by == "arguments":
        return " (by its arguments)"
    if site.attributed_by == "helper":
        return f" (the helper {site.note})"
    return f' (section "{snippet(view.section_title[site.cell.number])}")'


def _why_not(cell: Cell, needs: str) -> str:
    if not cell.ran:
        return "the cell never ran"
    if cell.has_error:
        return f"the cell ended in an error ({snippet(cell.errors[0].text)})"
    return f"the cell shows no {needs}"


def _runs_a_search(reach: str, tuners: list[str]) -> bool:
    """A Tuner counts when it is fitted (``tuner.fit()``, ``Tuner(...).fit()``); ``tune.run`` runs itself.
    A Tuner built and never fitted searched nothing."""
    if "tune.run" in reach:
        return True
    try:
        tree = ast.parse(reach)
    except (SyntaxError, ValueError):
        return bool(re.search(r"\bTuner\s*\(.*\)\s*\.fit\s*\(|\b(?:" + "|".join(map(re.escape, tuners or ["Tuner"]))
                              + r")\.fit\s*\(", reach, re.DOTALL))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "fit":
            fitted = node.func.value
            if (isinstance(fitted, ast.Name) and fitted.id in tuners
                    or isinstance(fitted, ast.Call) and call_name(fitted) == "Tuner"):
                return True
    return False


def _tuner_built(view: NotebookView, site: Site, tuners: list[str]) -> str:
    """`` (tuner ← cell 12 "tuner = tune.Tuner(...)")``: where the Tuner a site fits was built."""
    fitted = re.search(r"\b(\w+)\.fit\s*\(", strip_comments(site.text))
    if not fitted or fitted.group(1) not in tuners or site.cell not in view.execution_order:
        return ""
    name = fitted.group(1)
    built = re.compile(rf"^\s*{re.escape(name)}\s*=\s*(?:tune\.)?Tuner\s*\(", re.MULTILINE)
    ran_before = view.execution_order[:view.execution_order.index(site.cell) + 1]
    for cell in reversed(ran_before):
        for text in reversed(view.parsed[cell.number].statements):
            if built.search(text) and (cell is not site.cell or text != site.text):
                return f' ({name} ← cell {cell.number} "{snippet(text, built)}")'
    return ""


def detect_tuning(view: NotebookView) -> dict[str, Verdict]:
    # tuner = tune.Tuner(...) in one cell, tuner.fit() (which prints the results) in another
    tuners = sorted(set(_TUNER_VARIABLE.findall("\n".join(c.source for c in view.code))))
    marker = _TUNE if not tuners else _TUNE.or_(r"\b(?:" + "|".join(map(re.escape, tuners)) + r")\.fit\s*\(",
                                                tuple(f"{name}.fit" for name in tuners))
    sites = [s for s in view.sites(marker) if _runs_a_search(s.reach, tuners)]
    return _per_model(view, "tuning", sites, lambda s: _ok(s.cell) and bool(s.cell.outputs),
                      "a Ray Tune run with results", lambda s: _why_not(s.cell, "output"),
                      lambda s: _tuner_built(view, s, tuners))


def detect_curves(view: NotebookView) -> dict[str, Verdict]:
    sites = view.sites(_CURVE_PLOT, _CURVE_WHAT)
    return _per_model(view, "curves", sites, lambda s: _ok(s.cell) and s.cell.has_image, "a loss/accuracy plot",
                      lambda s: _why_not(s.cell, "image"))


def shows_matrix(cell: Cell, code: str) -> bool:
    """A confusion matrix is judged by what the cell shows: a heatmap-like image drawn by code that draws
    matrices, or a matrix-shaped printed output."""
    return _ok(cell) and ((cell.has_image and bool(_MATRIX_PLOT.search(code)))
                          or any(_MATRIX_TEXT.search(o.text) or o.table for o in cell.shown_outputs))


def detect_confusion(view: NotebookView) -> dict[str, Verdict]:
    sites = view.sites(_CONFUSION, _CONFUSION_WHAT)
    return _per_model(view, "confusion", sites, lambda s: shows_matrix(s.cell, view.reach(s.cell.source, s.cell)),
                      "a confusion matrix",
                      lambda s: _why_not(s.cell, "matrix (no heatmap image and no printed matrix)"))


def _calls_captum(reach: str) -> bool:
    """A Captum method counts where the code calls it (on the model, or to draw its attributions); its name
    in a string or a plot title is no call. Code that does not parse keeps the textual match."""
    found = uses(reach)
    return found is None or any(name in _CAPTUM_CALLS or name.startswith("visualize_image_attr")
                                for name in found.called)


def detect_captum(view: NotebookView) -> dict[str, Verdict]:
    sites = [s for s in view.sites(_CAPTUM) if _calls_captum(s.reach)]

    def shows_attributions(site: Site) -> bool:
        if not _ok(site.cell):
            return False
        if site.cell.has_image and _DRAWS.search(view.reach(site.cell.source, site.cell)):
            return True
        following = view.next_code_cell(site.cell)   # attributions computed here, plotted in the next cell
        return (following is not None and _ok(following) and following.has_image
                and bool(_DRAWS.search(view.reach(following.source, following))))

    return _per_model(view, "captum", sites, shows_attributions, "Captum attributions shown as images",
                      lambda s: _why_not(s.cell, "attribution image (the figure is blank or the drawing "
                                         "line is commented out)"))


# --- confusion fix, submission, narrative, discussion --------------------------------------------

# A cheap first test for the code that may fix the imbalance; _fix_use then reads what the code does with it.
_FIX = re.compile(r"\bweight\s*=|\bWeightedRandomSampler\b|\bcompute_(?:class|sample)_weight\b|"
                  r"\bclass_weights?\b|\bpos_weight\b|\b\w*oversampl\w*|\bRandomOverSampler\b|\bSMOTE\b|"
                  r"\bADASYN\b|\bfit_resample\b|\bFocalLoss\b|\bfocal_loss\b", re.IGNORECASE)
# What counts as use: these called, these names handed to a call, a loss given class weights.
_FIX_CALLS = re.compile(r"WeightedRandomSampler|compute_(?:class|sample)_weight|RandomOverSampler|SMOTE|ADASYN|"
                        r"fit_resample|FocalLoss|focal_loss|class_weights?|\w*oversampl\w*", re.IGNORECASE)
_FIX_PASSED = re.compile(r"class_weights?|\w*oversampl\w*", re.IGNORECASE)
_LOSS = re.compile(r"\w*Loss|\w*cross_entropy\w*|nll_loss")
_IMPORT = re.compile(r"^\s*(?:import|from)\s")
_SAYS_FIX = re.compile(r"fix|weight|sampl|balanc|smote|adasyn|focal", re.IGNORECASE)
# Oversampling by hand: minority rows duplicated into the dataframe (concat, sample with replacement, a row
# appended at the end with ``df.loc[len(df)] = ...``, ...).
_DUPLICATES_ROWS = re.compile(r"\bconcat\s*\(|\.sample\s*\([^)]*replace\s*=\s*True|\bresample\s*\(|"
                              r"\.repeat\s*\(|\.append\s*\(|\]\s*\*\s*\d|\.loc\[\s*len\s*\(")
_ABOUT_BALANCE = re.compile(r"balanc|imbalanc|oversampl|up-?sampl|minority|under-?represent|duplicat", re.IGNORECASE)
_AUGMENTATIONS = frozenset({"RandomHorizontalFlip", "RandomVerticalFlip", "RandomRotation", "ColorJitter",
                            "RandomResizedCrop", "RandomAffine", "RandAugment", "TrivialAugmentWide", "AutoAugment",
                            "RandomErasing", "GaussianBlur"})
_AUGMENT = re.compile(r"\b(?:" + "|".join(sorted(_AUGMENTATIONS)) + r")\b|albumentations")
_ABOUT_CONFUSION = re.compile(r"confus|imbalanc|minority|under-?represented|misclassif|mix(?:es|ed)? up", re.IGNORECASE)
# What generic augmentation is usually said to be for: none of it is about the worst confusion.
_GENERIC_MOTIVE = re.compile(r"overfit\w*|generali[sz]\w*|variation|variety|divers\w*|robust\w*|invarian\w*|"
                             r"more data|regulari[sz]\w*", re.IGNORECASE)


def _section_text(view: NotebookView, cell: Cell) -> str:
    """The title and the markdown of the section a cell sits in."""
    title = view.section_title[cell.number]
    return title + "\n" + "\n".join(c.source for c in view.cells
                                     if c.cell_type == "markdown" and view.section_title[c.number] == title)


def _might_fix(source: str) -> bool:
    """A cheap test before the case-insensitive _FIX, which is slow on a notebook of hundreds of cells."""
    lowered = source.lower()
    return any(word in lowered for word in ("weight", "sampl", "smote", "adasyn", "focal"))


def _without_imports(code: str) -> str:
    return "\n".join(line for line in code.splitlines() if not _IMPORT.match(line))


def _fix_use(code: str) -> str | None:
    """How ``code`` (comments removed) uses a fix on the data or the model, or None: a sampler or class
    weights called, passed or fitted. An import, a comment or a definition nobody calls is no use."""
    found = uses(code)
    if found is None:   # code that does not parse: its lines, imports left out
        match = _FIX.search(_without_imports(code))
        return f"{match.group(0).strip()} in code that ran" if match else None
    called = sorted(name for name in found.called if _FIX_CALLS.fullmatch(name))
    if called:
        return f"calls {called[0]}"
    weighted = sorted(call for call, keyword in found.keywords
                      if keyword == "pos_weight" or keyword == "weight" and _LOSS.fullmatch(call))
    if weighted:
        return f"the loss {weighted[0]} is given class weights"
    passed = sorted(name for name in found.passed if _FIX_PASSED.fullmatch(name))
    return f"passes {passed[0]} on" if passed else None


def _fix_quote(view: NotebookView, code: str) -> str:
    """The line of a statement that uses the fix, or else calls the helper that does (never an import)."""
    lines = [line for line in _without_imports(code).splitlines() if line.strip()]
    return next((line for line in lines if _FIX.search(line)),
                next((line for line in lines if view.own_functions_in(line)), lines[0] if lines else ""))


def _passed_on(view: NotebookView, cell: Cell, text: str, links: int = 2) -> str:
    """`` → cell 14 "DataLoader(..., sampler=sampler)"``: where what a statement assigns is handed on,
    in execution order, and where that result is handed on in turn (``links`` steps at most)."""
    found = uses(strip_comments(text))
    names = set(found.assigned) if found else set()
    order = view.execution_order
    start = next((i for i, c in enumerate(order) if c is cell), None)
    if not names or start is None:
        return ""
    chain, after = [], False
    for later in order[start:]:
        for statement in view.parsed[later.number].statements:
            if later is cell and not after:
                after = statement == text
                continue
            code = strip_comments(statement)
            step = uses(code) if any(name in code for name in names) else None
            if step is None or not names & step.passed:
                continue
            passed = re.compile(r"\b" + re.escape(min(names & step.passed)) + r"\b")
            chain.append(f'cell {later.number} "{snippet(code, passed)}"')
            names = set(step.assigned)
            if len(chain) == links or not names:
                return "".join(f" → {link}" for link in chain)
    return "".join(f" → {link}" for link in chain)


def _augments(code: str) -> bool:
    """Whether code (comments removed) builds an augmentation: a transform called, not just imported."""
    found = uses(code)
    if found is None:
        return bool(_AUGMENT.search(_without_imports(code)))
    return bool(found.called & _AUGMENTATIONS) or ("albumentations" in code and "Compose" in found.called)


def detect_confusion_fix(view: NotebookView) -> Verdict:
    """Something aimed at the worst confusion or the imbalance behind it, in code that ran and uses it (a
    sampler or class weights called, passed or fitted; an import is no attempt). Generic augmentation is
    no such attempt: it fails, quoting what the notebook says it is for (overfitting, "more variation")."""
    fixes = []
    for cell in view.code:
        if not (_ok(cell) and _might_fix(view.reach(cell.source, cell))):
            continue
        for text in view.parsed[cell.number].statements:
            reach = view.reach(text, cell)
            if _IMPORT.match(text) or not (_might_fix(reach) and _FIX.search(reach)):
                continue
            use = _fix_use(reach)
            if use:
                fixes.append((cell, text, reach, use))
    # a weighted sampler in a general data-loading helper is no evidence of a fix: cite first the one that
    # sits in a section about the confusion or the imbalance, and there a statement that says it is about
    # the fix before one that only reaches a helper able to weight samples (``make_loader(val, ...)``)
    fixes.sort(key=lambda f: (not (_ABOUT_CONFUSION.search(_section_text(view, f[0]))
                                   or _ABOUT_BALANCE.search(_section_text(view, f[0]))),
                              not _SAYS_FIX.search(strip_comments(f[1]))))
    if fixes:
        cell, text, reach, use = fixes[0]
        quote = snippet(_fix_quote(view, strip_comments(text)))
        return Verdict("confusion_fix", PASS, f'cell {cell.number} "{quote}": {use}{_passed_on(view, cell, text)}: '
                       "class weights or resampling against the imbalance behind the confusion")
    for cell in view.code:
        if _ok(cell) and _DUPLICATES_ROWS.search(strip_comments(cell.source)) and \
                _ABOUT_BALANCE.search(_section_text(view, cell)):
            return Verdict("confusion_fix", PASS, f"{cite(cell, cell.source, _DUPLICATES_ROWS)}: minority rows "
                           f'duplicated (oversampling) in the section "{snippet(view.section_title[cell.number])}"')
    augment = [c for c in view.code if _ok(c) and _AUGMENT.search(c.source) and _augments(strip_comments(c.source))]
    for cell in augment:
        if _ABOUT_CONFUSION.search(_section_text(view, cell)):
            return Verdict("confusion_fix", PASS, f"{cite(cell, _without_imports(cell.source), _AUGMENT)}: augmentation in a "
                           f'section about the confusion ("{snippet(view.section_title[cell.number])}")')
    if augment:
        cell = augment[0]
        motive = next((s for s in discussion.sentences(_section_text(view, cell)) if _GENERIC_MOTIVE.search(s)), "")
        said = f' (the notebook ties it to "{snippet(motive)}")' if motive else " (tied to nothing the notebook says)"
        return Verdict("confusion_fix", FAIL, f"{cite(cell, _without_imports(cell.source), _AUGMENT)}: generic "
                       f"augmentation{said}, not an attempt to fix the worst confusion or the imbalance behind it")
    return Verdict("confusion_fix", FAIL, "no class weights, weighted sampler, oversampling or targeted "
                   "augmentation found")


_WRITES = re.compile(r"\.to_csv\s*\(|\bopen\s*\([^)]*['\"][wa]|csv\.writer|\.savetxt\s*\(")
_CSV_NAME = re.compile(r"""['"]([^'"\n]*?([\w.-]+\.csv))['"]""")
# File names students give predictions; a written 'history.csv' or 'train_balanced.csv' is not one.
_PREDICTION_FILE = re.compile(r"sub|pred|test|result|output|answer|kaggle", re.IGNORECASE)
_READS = re.compile(r"read_csv\s*\(|\bopen\s*\([^)]*['\"]r['\"]|\.exists\s*\(")


def _written_csv(code: str) -> str | None:
    """The prediction file a piece of code writes (its base name), judged by the literals it holds."""
    names = []
    for line in code.splitlines():
        if _READS.search(line):
            continue
        names += [m.group(2) for m in _CSV_NAME.finditer(line) if _PREDICTION_FILE.search(m.group(2))]
    if not names:
        return None
    return next((n for n in names if n.lower() == "submission.csv"), names[0])


def detect_submission(view: NotebookView) -> Verdict:
    """Statements that write a predictions CSV, directly or through a helper that receives the path."""
    writers = []
    for cell in view.code:
        if ".csv" not in view.reach(cell.source, cell):
            continue   # (a cheap test first: the file name is in the cell or in a helper it calls)
        for text in view.parsed[cell.number].statements:
            reach = view.reach(text, cell)
            if ".csv" not in reach:
                continue
            name = _written_csv(strip_comments(text)) or _written_csv(reach)
            if name and _WRITES.search(reach):
                writers.append((cell, text, name))
    good = [w for w in writers if _ok(w[0])]
    if good:
        cell, text, name = next((w for w in good if w[2] == "submission.csv"), good[0])
        quote = cite(cell, text, re.compile(re.escape(name)))
        if name == "submission.csv":
            return Verdict("submission", PASS, f"{quote}: writes submission.csv")
        return Verdict("submission", WARN, f"{quote}: writes the predictions to {name}; Kaggle expects the "
                       "file to be called submission.csv")
    if writers:
        cell, text, name = writers[-1]
        return Verdict("submission", FAIL, f"{cite(cell, text, re.compile(re.escape(name)))} writes {name} but "
                       f"{'never ran' if not cell.ran else 'ended in an error'}")
    return Verdict("submission", FAIL, "no cell writes submission.csv (or another predictions .csv)")


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+(?:\.\d+)?%?")
_NUMBER = re.compile(r"\d+(?:\.\d+)?\s*%|\b\d*\.\d+\b")

# Words that say what a result means (interpretation), as opposed to what the code does (description).
_INTERPRETS = discussion.any_word(
    "shows?", "suggests?", "because", "indicates?", "we see", r"observe\w*", "better", "worse", r"improv\w*",
    r"overfit\w*", r"underfit\w*", r"converge\w*", r"confus\w*", r"misclassif\w*", "higher", "lower", "likely",
    "reason", "means?", r"explain\w*")
# Sections about handing in, not about the models' results: a comparison there is made in passing.
_ASIDE_HEADING = re.compile(r"submi|kaggle|upload|\.csv", re.IGNORECASE)
_DISCUSSION_HEADING = re.compile(r"discussion|conclusion|comparison|compar|summary|evaluation|reflection", re.IGNORECASE)


def _comparisons(view: NotebookView) -> list[discussion.Comparison]:
    """Asked by the narrative and the discussion detectors: worked out once per notebook."""
    if "comparisons" not in view.memo:
        view.memo["comparisons"] = discussion.comparisons(view.cells)
    return view.memo["comparisons"]


def _discussion_cells(view: NotebookView) -> list[Cell]:
    return [c.cell for c in _comparisons(view) if c.both]


def detect_discussion(view: NotebookView, params: dict) -> Verdict:
    """The models compared on something measured, in enough words. A comparison made in passing (a
    sentence in the submission's text, a remark that model 2 did "better" without naming model 1) warns."""
    min_words = int(params.get("min_words", 60))
    found = _comparisons(view)
    both = [c for c in found if c.both]
    aside = [c for c in both if _ASIDE_HEADING.search(view.section_title[c.cell.number])
             and not _DISCUSSION_HEADING.search(view.section_title[c.cell.number])]
    if both and len(aside) == len(both):
        c = both[0]
        return Verdict("discussion", WARN, f'cell {c.cell.number} "{snippet(c.sentence)}": the models are compared '
                       f'only in passing, in the section "{snippet(view.section_title[c.cell.number])}"')
    both = [c for c in both if c not in aside]
    if both:
        words = len(_WORD.findall("\n".join(discussion.prose(c.cell) for c in both)))
        where = f'cell {both[0].cell.number} "{snippet(both[0].sentence)}"'
        if words >= min_words:
            return Verdict("discussion", PASS, f"{where}: {words} words comparing the models on results")
        return Verdict("discussion", WARN, f"{where}: compares the models in only {words} words "
                       f"(expected at least {min_words})")
    if found and len(view.models_built) == 2:
        where = f'cell {found[0].cell.number} "{snippet(found[0].sentence)}"'
        return Verdict("discussion", WARN, f"{where}: a comparison in passing that names only one model; no "
                       "cell compares model 1 and model 2 on a result")
    headed = [c for c in view.cells if c.cell_type == "markdown" and discussion.prose(c).strip()
              and _DISCUSSION_HEADING.search(view.section_title[c.number])]
    if headed:
        return Verdict("discussion", FAIL, f"{cite(headed[0], discussion.prose(headed[0]))}: a discussion section, "
                       "but no sentence compares the models on a result (accuracy, loss, curves, confusion, speed, "
                       "attributions)")
    return Verdict("discussion", FAIL, "no markdown compares model 1 and model 2 on a result")


def interpreting_cells(view: NotebookView, skip: set[int]) -> list[Cell]:
    """Markdown that sits right after a result (only markdown in between) and says what it means."""
    found, after_result = [], False
    for cell in view.cells:
        if cell.is_code:
            after_result = cell.shows_result
            continue
        if cell.cell_type != "markdown" or cell.number in skip:
            continue
        prose = discussion.prose(cell)
        if after_result and (_NUMBER.search(prose) or _INTERPRETS.search(prose)):
            found.append(cell)
    return found


def detect_narrative(view: NotebookView, params: dict) -> Verdict:
    min_words, min_cells = int(params.get("min_words", 250)), int(params.get("min_interpreting_cells", 3))
    skip = {c.number for c in _discussion_cells(view)}   # the discussion is its own criterion
    words = sum(len(_WORD.findall(discussion.prose(c))) for c in view.cells
                if c.cell_type == "markdown" and c.number not in skip)
    interpreting = interpreting_cells(view, skip)
    summary = f"{words} words of markdown, {len(interpreting)} cells interpreting results next to them"
    example = f" (e.g. {cite(interpreting[0], discussion.prose(interpreting[0]))})" if interpreting else ""
    if words >= min_words and len(interpreting) >= min_cells:
        return Verdict("narrative", PASS, summary + example)
    needed = f"; expected at least {min_words} words and {min_cells} interpreting cells"
    if words >= min_words // 2 and interpreting:
        return Verdict("narrative", WARN, summary + example + needed)
    return Verdict("narrative", FAIL, summary + needed)
