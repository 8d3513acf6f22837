"""What every chapter does first, and small helpers for showing things in a notebook.

``start_chapter`` turns the papermill parameters into a ``ChapterContext`` (profile, run folder, device,
data), seeds everything and sets figure defaults, so each chapter opens with one line instead of twenty.
``say`` shows generated Markdown (interpretations quote this run's numbers, so they are built from
results, never typed as fixed prose); ``show_source`` shows the tested code a chapter relies on, so the
notebook displays the one copy that the tests check.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ChapterContext:
    chapter: str
    profile: "object"       # labkit.profiles.Profile
    run: "object"           # labkit.artifacts.RunDir
    device: "object"        # torch.device
    data: "object"          # labkit.data.NucleiData
    seed: int
    is_stub: bool
    ray_address: str
    weights_file: str


def start_chapter(chapter: str, *, data_dir: str, cache_dir: str, run_dir: str, profile: str,
                  device: str = "auto", seed: int = 0, is_stub: bool = True, ray_address: str = "",
                  weights_file: str = "", load_data: bool = True) -> ChapterContext:
    import matplotlib

    from labkit.artifacts import RunDir
    from labkit.profiles import get_profile
    from labkit.train import pick_device, seed_everything

    # Captum imports tqdm.auto, which complains when ipywidgets is missing; its bars are not used here
    warnings.filterwarnings("ignore", message="IProgress not found")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "font.size": 10,
                                "axes.titlesize": 11, "figure.max_open_warning": 0})
    seed_everything(seed)
    prof = get_profile(profile)
    run = RunDir(run_dir, chapter=chapter)
    data = None
    if load_data:
        from labkit.data import prepare

        data = prepare(data_dir, cache_dir, run_dir=run_dir, val_fraction=prof.val_fraction, seed=seed)
    return ChapterContext(chapter, prof, run, pick_device(device), data, seed, bool(is_stub),
                          ray_address, weights_file)


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
    """Display a matplotlib figure once (and save a PNG copy into the run folder when given)."""
    import matplotlib.pyplot as plt

    if run is not None and name:
        import io

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        run.save_bytes(f"figures/{name}.png", buffer.getvalue())
    try:
        from IPython.display import display

        display(fig)
    finally:
        plt.close(fig)


def pct(x: float, digits: int = 1) -> str:
    """0.8734 -> '87.3%'."""
    return f"{100 * x:.{digits}f}%"
