"""Heuristic detectors: find rubric evidence in notebooks that carry no evidence records.

Each detector reads code, outputs and headings of a ``NotebookView`` and returns Verdicts whose
evidence cites 1-based cell numbers and quotes a short snippet. Nothing is executed.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cached_property

from . import sections
from .cells import Cell
from .codeparse import (Definition, LayerCount, ParsedCell, base_names, call_name, count_weight_layers, parse_cell,
                        regex_weight_layers)
from .results import FAIL, PASS, WARN, Verdict

SNIPPET_CHARS = 80
MODELS = ("model1", "model2")


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


@dataclass
class Site:
    """A place where a step is done: a top-level statement that does it directly or calls a helper."""
    cell: Cell
    text: str
    models: set[str]
    attributed_by: str   # "arguments", "section" or "" (unknown)


@dataclass
class NotebookView:
    cells: list[Cell]
    code: list[Cell] = field(init=False)
    parsed: dict[int, ParsedCell] = field(init=False)

    def __post_init__(self):
        self.code = [c for c in self.cells if c.is_code and not c.is_empty]
        self.parsed = {c.number: parse_cell(c.source) for c in self.code}

    @cached_property
    def section_model(self) -> dict[int, str | None]:
        return sections.section_models(self.cells)

    @cached_property
    def section_title(self) -> dict[int, str]:
        return sections.section_titles(self.cells)

    @cached_property
    def definitions(self):
        return [(cell, d) for cell in self.code for d in self.parsed[cell.number].definitions]

    def next_code_cell(self, cell: Cell) -> Cell | None:
        later = [c for c in self.code if c.number > cell.number]
        return later[0] if later else None

    @cached_property
    def model1_candidates(self):
        return model1_candidates(self)

    @cached_property
    def model_variables(self) -> tuple[set[str], set[str]]:
        """Variables assigned a model1 (own ConvNet class) or model2 (torchvision constructor) object;
        a name assigned both is ambiguous and dropped."""
        model1_classes = {d.name for _, d, _ in self.model1_candidates}
        one, two = set(), set()
        for cell in self.code:
            tree = self.parsed[cell.number].tree
            if tree is None:
                continue
            for node in tree.body:   # models are made at the top level of a cell, not inside helpers
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                    name = call_name(node.value)
                    targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
                    if name in model1_classes:
                        one |= targets
                    elif re.fullmatch(_TORCHVISION_ARCH, name) or name == "get_model":
                        two |= targets
        return one - two, two - one

    @cached_property
    def discussion_cells(self) -> list[Cell]:
        return discussion_cells(self)

    def attribute(self, cell: Cell, text: str) -> tuple[set[str], str]:
        one, two = self.model_variables
        named = sections.models_named(text, one, two)
        if named:
            return named, "arguments"
        model = self.section_model.get(cell.number)
        return ({model}, "section") if model else (set(), "")

    def sites(self, marker: re.Pattern, context: re.Pattern | None = None) -> list[Site]:
        """Statements that match ``marker`` (in a cell whose code matches ``context``) or that call a
        notebook-defined function whose body does; helpers calling helpers are followed two levels."""
        helpers = set()
        for _ in range(2):
            for _, d in self.definitions:
                if d.kind == "def" and d.name not in helpers and (
                        (marker.search(d.text) and (context is None or context.search(d.text)))
                        or any(re.search(rf"\b{h}\s*\(", d.text) for h in helpers)):
                    helpers.add(d.name)
        helper_call = re.compile(r"\b(?:%s)\s*\(" % "|".join(map(re.escape, sorted(helpers)))) if helpers else None
        found = []
        for cell in self.code:
            statements = self.parsed[cell.number].statements
            direct_ok = context is None or context.search("\n".join(statements))
            for text in statements:
                if (direct_ok and marker.search(text)) or (helper_call and helper_call.search(text)):
                    models, how = self.attribute(cell, text)
                    found.append(Site(cell, text, models, how))
        return found


# --- structural criteria -------------------------------------------------------------------------

_TEAM_NAME = re.compile(r"[A-Za-z0-9_-]+")


def suggest_team_name(name: str) -> str:
    """The name build.py would accept: Kaggle's spaces become underscores, other characters go."""
    name = re.sub(r"\s+", "_", name.strip())
    return re.sub(r"[^A-Za-z0-9_-]", "", name)


