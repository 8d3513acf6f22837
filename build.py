#!/usr/bin/env python
"""Build one fully executed coursework notebook: data -> chapters -> TEAM.ipynb -> self-check.

    python build.py --team Dogs_Versus_Cats                  # synthetic stub data, standard profile
    python build.py --team Dogs_Versus_Cats --data ~/kaggle  # the real Kaggle data
    python build.py --team Dogs_Versus_Cats --only 05        # re-run chapter 05 (and what depends on it)
    python build.py --team Dogs_Versus_Cats --fresh          # re-run every chapter

Each chapter in chapters/ is a jupytext percent script. It is executed by papermill in a kernel of its
own with the build's parameters; chapters hand results to each other only through the run folder
(OUT/run). The executed chapters are then assembled into OUT/TEAM.ipynb (written atomically, so a failed
build leaves the last good notebook in place), exported to OUT/TEAM.html, and checked by grading/. While
chapters run, a line per chapter shows its cells done and what it is doing (labkit.progress).

Rebuilds redo only what changed. Running the same command again re-executes a chapter only when its script,
the labkit code it runs (object by object), the options, the data or the environment changed, or when a
run-folder file it read from another chapter is no longer byte for byte what it read; a chapter after a
re-run one is checked at its turn, so it re-runs when the re-run changed what it reads. Unchanged chapters
keep their executed notebooks, and a build with no change only re-assembles. ``--fresh`` re-runs
everything; ``--only NN`` re-runs chapter NN and, after it, every chapter that is then out of date, and
refuses, naming them, while a chapter before NN is out of date: a notebook never mixes two runs.

Why content hashes kept in the run folder (chapter_inputs.py, ``run/chapter_inputs.json``) and not
jupyter-cache, which Jupyter Book uses: jupyter-cache keys an executed notebook by its code cells alone, so
it would miss what decides here whether a chapter is current (a change inside labkit, a file another chapter
wrote) and would re-run a chapter for a markdown edit only if told to; it also executes notebooks itself,
one kernel each, where this build runs chapters side by side in warm kernels. What is kept instead is a
SHA-256 per input, which also says why a chapter runs again.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import jupytext
import nbformat

import forked_kernels
import kaggle_dataset
import portable_paths
from grading.handin.names import TEAM_NAME, suggest_team_name
from labkit import configuration as labkit_configuration
from labkit import navigation
from labkit.notebook import REPORT_TAG, ChapterParameters, expand_listings

REPO = Path(__file__).resolve().parent
CHAPTERS_DIR = REPO / "chapters"
KERNEL_NAME = "nuclei-coursework"


class BuildError(RuntimeError):
    """A build step failed; the message says which and what to do."""


# -- team name (the rule is the grader's: grading.handin.names) ------------------------------------------
def check_team_name(name: str) -> str:
    if TEAM_NAME.match(name):
        return name
    raise BuildError(
        f"team name {name!r} cannot be a notebook file name: use letters, digits, '_' and '-' only "
        f"(at most 80). Try: --team {suggest_team_name(name)}"
    )


# -- chapters --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chapter:
    id: str        # "03_model2"
    number: str    # "03"
    path: Path
    title: str     # first markdown heading


def find_chapters(directory: Path | None = None) -> list[Chapter]:
    directory = directory or CHAPTERS_DIR
    chapters = []
    for path in sorted(directory.glob("[0-9][0-9]_*.py")):
        title = path.stem
        for line in path.read_text().splitlines():
            if line.startswith("# # "):  # the first markdown heading of a percent script
                title = line[4:].strip()
                break
        chapters.append(Chapter(path.stem, path.stem[:2], path, title))
    if not chapters:
        raise BuildError(f"no chapters found in {directory} (expected files like 01_data.py)")
    return chapters


# -- kernel ----------------------------------------------------------------------------------------
def kernels_dir(out: Path) -> Path:
    return out / ".jupyter" / "kernels"


def ensure_kernel(out: Path) -> dict:
    """A kernelspec for *this* interpreter, in a private folder, so papermill never picks a stranger.

    Returns the environment for papermill (JUPYTER_PATH points at the folder; PYTHONPATH at the repo so
    chapters import labkit even when it is not installed).
    """
    share = out / ".jupyter"
    spec_dir = kernels_dir(out) / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        # log level CRITICAL: keeps the kernel's start-up chatter out of the build's progress lines
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.log_level=CRITICAL"],
        "display_name": f"Python {platform.python_version()} (nuclei coursework)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    env = {"JUPYTER_PATH": os.pathsep.join(filter(None, [str(share), os.environ.get("JUPYTER_PATH")])),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    return env


# -- data ------------------------------------------------------------------------------------------
def prepare_data(args, profile) -> tuple[Path, str]:
    """The data folder to use and a one-line description of it (the preflight checks what is in it)."""
    if args.data:
        data = Path(args.data).expanduser().resolve()
        return data, f"the data in {data}"  # the build cannot tell whether it is the competition's
    import data_stub

    stub = args.cache / "stub" / f"{profile.name}-seed{args.seed}"
    data_stub.make_stub(stub, n_train=profile.stub_train, n_test=profile.stub_test, seed=args.seed)
    return stub, (f"synthetic stub ({profile.stub_train} training and {profile.stub_test} test images, "
                  f"seed {args.seed}): numbers say nothing about the real data")


# -- preflight: everything that can be checked cheaply, before any chapter runs ---------------------
def check_data(data_dir: Path, cache_dir: Path, given_as: str | None) -> list[str]:
    """Problems with the data: layout, csv files, every image there and decodable, training and test set
    each. labkit.data's own readers do it, and decoding fills the image cache chapter 01 then reads."""
    import warnings

    from labkit.data import (
        DataError,
        DataWarning,
        find_layout,
        load_images,
        read_labels,
    )

    if not data_dir.is_dir():
        return [(f"data: --data {given_as}: no such folder. Point it at the folder holding train.csv "
                 "(or train.zip) from the competition's Data tab.")]
    try:
        layout = find_layout(data_dir, extract_dir=cache_dir / "extracted")
    except DataError as exc:
        return [f"data: {exc}"]
    if layout.example_csv is None:
        print(f"  note: no example.csv next to {layout.train_csv}: there is no test set to predict")
    problems = []
    for csv_path, folder in [(layout.train_csv, layout.train_dir), (layout.example_csv, layout.test_dir)]:
        if csv_path is None:
            continue
        try:
            # only the data's own warnings: the next step's kernels start in threads meanwhile, and
            # theirs (an unclosed event loop) are none of the user's business
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DataWarning)
                load_images(csv_path, folder, read_labels(csv_path).Filename.tolist(), cache_dir)
        except DataError as exc:
            problems.append(f"data: {exc}")
            continue
        for warning in caught:  # odd sizes are resized, not fatal; but the user should know now
            if issubclass(warning.category, DataWarning):
                print(f"  note: {warning.message}")
    return problems


