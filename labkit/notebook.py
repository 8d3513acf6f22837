"""What every chapter does first, and small helpers for showing things in a notebook.

``ChapterParameters`` is the one definition of the parameters every chapter takes (names, types,
defaults). ``start_chapter`` turns them into a ``ChapterContext`` (profile, run folder, device,
data), seeds everything and sets figure defaults, so each chapter opens with one line instead of twenty.
``say`` shows generated Markdown (interpretations quote this run's numbers, so they are built from
results, never typed as fixed prose); ``show_source`` shows the tested code a chapter relies on, so the
notebook displays the one copy that the tests check.
"""
from __future__ import annotations

import inspect
import json
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class ChapterParameters:
    """The chapter-parameter contract: every name, type and default a chapter's parameters cell holds.

    build.py fills it from its options, the Kaggle copy from Kaggle's folders, and each chapter hands all of
    it to ``start_chapter`` with ``**chapter_parameters(globals())``. The defaults let a chapter run by hand
    after a quick build. tests/test_notebook.py checks every chapter's parameters cell against this class.
    """
    team: str = "Dogs_Versus_Cats"
    data_dir: str = ".cache/stub/quick-seed0"
    is_stub: bool = True
    profile: str = "quick"
    run_dir: str = "build/run"
    cache_dir: str = ".cache"
    device: str = "auto"
    ray_address: str = ""     # "" starts Ray on this machine; "HOST:PORT" joins a running cluster
    weights_file: str = ""    # "" uses torchvision's cache (or a download); else this ImageNet weights file
    submission_file: str = ""  # also write the chosen submission.csv here ("" = only into the run folder)
    seed: int = 0

    def __post_init__(self):
        for f in fields(self):  # papermill passes whatever it is given: catch a wrong type here, by name
            value = getattr(self, f.name)
            if type(value) is not _TYPES[f.type]:
                raise TypeError(f"chapter parameter {f.name} = {value!r} should be a {f.type}, "
                                f"not {type(value).__name__}")

    def source(self, comment: str) -> str:
        """The text of a parameters cell holding these values."""
        return "\n".join([f"# {comment}"] + [f"{f.name} = {_literal(getattr(self, f.name))}"
                                          for f in fields(self)])


_TYPES = {"str": str, "bool": bool, "int": int}


def _literal(value) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)  # "double quotes", as chapters write


PARAMETER_NAMES = tuple(f.name for f in fields(ChapterParameters))


def chapter_parameters(namespace: dict) -> dict:
    """The contract's parameters out of a chapter's namespace (``globals()``), by name."""
    missing = [name for name in PARAMETER_NAMES if name not in namespace]
    if missing:
        raise NameError(f"the parameters cell does not set {', '.join(missing)}: copy the parameters cell of "
                        "chapters/01_data.py (names and defaults: labkit.notebook.ChapterParameters)")
    return {name: namespace[name] for name in PARAMETER_NAMES}


@dataclass
class ChapterContext:
    chapter: str
    params: ChapterParameters
    profile: object       # labkit.profiles.Profile
    run: object           # labkit.artifacts.RunDir
    device: object        # torch.device
    data: object          # labkit.data.NucleiData
    # where the chapter's time goes: `with ctx.timer.phase("training"):` (run/timing/<chapter>.json)
    timer: object = None  # labkit.timing.PhaseTimer

    # the parameters chapters use most, by their plain names
    seed = property(lambda self: self.params.seed)
    is_stub = property(lambda self: self.params.is_stub)
    ray_address = property(lambda self: self.params.ray_address)
    weights_file = property(lambda self: self.params.weights_file)
    submission_file = property(lambda self: self.params.submission_file)


def start_chapter(chapter: str, *, load_data: bool = True, **parameters) -> ChapterContext:
    """Seed, set figure defaults, open the run folder and load the data, from the chapter's parameters.

    ``parameters`` are exactly the fields of :class:`ChapterParameters`; the chapter passes them all with
    ``start_chapter("NN_name", **chapter_parameters(globals()))``. What each chapter received is saved as
    ``parameters/NN_name.json`` in the run folder, so a run can be checked against the command that made it.
    """
    import matplotlib

    from labkit.artifacts import RunDir
    from labkit.profiles import get_profile
    from labkit.timing import PhaseTimer
    from labkit.train import pick_device, seed_everything

    unknown = sorted(set(parameters) - set(PARAMETER_NAMES))
    missing = [name for name in PARAMETER_NAMES if name not in parameters]
    if unknown or missing:
        raise TypeError(f"start_chapter({chapter!r}): " + "; ".join(filter(None, [
            f"unknown parameter(s) {', '.join(unknown)}" if unknown else "",
            f"missing parameter(s) {', '.join(missing)}" if missing else ""]))
            + ". Pass **chapter_parameters(globals()) after a parameters cell that matches "
            "labkit.notebook.ChapterParameters.")
    params = ChapterParameters(**parameters)
    # Captum imports tqdm.auto, which complains when ipywidgets is missing; its bars are not used here
    warnings.filterwarnings("ignore", message="IProgress not found")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10,
                                "axes.titlesize": 11, "figure.max_open_warning": 0})
    seed_everything(params.seed)
    prof = get_profile(params.profile)
    run = RunDir(params.run_dir, chapter=chapter)
    run.save_json(f"parameters/{chapter}.json", asdict(params))
    timer = PhaseTimer(chapter, run)  # its before_timer: kernel start and imports
    data = None
    if load_data:
        from labkit.data import prepare

        with timer.phase("data"):
            data = prepare(params.data_dir, params.cache_dir, run_dir=params.run_dir,
                           val_fraction=prof.val_fraction, seed=params.seed)
    return ChapterContext(chapter, params, prof, run, pick_device(params.device), data, timer)


def say(markdown: str) -> None:
    """Show generated Markdown in the notebook (plain print outside one)."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(markdown))
            return
    except ImportError:
        pass
    print(markdown)


def show_source(*objects) -> None:
    """Show the source of functions or classes from labkit as a highlighted code block."""
    blocks = []
    for obj in objects:
        source = inspect.getsource(obj)
        where = Path(inspect.getsourcefile(obj)).name
        blocks.append(f"*`{obj.__qualname__}` from `labkit/{where}`:*\n\n```python\n{source.rstrip()}\n```")
    say("\n\n".join(blocks))


def show_figure(fig, run=None, name: str | None = None) -> None:
    """Display a matplotlib figure (and save the same PNG into the run folder when given).

    The figure is rendered once, as the inline backend would render it (tight bounding box, the
    figure's dpi), and the PNG bytes are both displayed and saved: rendering it twice cost a second per
    Captum figure."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    try:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        png = buffer.getvalue()
        if run is not None and name:
            run.save_bytes(f"figures/{name}.png", png)
        display(Image(data=png, format="png"))
    finally:
        plt.close(fig)


def pct(x: float, digits: int = 1) -> str:
    """0.8734 -> '87.3%'."""
    return f"{100 * x:.{digits}f}%"