def detect_filename(filename: str, team: str | None) -> Verdict:
    stem, dot, ext = filename.rpartition(".")
    if not dot or ext != "ipynb":
        return Verdict("filename", FAIL, f'"{filename}" does not end in .ipynb')
    if not _TEAM_NAME.fullmatch(stem):
        return Verdict("filename", FAIL, f'"{filename}" is not a valid team name (letters, digits, _ and - '
                       f'only); rename it {suggest_team_name(stem) or "Team_Name"}.ipynb')
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
                                                                    following.source, re.I) else "")
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
        return Verdict("run_order", WARN, "no cell has an execution count")
    if problems:
        more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
        return Verdict("run_order", WARN, "cells run out of order: " + ", ".join(problems[:5]) + more)
    extra = f" ({restarts} restarts at chapter markers)" if restarts else ""
    return Verdict("run_order", PASS, "execution counts increase top to bottom" + extra)


# --- data -----------------------------------------------------------------------------------------

_SPLIT = re.compile(r"\b(train_test_split|random_split|StratifiedShuffleSplit|StratifiedKFold|KFold|"
                    r"ShuffleSplit|SubsetRandomSampler|stratified_split)\s*\(")
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

_TORCHVISION_ARCH = r"(?:%s)\w*" % "|".join(a for a in sections.ARCH_NAMES if a not in ("vit", "swin")) \
    + r"|vit_\w+|swin_\w+"
_ARCH_CALL = re.compile(r"\b(%s)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)" % _TORCHVISION_ARCH, re.I)
_GET_MODEL = re.compile(r"\bget_model\s*\(\s*['\"](\w+)['\"]([^()]*(?:\([^()]*\)[^()]*)*)\)")
_IMAGENET_WEIGHTS = re.compile(r"weights\s*=\s*(?:[\w.]*IMAGENET\w*|[\w.]*DEFAULT|['\"](?:DEFAULT|IMAGENET1K_\w+)['\"])")
_WEIGHTS_ENUM = re.compile(r"\b\w+_Weights\.(?:IMAGENET\w*|DEFAULT)\b|['\"](?:DEFAULT|IMAGENET1K_\w+)['\"]")
_WEIGHTS_VAR = re.compile(r"weights\s*=\s*(?!None\b)[A-Za-z_]\w*\s*(?:[,)]|$)")
_RANDOM = re.compile(r"pretrained\s*=\s*False|weights\s*=\s*None")
_TIMM = re.compile(r"timm\.create_model\s*\([^)]*pretrained\s*=\s*True")
_WEIGHT_FILE = re.compile(r"load_state_dict\s*\(.*\.(?:pth|pt)\b")


def model1_candidates(view: NotebookView) -> list[tuple[Cell, Definition, LayerCount]]:
    """Own ConvNets with their weight-layer counts: nn.Module subclasses and nn.Sequential assignments
    that build at least one convolution (directly or through a block defined in the notebook). Blocks
    that other candidates are built from (a ConvBlock) are not candidates themselves."""
    helpers = _helper_counts(view)
    candidates = []
    for cell, d in view.definitions:
        if d.kind != "class" or _ARCH_CALL.search(d.text):
            continue
        if d.node is None:
            if "Conv2d" in d.text and re.search(r"\(\s*(?:nn\.)?Module\s*\)", d.text):
                candidates.append((cell, d, regex_weight_layers(d.text)))
        elif any(b in ("Module", "Sequential") for b in base_names(d.node)):
            count = count_weight_layers(d.node, {k: v for k, v in helpers.items() if k != d.name})
            if _has_conv(count):
                candidates.append((cell, d, count))
    for cell in view.code:
        for text in view.parsed[cell.number].statements:
            if not re.search(r"\bSequential\s*\(", text) or _ARCH_CALL.search(text):
                continue
            tree = ast.parse(text) if _parses(text) else None
            count = count_weight_layers(tree, helpers) if tree else regex_weight_layers(text)
            if _has_conv(count):
                name = re.match(r"\s*([\w.]+)\s*=", text)
                candidates.append((cell, Definition("sequential", name.group(1) if name else "Sequential", text),
                                   count))
    return [(cell, d, count) for cell, d, count in candidates
            if not any(other is not d and re.search(rf"\b{re.escape(d.name)}\s*\(", other.text)
                       for _, other, _ in candidates)]


def _has_conv(count: LayerCount) -> bool:
    return bool(count.by_type.get("Conv2d") or count.by_type.get("LazyConv2d"))


def _helper_counts(view: NotebookView) -> dict[str, LayerCount]:
    """Weight layers built by each notebook-defined block (class or function), for expanding calls."""
    counts: dict[str, LayerCount] = {}
    for _ in range(2):   # blocks built from blocks
        for _, d in view.definitions:
            if d.node is not None:
                counts[d.name] = count_weight_layers(d.node, {k: v for k, v in counts.items() if k != d.name})
    return counts


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
        return Verdict("model1_small_convnet", WARN, f"{where}: {count.describe()} (layers built in a loop: "
                       f"check that the real count is at most {high})")
    return Verdict("model1_small_convnet", PASS, f"{where}: {count.describe()} (allowed {low}..{high})")


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except SyntaxError:
        return False