def check_weights(weights_file: Path | None, required: bool) -> list[str]:
    """Problems with model2's ImageNet weights: a given file must load; a real-data build must have some."""
    import warnings

    from labkit.models import MissingWeightsError, WeightsError, build_model2

    if weights_file is None and not required:
        return []  # the stub may go on with random weights; chapter 03 says so plainly
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # chapter 03 reports what was loaded
            build_model2(weights_file=weights_file, allow_random=False)
    except (MissingWeightsError, WeightsError) as exc:
        need = "model2 needs ImageNet weights for a real-data build. " if required else ""
        return [f"weights: {need}{exc}"]
    return []


def check_ray(address: str | None) -> list[str]:
    """Problems with the Ray cluster at --ray-address: join it, count its CPUs, leave."""
    if not address:
        return []
    from labkit.cluster import ClusterError, check_cluster

    try:
        resources = check_cluster(address)
    except ClusterError as exc:
        return [f"ray: {exc}"]
    print(f"  Ray cluster at {address}: {resources.get('CPU', 0):.0f} CPUs, {resources.get('GPU', 0):.0f} GPUs")
    return []


def preflight(args, data_dir: Path) -> None:
    """Check the data, the weights and the cluster; report every problem at once, data first."""
    problems = (check_data(data_dir, args.cache.resolve(), args.data)
                + check_weights(args.weights.resolve() if args.weights else None, required=bool(args.data))
                + check_ray(args.ray_address))
    if problems:
        raise BuildError(f"{len(problems)} problem(s) found before running any chapter:\n"
                         + "\n".join(f"  {i}. {p}" for i, p in enumerate(problems, 1)))


# -- running one chapter ---------------------------------------------------------------------------
class WarmKernel:
    """A chapter's kernel, started before the chapter's turn, with the chapter's imports already loaded.

    A new kernel that imports torch, torchvision, pandas and matplotlib costs 4-13 s of CPU
    (``bench/build.py --breakdown``: start+imports). On Linux every kernel is a fork of one process that
    has imported them already (``forked_kernels``), which takes well under a second. Elsewhere each kernel
    imports them itself, while the previous step still runs, so that time overlaps the previous chapters'
    work instead of adding to the build. The imports run silently (no execution count, no output), so the
    executed chapter is what a fresh kernel gives: its own import cell finds the modules loaded, and the
    notebook still shows every import it needs.

    The kernel starts in a thread: a fork waits until the fork server has finished its imports, and the
    caller goes on meanwhile (the build checks the data).
    """

    def __init__(self, chapter: Chapter, env: dict, kernels_dir: Path, libraries: tuple[str, ...] = ()):
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        self._new_manager = lambda: KernelManager(
            kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels_dir)]))
        self._km = self._new_manager()
        if forked_kernels.available():
            forked_kernels.use_fork(self._km)
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, daemon=True,
                                        args=({**os.environ, **env}, chapter_imports(chapter, libraries)))
        self._thread.start()

    def _start(self, env: dict, code: str) -> None:
        try:
            try:
                self._km.start_kernel(env=env, cwd=str(REPO))
            except Exception as exc:
                if not isinstance(self._km.provisioner, forked_kernels.ForkProvisioner):
                    raise
                # the fork server failed (it could not start, or died): a kernel that imports for itself
                # is slower to start, and just as good
                print(f"  note: could not fork a kernel ({type(exc).__name__}: {exc}); starting one the usual way",
                      flush=True)
                self._km = self._new_manager()
                self._km.start_kernel(env=env, cwd=str(REPO))
        except BaseException as exc:  # noqa: BLE001 - raised where the kernel is wanted (``km``)
            self._start_error = exc
            return
        finally:
            self._started.set()
        client = self._km.blocking_client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=120)
            client.execute_interactive(code, silent=True, store_history=False, timeout=600,
                                       output_hook=lambda message: None)
        except Exception:  # noqa: BLE001, S110 - the chapter's own import cell runs the same code and reports it
            pass
        finally:
            client.stop_channels()

    @property
    def km(self):
        """The started kernel's manager (waits for the start; raises what stopped it)."""
        self._started.wait()
        if self._start_error is not None:
            raise BuildError(f"the kernel did not start: {self._start_error}") from self._start_error
        return self._km

    def shutdown(self) -> None:
        self._started.wait(timeout=120)
        if self._km.has_kernel:
            self._km.shutdown_kernel(now=True)
        self._thread.join(timeout=10)


# Imported inside labkit functions that chapters 4 to 7 call (building model2, computing F1): worth loading
# while the step before runs. The first step's kernels load only their chapters' own imports: nothing runs
# before them to hide the cost, and chapter 1 needs neither library.
PRELOADED_LIBRARIES = ("torchvision", "sklearn.metrics")