def detect_model2(view: NotebookView) -> Verdict:
    enum_cells = [c for c in view.code if _ok(c) and _WEIGHTS_ENUM.search(c.source)]
    random_hit = timm_hit = file_hit = broken = None
    for cell in view.code:
        calls = [(m.group(0), m.group(2)) for m in _ARCH_CALL.finditer(cell.source)]
        calls += [(m.group(0), m.group(2)) for m in _GET_MODEL.finditer(cell.source)]
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
        if _TIMM.search(cell.source) and _ok(cell) and timm_hit is None:
            timm_hit = cell
        if _WEIGHT_FILE.search(cell.source) and _ok(cell) and file_hit is None:
            file_hit = cell
    if timm_hit:
        return Verdict("model2_pretrained", WARN, f"{cite(timm_hit, timm_hit.source, _TIMM)}: pretrained "
                       "weights through timm, not torchvision")
    if file_hit:
        return Verdict("model2_pretrained", WARN, f"{cite(file_hit, file_hit.source, _WEIGHT_FILE)}: weights "
                       "loaded from a file; check it holds ImageNet weights")
    if broken:
        return Verdict("model2_pretrained", FAIL, f"{cite(broken, broken.source, _ARCH_CALL)} asks for ImageNet "
                       f"weights but {'never ran' if not broken.ran else 'ended in an error'}")
    if random_hit:
        cell, call = random_hit
        return Verdict("model2_pretrained", FAIL, f'cell {cell.number} "{snippet(call)}": random weights, '
                       "not ImageNet")
    return Verdict("model2_pretrained", FAIL, "no torchvision model with ImageNet weights found")


# --- per-model steps: tuning, curves, confusion matrices, Captum ---------------------------------

_TUNE = re.compile(r"\btune\.run\s*\(|\bTuner\s*\(|\btune\.run_experiments\s*\(")
_CURVE_PLOT = re.compile(r"\bplt\.plot\s*\(|\.plot\s*\(|\blineplot\s*\(|\bax\w*\.plot\s*\(")
_CURVE_WHAT = re.compile(r"loss|acc", re.I)
_CONFUSION = re.compile(r"\bconfusion_matrix\s*\(|\bConfusionMatrixDisplay\b|\bplot_confusion\w*\s*\(|"
                        r"\bheatmap\s*\(|\bcrosstab\s*\(")
_CONFUSION_WHAT = re.compile(r"confus|\bcm\w*\b|crosstab", re.I)
_CAPTUM = re.compile(r"\b(?:Occlusion|Saliency|IntegratedGradients|NoiseTunnel|GuidedGradCam|LayerGradCam|"
                     r"GuidedBackprop|Deconvolution|DeepLift\w*|GradientShap|InputXGradient|FeatureAblation|"
                     r"ShapleyValueSampling|Lime|KernelShap|LayerConductance|LayerIntegratedGradients)\s*\(|"
                     r"\bvisualize_image_attr\w*\s*\(")


def _has_output(cell: Cell) -> bool:
    return bool(cell.outputs)


def _per_model(view: NotebookView, stem: str, sites: list[Site], good, what: str, bad_reason) -> dict[str, Verdict]:
    """Turn sites into one verdict per model: pass for a good site attributed to it, warn for a good site
    that could not be attributed, fail otherwise (saying what was wrong with the sites that were found)."""
    verdicts = {}
    for model in MODELS:
        cid = f"{stem}_{model}"
        mine = [s for s in sites if model in s.models]
        hit = next((s for s in mine if good(s.cell)), None)
        if hit:
            by = f" (by its {hit.attributed_by})" if hit.attributed_by == "arguments" else \
                 f' (section "{snippet(view.section_title[hit.cell.number])}")'
            verdicts[cid] = Verdict(cid, PASS, f"{cite(hit.cell, hit.text)}: {what}{by}")
            continue
        unknown = next((s for s in sites if not s.models and good(s.cell)), None)
        if unknown:
            verdicts[cid] = Verdict(cid, WARN, f"{cite(unknown.cell, unknown.text)}: {what}, but neither its "
                                    f"arguments nor its section say which model")
            continue
        if mine:
            s = mine[0]
            verdicts[cid] = Verdict(cid, FAIL, f"{cite(s.cell, s.text)}: {bad_reason(s.cell)}")
        else:
            verdicts[cid] = Verdict(cid, FAIL, f"nothing found for {model.replace('model', 'model ')}: "
                                    f"expected {what}")
    return verdicts