@functools.cache  # the fork server and each chapter's kernel ask: read each chapter once
def chapter_modules(chapter: Chapter, libraries: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The modules a chapter's code cells import (parameters cell excluded), then ``libraries``."""
    import ast

    modules = []
    for cell in jupytext.read(chapter.path).cells:
        if cell.cell_type != "code" or "parameters" in cell.metadata.get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                modules += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                # "from labkit import data": labkit.data may be a module or a name; try both
                modules += [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
    return tuple(dict.fromkeys(modules + list(libraries)))


def chapter_imports(chapter: Chapter, libraries: tuple[str, ...] = ()) -> str:
    """Code that imports ``chapter_modules``, binding no name in the kernel: the chapter's namespace
    stays as a fresh one."""
    return ("def _preload(names):\n"
            "    import importlib\n"
            "    for name in names:\n"
            "        try:\n"
            "            importlib.import_module(name)\n"
            "        except ImportError:\n"
            "            pass\n"
            f"_preload({list(chapter_modules(chapter, libraries))!r})\n"
            "del _preload\n")


def code_cells(nb) -> int:
    """The cells nbclient executes (code cells that are not blank), papermill's injected parameters included."""
    return sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip()) + 1


def run_chapter(chapter: Chapter, params: dict, work: Path, kernel: WarmKernel, board=None) -> Path:
    """Execute one chapter with papermill in its (already started) kernel; return the executed notebook's
    path in work/. ``board`` (a labkit.progress.ProgressBoard) shows its cells and phase while it runs."""
    import papermill as pm

    from labkit import progress

    source = jupytext.read(chapter.path)
    expand_listings(source.cells)  # "%load labkit.x.Name" cells become labkit's code, and run as such
    source.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    executed = work / f"{chapter.id}.ipynb"
    partial = work / f"{chapter.id}.partial.ipynb"
    hooks = {}
    if board is not None:
        board.add(chapter.id, progress.status_path(params["run_dir"], chapter.id), code_cells(source))
        hooks["on_cell_executed"] = lambda **_: board.cell_done(chapter.id)  # nbclient's hook, per code cell
    try:
        pm.execute_notebook(source, str(partial), parameters=params, kernel_name=KERNEL_NAME, km=kernel.km,
                            progress_bar=False, log_output=False, **hooks)
    except pm.PapermillExecutionError as exc:
        failed = work / f"{chapter.id}.failed.ipynb"
        os.replace(partial, failed)
        traceback_tail = "\n".join(_strip_ansi(line) for line in exc.traceback[-8:])
        cause = outside_cause(exc.ename, exc.evalue, params)
        where = f"chapter {chapter.id} failed in cell {exc.cell_index + 1} (execution count {exc.exec_count})"
        if cause:  # not the chapter's code: send the user to what is wrong
            raise BuildError(f"{where} because of {cause}: {exc.ename}: {_strip_ansi(exc.evalue)[:600]}\n"
                             f"The partly executed chapter is kept for inspection: {failed}\n"
                             f"Fix {cause}, then re-run (or: --only {chapter.number}).") from None
        raise BuildError(
            f"{where}:\n"
            f"{_indent(exc.source.strip()[:400])}\n--- end of traceback ---\n{traceback_tail}\n"
            f"The partly executed chapter is kept for inspection: {failed}\n"
            f"Fix chapters/{chapter.path.name}, then re-run (or: --only {chapter.number})."
        ) from None
    os.replace(partial, executed)
    return executed


# Errors whose cause lies outside the chapters: the data, the weights file, the Ray cluster
DATA_ERRORS = {"DataError"}
WEIGHTS_ERRORS = {"WeightsError", "MissingWeightsError"}
RAY_ERRORS = {"ClusterError", "AuthenticationError", "ConnectionError", "RaySystemError", "GetTimeoutError",
              "NodeDiedError", "RayActorError"}


def outside_cause(ename: str, evalue: str, params: dict) -> str | None:
    """What outside the chapter made it fail (a phrase naming it), or None when the chapter's code did."""
    if ename in DATA_ERRORS:
        return f"the data in {params['data_dir']}"
    if ename in WEIGHTS_ERRORS:
        return f"model2's ImageNet weights ({params['weights_file'] or 'torchvision cache'})"
    if ename in RAY_ERRORS or "Authentication token" in evalue:
        where = f"at {params['ray_address']}" if params["ray_address"] else "started on this machine"
        return f"the Ray cluster {where}"
    return None


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


# Chapters that read only what earlier chapters wrote, and nothing of each other's, run side by side:
# 01, 02 and 03 need only the data (the preflight has decoded it into the cache; each derives the same
# seeded split), 06 and 07 only 05's results. On a 2-core machine this overlaps the seconds every kernel
# spends starting and importing torch.
SIDE_BY_SIDE = [{"01", "02", "03"}, {"06", "07"}]


def _steps(chapters: list[Chapter]) -> list[list[Chapter]]:
    """Group consecutive chapters that may run side by side; everything else runs alone, in order."""
    steps: list[list[Chapter]] = []
    for chapter in chapters:
        previous = steps[-1] if steps else []
        group = next((g for g in SIDE_BY_SIDE if chapter.number in g), None)
        if previous and group and all(c.number in group for c in previous):
            previous.append(chapter)
        else:
            steps.append([chapter])
    return steps


class KernelPool:
    """The chapters' warm kernels by chapter id. Used as a context manager: whatever is left, after a
    failure or an interrupt, is shut down on the way out.

    Side-by-side chapters split the cores (oversubscribed torch threads spin and slow them all down), and
    when one finishes, those still running take its cores (``share_cores``): each kernel's share is kept in
    a file under ``shares_dir`` that the kernel follows (``labkit.cpu_share``)."""

    def __init__(self, env: dict, kernels_dir: Path, shares_dir: Path):
        self.env, self.kernels_dir, self.shares_dir = env, kernels_dir, shares_dir
        self.kernels: dict[str, WarmKernel] = {}
        self.shares: dict[str, int] = {}  # threads per side-by-side chapter, as written to its share file
        self.cores = os.cpu_count() or 1

    def start(self, step: list[Chapter], libraries: tuple[str, ...] = PRELOADED_LIBRARIES) -> None:
        for chapter in step:
            if chapter.id not in self.kernels:
                env = self.env if len(step) == 1 else {**self.env, **self._share_env(chapter, len(step))}
                self.kernels[chapter.id] = WarmKernel(chapter, env, self.kernels_dir, libraries)

    def _share_env(self, chapter: Chapter, side_by_side: int) -> dict:
        from labkit.artifacts import atomic_write_text
        from labkit.cpu_share import SHARE_FILE_ENV, listening_marker

        self.shares[chapter.id] = max(1, self.cores // side_by_side)
        share_file, threads = self.shares_dir / chapter.id, str(self.shares[chapter.id])
        atomic_write_text(share_file, threads)
        listening_marker(share_file).unlink(missing_ok=True)
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, SHARE_FILE_ENV: str(share_file)}

    def share_cores(self, running: list[str]) -> None:
        """Give the cores of a chapter that has finished to the side-by-side chapters still ``running`` (their
        ids). A kernel that does not listen yet reads its new share when it starts listening."""
        import signal

        from labkit.artifacts import atomic_write_text
        from labkit.cpu_share import listening_pid

        if not running:
            return
        threads = max(1, self.cores // len(running))
        for chapter_id in running:
            if self.shares.get(chapter_id, threads) == threads:  # not side by side, or its share is unchanged
                continue
            self.shares[chapter_id] = threads
            share_file = self.shares_dir / chapter_id
            atomic_write_text(share_file, str(threads))
            pid = listening_pid(share_file)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGUSR1)
                except OSError:  # the kernel has just ended: there is nothing to give
                    pass

    def take(self, chapter: Chapter) -> WarmKernel:
        return self.kernels.pop(chapter.id)

    def discard(self, chapter: Chapter) -> None:
        """Shut down a chapter's warm kernel, if it has one: its earlier result is kept."""
        kernel = self.kernels.pop(chapter.id, None)
        if kernel is not None:
            kernel.shutdown()

    def __enter__(self) -> KernelPool:  # noqa: PYI034  a final class: Self adds nothing
        return self

    def __exit__(self, *exc) -> None:
        for kernel in self.kernels.values():
            kernel.shutdown()
        self.kernels.clear()


def run_chapters(steps: list[list[Chapter]], params: dict, work: Path, kernels: KernelPool, due, expected: set[str],
                 board=None):
    """Run the chapters that are ``due`` (side by side within a step); yield (chapter, seconds) for each.

    ``due(chapter)`` is asked at the chapter's turn, after the steps before it ran: the reasons to run it now,
    or [] to keep its earlier result. ``expected`` (chapter ids) are the chapters expected to run: their
    kernels are started (imports loaded) while the step before runs. ``board`` shows their progress. On a
    failure, the chapters already started finish, then the first failure is raised.
    """
    count = {"done": 0, "of": len(expected)}  # for the [done/of] of each chapter's line
    for index, step in enumerate(steps):
        kept = [chapter for chapter in step if not due(chapter)]
        for chapter in kept:
            kernels.discard(chapter)
        step = [chapter for chapter in step if chapter not in kept]
        if not step:
            continue
        if kept:  # a kernel started for a side-by-side share takes the cores of those kept
            kernels.share_cores([chapter.id for chapter in step])
        count["of"] += sum(1 for chapter in step if chapter.id not in expected)
        kernels.start(step)   # (started earlier, if expected)
        if index + 1 < len(steps):
            kernels.start([c for c in steps[index + 1] if c.id in expected])
        step_kernels = {chapter.id: kernels.take(chapter) for chapter in step}
        running, lock = [chapter.id for chapter in step], threading.Lock()

        def run_and_free_cores(chapter, running=running, lock=lock, step_kernels=step_kernels, step=step):
            seconds, error = _timed_run(chapter, params, work, step_kernels[chapter.id], board)
            with lock:  # the chapters still running beside it take its cores
                running.remove(chapter.id)
                kernels.share_cores(running)
                count["done"] += 1
                together = " (side by side with " + ", ".join(c.id for c in step if c is not chapter) + ")" \
                    if len(step) > 1 else ""
                status = f"FAILED after {seconds:.0f} s" if error else f"{seconds:6.1f} s"
                line = f"  [{count['done']}/{count['of']}] {chapter.id:<18} {status}{together}"
                if board is not None:
                    board.finish(chapter.id, line)
                else:
                    print(line, flush=True)
            return seconds, error

        try:
            with ThreadPoolExecutor(len(step)) as pool:
                outcomes = list(pool.map(run_and_free_cores, step))
        finally:
            for kernel in step_kernels.values():
                kernel.shutdown()
        errors = [error for _, error in outcomes if error]
        if errors:
            raise BuildError(errors[0])
        for chapter, (seconds, _) in zip(step, outcomes):
            yield chapter, seconds


def _timed_run(chapter: Chapter, params: dict, work: Path, kernel: WarmKernel, board=None) -> tuple[float, str | None]:
    t0 = time.perf_counter()
    try:
        run_chapter(chapter, params, work, kernel, board)
        error = None
    except BuildError as exc:
        error = str(exc)
    return round(time.perf_counter() - t0, 1), error


# -- assembling ------------------------------------------------------------------------------------
def assemble(team: str, chapters: list[Chapter], work: Path, environment_md: str,
             configuration: dict[str, bool] | None = None,
             keep=labkit_configuration.keep_cells) -> nbformat.NotebookNode:
    """One notebook: title, contents, rubric map, each executed chapter, then the environment appendix.

    Of a chapter's cells written for one configuration (tagged ``if:NAME``, ``labkit.configuration``), only
    those for the ``configuration`` that ran are kept (``keep`` chooses them; the Kaggle copy passes its own).

    Each chapter ran in its own kernel, so execution counts restart at the first cell of a chapter; the
    marker {"labkit": {"chapter": id, "chapter_start": true}} declares that restart to the grader. Only
    the first chapter's parameters cell stays: the others repeat the same values.
    """
    body = []
    for chapter in chapters:
        executed = nbformat.read(work / f"{chapter.id}.ipynb", as_version=4)
        tags = [set(c.metadata.get("tags", [])) for c in executed.cells]
        cells = [c for c, t in zip(executed.cells, tags)
                 if "parameters" not in t and ("injected-parameters" not in t or not body)]
        cells = keep(cells, configuration or {}, where=f"chapters/{chapter.id}.py:")
        attach_evidence(cells)
        for i, cell in enumerate(cells):
            cell.metadata["labkit"] = {"chapter": chapter.id, "chapter_start": i == 0}
            hide_report_input(cell)
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
            cell.id = f"c{chapter.number}-{i}"  # unique across chapters
        body.extend(cells)
    appendix = nbformat.v4.new_markdown_cell(environment_md)
    appendix.id = "appendix-environment"
    contents = navigation.contents_markdown(body + [appendix], deepest=1)  # chapters; the map lists sections
    rubric_map = navigation.rubric_map_markdown(body, rubric_criteria())

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(
        f"# Classifying cell nuclei in colon-cancer histology\n\n**Kaggle team:** {team}\n\n"
        f"## Contents\n\n{contents}"))
    nb.cells.append(nbformat.v4.new_markdown_cell(
        "## Where each rubric item is\n\nEach link opens the section that holds the item's code or shows "
        "its result.\n\n" + rubric_map))
    nb.cells.extend(body)
    nb.cells.append(appendix)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python", "version": platform.python_version()}
    nb.metadata["labkit"] = {"team": team, "chapters": [c.id for c in chapters]}
    nbformat.validator.normalize(nb)
    return nb


def show_parameters_portably(nb, out: Path) -> None:
    """The parameters cell as the notebook shows it: the chapters got absolute paths, a reader sees them
    relative to the project (portable_paths), never where this machine keeps the project or the home folder."""
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            values = [line for line in cell.source.splitlines() if not line.startswith("# Parameters")]
            cell.source = "\n".join([portable_paths.parameters_comment(out),
                                     *(portable_paths.portable(line, out) for line in values)])


PROSE_CRITERIA = {"narrative", "discussion"}


def attach_evidence(cells) -> None:
    """Move the evidence records a ``report`` cell displayed onto the code cell before it, the one whose
    outputs show what the record claims (the grader counts a record only beside its backing: a figure, a
    table, a model). Re-running the notebook puts them back into the report cell; nothing else changes."""
    from labkit.evidence import EVIDENCE_MIME

    shown = None  # the last visible code cell
    for cell in cells:
        if cell.cell_type != "code":
            continue
        if REPORT_TAG not in cell.metadata.get("tags", []):
            shown = cell
            continue
        # the narrative and the discussion are backed by the report cell's own prose: those stay
        records = [o for o in cell.outputs if EVIDENCE_MIME in o.get("data", {})
                   and o["data"][EVIDENCE_MIME].get("criterion") not in PROSE_CRITERIA]
        if shown is not None and records:
            cell.outputs = [o for o in cell.outputs if not any(o is r for r in records)]
            shown.outputs.extend(records)