def _why_not(cell: Cell, needs: str) -> str:
    if not cell.ran:
        return "the cell never ran"
    if cell.has_error:
        return f"the cell ended in an error ({snippet(cell.errors[0].text)})"
    return f"the cell shows no {needs}"


def detect_tuning(view: NotebookView) -> dict[str, Verdict]:
    # tuner = tune.Tuner(...) in one cell, tuner.fit() (which prints the results) in another
    tuners = set(re.findall(r"(\w+)\s*=\s*(?:tune\.)?Tuner\s*\(", "\n".join(c.source for c in view.code)))
    marker = _TUNE if not tuners else re.compile(
        _TUNE.pattern + r"|\b(?:%s)\.fit\s*\(" % "|".join(map(re.escape, sorted(tuners))))
    sites = view.sites(marker)
    return _per_model(view, "tuning", sites, lambda c: _ok(c) and _has_output(c), "a Ray Tune run with results",
                      lambda c: _why_not(c, "output"))


def detect_curves(view: NotebookView) -> dict[str, Verdict]:
    sites = view.sites(_CURVE_PLOT, _CURVE_WHAT)
    return _per_model(view, "curves", sites, lambda c: _ok(c) and c.has_image, "a loss/accuracy plot",
                      lambda c: _why_not(c, "image"))


def detect_confusion(view: NotebookView) -> dict[str, Verdict]:
    sites = view.sites(_CONFUSION, _CONFUSION_WHAT)
    return _per_model(view, "confusion", sites, lambda c: _ok(c) and _has_output(c), "a confusion matrix",
                      lambda c: _why_not(c, "output"))


def detect_captum(view: NotebookView) -> dict[str, Verdict]:
    sites = view.sites(_CAPTUM)

    def shows_images(cell: Cell) -> bool:
        if not _ok(cell):
            return False
        following = view.next_code_cell(cell)   # attributions computed here, plotted in the next cell
        return cell.has_image or (following is not None and _ok(following) and following.has_image)

    return _per_model(view, "captum", sites, shows_images, "Captum attributions shown as images",
                      lambda c: _why_not(c, "image"))


# --- confusion fix, submission, narrative, discussion --------------------------------------------

_FIX = re.compile(r"CrossEntropyLoss\s*\([^)]*weight\s*=|\bWeightedRandomSampler\b|\bcompute_class_weight\b|"
                  r"\bclass_weights?\b|\bpos_weight\b|\boversampl\w*|\bRandomOverSampler\b|\bSMOTE\b|"
                  r"\bFocalLoss\b|\bfocal_loss\b|\bclass_weights\s*\(", re.I)
_AUGMENT = re.compile(r"\b(?:RandomHorizontalFlip|RandomVerticalFlip|RandomRotation|ColorJitter|"
                      r"RandomResizedCrop|RandomAffine|RandAugment|TrivialAugmentWide|AutoAugment|"
                      r"RandomErasing|GaussianBlur)\b|albumentations")
_ABOUT_CONFUSION = re.compile(r"confus|imbalanc|minority|under-?represented|misclassif|mix(?:es|ed)? up", re.I)


def detect_confusion_fix(view: NotebookView) -> Verdict:
    fixes = [c for c in view.code if _ok(c) and _FIX.search(c.source)]
    if fixes:
        return Verdict("confusion_fix", PASS, f"{cite(fixes[0], fixes[0].source, _FIX)}: class weights or "
                       "resampling against the imbalance behind the confusion")
    augment = [c for c in view.code if _ok(c) and _AUGMENT.search(c.source)]
    for cell in augment:
        title = view.section_title[cell.number]
        section_text = "\n".join(c.source for c in view.cells
                                 if c.cell_type == "markdown" and view.section_title[c.number] == title)
        if _ABOUT_CONFUSION.search(section_text):
            return Verdict("confusion_fix", PASS, f"{cite(cell, cell.source, _AUGMENT)}: augmentation in a "
                           f'section about the confusion ("{snippet(title)}")')
    if augment:
        return Verdict("confusion_fix", WARN, f"{cite(augment[0], augment[0].source, _AUGMENT)}: augmentation, "
                       "but nothing ties it to the worst confusion")
    return Verdict("confusion_fix", FAIL, "no class weights, weighted sampler, oversampling or targeted "
                   "augmentation found")


_SUBMISSION_FILE = re.compile(r"""['"][^'"\n]*submission[^'"\n]*\.csv['"]""", re.I)
_WRITES = re.compile(r"\.to_csv\s*\(|\bopen\s*\([^)]*['\"]w|csv\.writer|\.write\s*\(")


def detect_submission(view: NotebookView) -> Verdict:
    writers = [c for c in view.code if _SUBMISSION_FILE.search(c.source) and _WRITES.search(c.source)]
    good = [c for c in writers if _ok(c)]
    if good:
        return Verdict("submission", PASS, f"{cite(good[0], good[0].source, _WRITES)}: writes submission.csv")
    if writers:
        cell = writers[-1]
        return Verdict("submission", FAIL, f"{cite(cell, cell.source, _WRITES)} writes submission.csv but "
                       f"{'never ran' if not cell.ran else 'ended in an error'}")
    return Verdict("submission", FAIL, "no cell writes submission.csv")


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+(?:\.\d+)?%?")
_NUMBER = re.compile(r"\d+(?:\.\d+)?\s*%|\b\d*\.\d+\b")
_INTERPRETS = re.compile(r"\b(?:shows?|suggests?|because|indicates?|we see|observe\w*|better|worse|improv\w*|"
                         r"overfit\w*|underfit\w*|converge\w*|confus\w*|misclassif\w*|higher|lower|"
                         r"likely|reason|means?|explain\w*)\b", re.I)
_COMPARES = re.compile(r"\b(?:better|worse|outperform\w*|higher|lower|than|compared?|comparison|whereas|"
                       r"while|advantage\w*|trade-?offs?|both models|faster|slower)\b", re.I)
_DISCUSSION_HEADING = re.compile(r"discussion|conclusion|comparison|compar|summary|evaluation|reflection", re.I)


def _prose(cell: Cell) -> str:
    """Markdown without headings, code blocks and HTML tags."""
    text = re.sub(r"```.*?```", " ", cell.source, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _names_both_models(text: str) -> bool:
    return bool((sections._HEADING_MODEL1.search(text) and sections._HEADING_MODEL2.search(text))
                or re.search(r"\b(?:both|two) models\b", text, re.I))


def discussion_cells(view: NotebookView) -> list[Cell]:
    """Markdown cells after the first results that compare the models: under a discussion heading, or
    naming both and comparing (an introduction that announces both models is not a discussion)."""
    found, seen_results = [], False
    for cell in view.cells:
        seen_results = seen_results or (cell.is_code and bool(cell.outputs))
        if cell.cell_type != "markdown" or not seen_results:
            continue
        prose = _prose(cell)
        under_heading = _DISCUSSION_HEADING.search(view.section_title[cell.number])
        if prose.strip() and (under_heading or (_names_both_models(prose) and _COMPARES.search(prose))):
            found.append(cell)
    return found


def detect_discussion(view: NotebookView, params: dict) -> Verdict:
    min_words = int(params.get("min_words", 60))
    cells = view.discussion_cells
    if not cells:
        return Verdict("discussion", FAIL, "no markdown compares model 1 and model 2")
    text = "\n".join(_prose(c) for c in cells)
    words = len(_WORD.findall(text))
    where = cite(cells[0], _prose(cells[0]))
    if words >= min_words and _names_both_models(text) and _COMPARES.search(text):
        return Verdict("discussion", PASS, f"{where}: {words} words comparing the models")
    return Verdict("discussion", WARN, f"{where}: a discussion of {words} words that does not clearly compare "
                   f"both models (expected at least {min_words} words naming both)")


def detect_narrative(view: NotebookView, params: dict) -> Verdict:
    min_words, min_cells = int(params.get("min_words", 250)), int(params.get("min_interpreting_cells", 3))
    skip = {c.number for c in view.discussion_cells}   # the discussion is its own criterion
    words, interpreting, seen_results = 0, [], False
    for cell in view.cells:
        if cell.is_code:
            seen_results = seen_results or bool(cell.outputs)
            continue
        if cell.cell_type != "markdown" or cell.number in skip:
            continue
        prose = _prose(cell)
        words += len(_WORD.findall(prose))
        if seen_results and (_NUMBER.search(prose) or _INTERPRETS.search(prose)):
            interpreting.append(cell)
    summary = f"{words} words of markdown, {len(interpreting)} cells interpreting results"
    example = f" (e.g. {cite(interpreting[0], _prose(interpreting[0]))})" if interpreting else ""
    if words >= min_words and len(interpreting) >= min_cells:
        return Verdict("narrative", PASS, summary + example)
    needed = f"; expected at least {min_words} words and {min_cells} interpreting cells"
    if words >= min_words // 2 and interpreting:
        return Verdict("narrative", WARN, summary + example + needed)
    return Verdict("narrative", FAIL, summary + needed)