def hide_report_input(cell) -> None:
    """A chapter cell tagged ``report`` only shows generated prose and evidence records: its output is the
    report, its code is bookkeeping. Jupyter shows its input folded (``source_hidden``); the HTML leaves the
    input out (``remove-input``, see export_html); the code stays in the notebook, which still runs top to
    bottom."""
    tags = cell.metadata.get("tags", [])
    # the parameters cell is papermill's bookkeeping: the appendix says what the run was, the cell stays folded
    if cell.cell_type == "code" and (REPORT_TAG in tags or "injected-parameters" in tags):
        cell.metadata["jupyter"] = {**cell.metadata.get("jupyter", {}), "source_hidden": True}
        if "remove-input" not in tags:
            cell.metadata["tags"] = [*tags, "remove-input"]


def _listed(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def rubric_criteria() -> list[dict]:
    """The rubric's criteria (id, description), as the grader reads them."""
    rubric = json.loads((REPO / "grading" / "rubric.json").read_text())
    return rubric["criteria"]


def environment_markdown(args, profile, data_desc: str, device: str, seconds: float,
                         chapter_seconds: dict, weights: dict | None = None, cluster: dict | None = None,
                         earlier: dict[str, str] | None = None) -> str:
    """The appendix: how this notebook was made (the command, profile, data, device, versions, times). The
    one place for the tool's language: the report body speaks of the work, not of the build.

    ``chapter_seconds`` holds every chapter's seconds, from the run its notebook comes from; ``earlier``
    ({chapter id: when it ran}) the chapters this build kept from an earlier run of the same command."""
    import importlib.metadata as md

    import torch

    from labkit.train import precision_name

    def version(pkg):
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    packages = ["torch", "torchvision", "ray", "captum", "scikit-learn", "pandas", "matplotlib", "papermill"]
    rows = "\n".join(f"| {p} | {version(p)} |" for p in packages)
    earlier = earlier or {}
    ran = {cid: s for cid, s in chapter_seconds.items() if cid not in earlier}
    timings = ", ".join(f"{cid} {s:.0f} s" for cid, s in ran.items())
    together = [[c.id for c in step] for step in _steps([c for c in find_chapters() if c.id in ran])
                if len(step) > 1]
    overlap = ""
    if together:
        overlap = (" Chapters " + "; ".join(", ".join(step) for step in together) + " ran side by side, so the "
                   f"chapter times (together {sum(ran.values()):.0f} s) add up to more than the wall time.")
    if earlier:
        by_build: dict[str, list[str]] = {}
        for cid, when in earlier.items():
            by_build.setdefault(when, []).append(cid)
        kept = "; ".join(f"{_listed(cids)} come{'s' if len(cids) == 1 else ''} from the build of {when}"
                         for when, cids in by_build.items())
        ran_part = ("This build ran " + _listed([f"{cid} ({s:.0f} s)" for cid, s in ran.items()])
                    if ran else "This build ran no chapter")
        overlap += (f" {ran_part}; {kept}, kept because nothing they depend on (their script, the labkit code they "
                    "run, the options, the data, the files they read) has changed since.")
        timings = ""  # said in ran_part
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    on_device = torch.device(device)
    gpu = f" ({torch.cuda.get_device_name(on_device)})" if on_device.type == "cuda" else ""
    ray_note = ""
    if cluster is not None:
        where = f"the Ray cluster at `{cluster['address']}`" if cluster.get("address") else "Ray started on this machine"
        resources = cluster.get("resources", {})
        ray_note = (f"\n- **Ray Tune trials:** run on {where} ({resources.get('CPU', 0):.0f} CPUs, "
                    f"{resources.get('GPU', 0):.0f} GPUs)")
    weights_note = ""
    if weights is not None and weights.get("path"):
        weights_note = (f"\n- **model2's weights:** {weights.get('source')} `{weights['path']}`, "
                        + ("verified" if weights.get("verified") else "NOT verified") + " against torchvision's hash")
    if weights is not None and not weights.get("pretrained"):
        weights_note = ("\n- **model2's weights:** none could be had here (offline), so model2 started from random "
                        "weights. Put torchvision's ImageNet file in the torch.hub cache, or pass `--weights FILE` "
                        "(README, \"Building on the real data\"), and build again before handing the notebook in.")
    return (
        "# Appendix: the environment of this run\n\n"
        f"Built by `python build.py --team {args.team} --profile {profile.name}"
        f"{' --data ' + str(args.data) if args.data else ''}` on {built} in {seconds:.0f} s of wall time"
        f"{f' ({timings})' if timings else ''}.{overlap}\n\n"
        f"- **Data:** {data_desc}\n- **Profile:** {profile.name} (the training budget)\n- **Device:** {device}{gpu}\n"
        f"- **Precision:** {precision_name(on_device)}\n"
        f"- **Seed:** {args.seed}\n- **Python:** {platform.python_version()} on {platform.platform()}"
        f"{weights_note}{ray_note}\n\n"
        f"| package | version |\n|---|---|\n{rows}\n\n"
        "Each chapter ran in its own kernel, so execution counts restart at each chapter. "
        "The notebook also runs top to bottom in one kernel. The folded parameters cell at the top holds this "
        "run's options and paths; the folded cells under results hold the code that wrote their text."
    )


# The parameters of the Kaggle copy. Paths are relative to the working folder (/kaggle/working on Kaggle, the
# notebook's cwd), so submission.csv lands where Kaggle's Output tab looks; the data is where Kaggle mounts it.
KAGGLE_PARAMS = ChapterParameters(
    data_dir="/kaggle/input/deep-learning-for-msc-2022-23", is_stub=False, profile="full", run_dir="run",
    cache_dir="cache", device="auto", ray_address="", weights_file="", submission_file="submission.csv")

def standalone_notebook(nb, team: str, seed: int, profile: str = "full", kaggle_user: str | None = None,
                        wheel: str | None = None) -> nbformat.NotebookNode:
    """A copy of the notebook to run on Kaggle without this repo: its first code cell installs labkit from
    its wheel in a Kaggle dataset (kaggle_dataset.py); the parameters point at Kaggle's data and working
    folders; outputs are cleared: it is meant to be run there, top to bottom, and handed in as it ran.
    """
    kaggle = nbformat.v4.new_notebook(metadata=nb.metadata)
    kaggle.cells.append(nbformat.v4.new_markdown_cell(kaggle_dataset.setup_markdown(kaggle_user)))
    kaggle.cells.append(nbformat.v4.new_code_cell(kaggle_dataset.setup_code(kaggle_user, wheel)))
    params = replace(KAGGLE_PARAMS, team=team, seed=seed, profile=profile).source(
        f"Parameters for a run on Kaggle (the real data; profile {profile})")
    for cell in nb.cells:
        cell = nbformat.from_dict(json.loads(json.dumps(cell)))  # a deep copy
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if "injected-parameters" in cell.metadata.get("tags", []):
                cell.source = params
        kaggle.cells.append(cell)
    kaggle.cells.append(nbformat.v4.new_code_cell(kaggle_dataset.ENVIRONMENT_CODE))
    nbformat.validator.normalize(kaggle)
    return kaggle


def write_kaggle_copy(args, chapters: list[Chapter], work: Path, out: Path) -> None:
    """OUT/TEAM_kaggle.ipynb and, beside it, the dataset folder with labkit's wheel that it installs. Of the
    chapters' prose it keeps what is written for the configuration Kaggle runs (kaggle_dataset)."""
    profile = args.profile or "full"  # the default profile is sized for a CPU and the stub
    folder = out / kaggle_dataset.SLUG
    wheel = kaggle_dataset.write_dataset(folder, args.kaggle_user)
    nb = assemble(args.team, chapters, work, kaggle_dataset.appendix_markdown(profile, args.seed, wheel.name),
                  kaggle_dataset.KAGGLE_CONFIGURATION, keep=kaggle_dataset.keep_kaggle_cells)
    path = out / f"{args.team}_kaggle.ipynb"
    write_notebook(standalone_notebook(nb, args.team, args.seed, profile, args.kaggle_user, wheel.name), path)
    edit_id = "" if args.kaggle_user else (f" after putting your Kaggle user name into {folder / 'dataset-metadata.json'}"
                                           " (or build with --kaggle-user NAME)")
    print(f"Wrote {path} and the Kaggle dataset folder {folder} (labkit's wheel). Upload the folder with "
          f"`kaggle datasets create -p {folder}`{edit_id}, or as a new version after labkit changed "
          f"(`kaggle datasets version -p {folder} -m MESSAGE`); then import the notebook on Kaggle and run all cells.")


def write_notebook(nb, path: Path) -> None:
    from labkit.artifacts import atomic_write_text

    atomic_write_text(path, nbformat.writes(nb))


def export_html(nb, path: Path) -> None:
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    from labkit.artifacts import atomic_write_text

    config = Config()
    config.TagRemovePreprocessor.remove_input_tags = {"remove-input"}
    config.TagRemovePreprocessor.enabled = True
    exporter = HTMLExporter(config=config)
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    body, _ = exporter.from_notebook_node(nb)
    atomic_write_text(path, body)


# -- the build -------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--team", required=True, help="your Kaggle team name, e.g. Dogs_Versus_Cats")
    parser.add_argument("--data", help="folder with the real Kaggle data (default: a synthetic stub)")
    parser.add_argument("--profile", choices=["quick", "standard", "full"],
                        help="training budget (default: standard here; full in the --standalone Kaggle copy)")
    parser.add_argument("--out", type=Path, default=REPO / "build", help="output folder (default: build/)")
    parser.add_argument("--only", metavar="NN",
                        help="re-run chapter NN (e.g. 05) and what depends on it; refuses if an earlier chapter "
                             "is out of date")
    parser.add_argument("--fresh", action="store_true",
                        help="re-run every chapter (by default a chapter re-runs only when something it uses changed)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--ray-address", help="join an existing Ray cluster instead of starting one")
    parser.add_argument("--weights", type=Path, help="ImageNet weights file for model2 (checked by SHA-256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--standalone", action="store_true",
                        help="also write OUT/TEAM_kaggle.ipynb, to run on Kaggle, and beside it the Kaggle dataset "
                             f"folder OUT/{kaggle_dataset.SLUG} with labkit's wheel, which that notebook installs")
    parser.add_argument("--kaggle-user", type=kaggle_dataset.user_name,
                        help="your Kaggle user name, for the dataset's id in dataset-metadata.json (--standalone)")
    parser.add_argument("--cache", type=Path, default=REPO / ".cache",
                        help="where the stub and the decoded-image cache live (default: .cache/)")
    return parser.parse_args(argv)


def build(args) -> int:
    from labkit.profiles import get_profile
    from labkit.train import pick_device

    started = time.perf_counter()
    check_team_name(args.team)  # before any work
    profile = get_profile(args.profile or "standard")
    chapters = find_chapters()
    only = None
    if args.only:
        only = next((c for c in chapters if c.number == args.only.zfill(2) or c.id == args.only), None)
        if only is None:
            raise BuildError(f"--only {args.only}: no such chapter; chapters are "
                             + ", ".join(c.id for c in chapters))

    out = args.out.resolve()
    run_dir = out / "run"
    work = out / "chapters"
    for folder in (out, run_dir, work):
        folder.mkdir(parents=True, exist_ok=True)

    data_dir, data_desc = prepare_data(args, profile)
    device = str(pick_device(args.device))
    params = asdict(ChapterParameters(
        team=args.team, data_dir=str(data_dir), is_stub=not args.data, profile=profile.name,
        run_dir=str(run_dir), cache_dir=str(args.cache.resolve()), device=device,
        ray_address=args.ray_address or "", weights_file=str(args.weights.resolve()) if args.weights else "",
        submission_file=str(out / "submission.csv"), seed=args.seed))
    plan = RebuildPlan(chapters, params, data_dir, run_dir, work, fresh=args.fresh, only=only)
    expected = plan.expected()
    print(plan.summary(expected), flush=True)

    chapter_seconds: dict[str, float] = {}
    if expected:
        if forked_kernels.available():  # it imports the chapters' libraries while the data is checked
            forked_kernels.start_server(list(dict.fromkeys(
                module for chapter in chapters if chapter.id in expected
                for module in chapter_modules(chapter, PRELOADED_LIBRARIES))))
        steps = _steps(chapters)
        with KernelPool(ensure_kernel(out), kernels_dir(out), work / "cpu_share") as kernels:
            first = next(step for step in steps if any(c.id in expected for c in step))
            kernels.start([c for c in first if c.id in expected], libraries=())  # while the preflight runs
            print(f"Checking the data{', the weights' if args.weights or args.data else ''}"
                  f"{' and the Ray cluster' if args.ray_address else ''} ...", flush=True)
            preflight(args, data_dir)
            print(f"Building {args.team}.ipynb: profile {profile.name}, {data_desc}, device {device}", flush=True)
            from labkit.progress import ProgressBoard

            with ProgressBoard() as board:
                for chapter, seconds in run_chapters(steps, params, work, kernels, plan.due, expected, board):
                    chapter_seconds[chapter.id] = seconds
                    plan.ran(chapter, seconds)
        # read by bench/build.py (also for older commits): the seconds of the chapters this build ran
        (work / "timings.json").write_text(json.dumps(chapter_seconds))

    total = time.perf_counter() - started
    weights_json = run_dir / "model2" / "weights.json"
    weights = json.loads(weights_json.read_text()) if weights_json.exists() else None
    cluster_json = run_dir / "tuning" / "cluster.json"
    cluster = json.loads(cluster_json.read_text()) if cluster_json.exists() else None
    env_md = environment_markdown(args, profile, data_desc, device, total, plan.seconds(), weights, cluster,
                                  earlier=plan.earlier())
    nb = assemble(args.team, chapters, work, portable_paths.portable(env_md, out), labkit_configuration.read(run_dir))
    show_parameters_portably(nb, out)
    notebook_path = out / f"{args.team}.ipynb"
    write_notebook(nb, notebook_path)
    export_html(nb, out / f"{args.team}.html")
    if args.standalone:
        write_kaggle_copy(args, chapters, work, out)
    print(f"Wrote {notebook_path} ({total:.0f} s), {args.team}.html and submission.csv in {out}")
    self_check(notebook_path, args.team, out)
    return 0


class RebuildPlan:
    """Which chapters this build runs and which it keeps from an earlier one (see the module's docstring).

    Before anything runs, ``expected`` names the chapters that will run: those whose own inputs changed,
    those that read a file that changed, and those that read what an expected chapter writes (they run if the
    new bytes differ: ``due`` decides at their turn). ``ran`` records a chapter's inputs once it has run, in
    the run folder, so an interrupted build keeps what finished."""

    def __init__(self, chapters: list[Chapter], params: dict, data_dir: Path, run_dir: Path, work: Path, *,
                 fresh: bool = False, only: Chapter | None = None):
        import chapter_inputs

        self.chapters, self.run_dir, self.work, self.fresh, self.only = chapters, run_dir, work, fresh, only
        self.record = chapter_inputs.read_record(run_dir)
        self._digests: dict[tuple, str] = {}
        code = chapter_inputs.LabkitCode(REPO / "labkit")
        environment = chapter_inputs.environment_fingerprint(chapter_inputs.data_fingerprint(data_dir))
        self.now = {c.id: chapter_inputs.chapter_inputs(c.path, code, params, environment) for c in chapters}
        self.reasons: dict[str, list[str]] = {}   # why each chapter that runs runs
        self.ran_now: set[str] = set()
        self.started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # names this build's run

    def _digest(self, path: Path) -> str:
        """SHA-256 of a file, once per version of it (size and modification time) in this build."""
        from labkit.artifacts import sha256_file

        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = sha256_file(path)
        return self._digests[key]

    def own_reasons(self, chapter: Chapter) -> list[str]:
        """Why ``chapter`` must run, from its own inputs and the files it read as they are now ([]: none)."""
        import chapter_inputs

        if self.fresh:
            return ["--fresh"]
        if not (self.work / f"{chapter.id}.ipynb").exists():
            return ["not run in this output folder yet"]
        saved = self.record.get(chapter.id)
        return (chapter_inputs.own_changes(saved, self.now[chapter.id])
                or chapter_inputs.changed_reads(saved, self.run_dir, self._digest))

    def expected(self) -> set[str]:
        """The chapters expected to run; with --only, refuses while a chapter before it is out of date."""
        expected: set[str] = set()
        stale_before: dict[str, list[str]] = {}
        for chapter in self.chapters:
            if self.only is not None and chapter.number < self.only.number:
                reasons = self.own_reasons(chapter)
                if reasons:
                    stale_before[chapter.id] = reasons
                continue
            reasons = ["--only"] if chapter is self.only else self.own_reasons(chapter)
            if not reasons:
                reads = self.record.get(chapter.id, {}).get("reads", {})
                writers = {read.get("writer") for read in reads.values()} & expected
                if writers:
                    reasons = [f"it reads what {', '.join(sorted(writers))} writes"]
            if reasons:
                expected.add(chapter.id)
                self.reasons[chapter.id] = reasons
        never = [cid for cid, reasons in stale_before.items() if reasons == ["not run in this output folder yet"]]
        if never:
            raise BuildError(f"--only {self.only.number} needs the earlier chapters' results, but {', '.join(never)} "
                             "never ran in this output folder: run the whole build first (without --only).")
        if stale_before:
            raise BuildError(
                f"--only {self.only.number} would assemble a notebook that mixes two runs: chapters before it "
                "are out of date:\n" + "\n".join(f"  {cid}: {'; '.join(r)}" for cid, r in stale_before.items())
                + f"\nRun the same command without --only: it re-runs {', '.join(stale_before)} and then only "
                "what depends on them.")
        return expected

    def due(self, chapter: Chapter) -> list[str]:
        """At the chapter's turn: why it runs now, or [] to keep its earlier result."""
        if chapter is self.only:
            return ["--only"]
        if self.only is not None and chapter.number < self.only.number:
            return []
        reasons = self.own_reasons(chapter)
        if reasons:
            self.reasons[chapter.id] = reasons
        return reasons

    def ran(self, chapter: Chapter, seconds: float) -> None:
        """Record what ``chapter`` ran with (and what it read), now that it has run."""
        import chapter_inputs

        reads_file = self.run_dir / "reads" / f"{chapter.id}.json"
        reads = json.loads(reads_file.read_text()) if reads_file.exists() else {}
        self.record[chapter.id] = {**self.now[chapter.id], "reads": reads, "seconds": seconds,
                                   "build": self.started}
        self.ran_now.add(chapter.id)
        chapter_inputs.write_record(self.run_dir, self.record)

    def seconds(self) -> dict[str, float]:
        """Each chapter's seconds, from the run its executed notebook comes from."""
        return {c.id: self.record[c.id]["seconds"] for c in self.chapters if "seconds" in self.record.get(c.id, {})}

    def earlier(self) -> dict[str, str]:
        """{chapter id: when the build it ran in started} for the chapters kept from an earlier build."""
        return {c.id: self.record.get(c.id, {}).get("build", "an earlier time") for c in self.chapters
                if c.id not in self.ran_now}

    def summary(self, expected: set[str]) -> str:
        if not expected:
            return "Nothing any chapter depends on has changed since the last build: re-assembling the notebook."
        why = {"; ".join(self.reasons[cid]) for cid in expected}
        if len(expected) == len(self.chapters) and len(why) == 1:
            return f"Running all {len(expected)} chapters: {why.pop()}."
        lines = [f"Chapters to run: {len(expected)} of {len(self.chapters)}"]
        lines += [f"  {cid}: {'; '.join(self.reasons[cid])}" for cid in sorted(expected)]
        return "\n".join(lines)


def self_check(notebook_path: Path, team: str, out: Path) -> None:
    """Run the marking harness on the new notebook exactly as an instructor would, and show its verdicts."""
    import subprocess

    result = subprocess.run([sys.executable, "-m", "grading", "check", str(notebook_path), "--team", team],
                            capture_output=True, text=True, cwd=REPO, check=False)
    report = result.stdout + result.stderr
    from labkit.artifacts import atomic_write_text

    atomic_write_text(out / "self_check.txt", report)
    print("\nSelf-check (python -m grading check):")
    print(report.rstrip())


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return build(args)
    except BuildError as exc:
        print(f"\nbuild.py: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbuild.py: interrupted; the last good notebook is untouched.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
