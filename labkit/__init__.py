"""labkit: the tested library the coursework chapters call.

One module one job: ``data`` (layout, decode-once cache, Dataset, split), ``models`` (model1, model2),
``train`` (fit/evaluate), ``tune`` (Ray Tune), ``diagnostics``, ``interpret`` (Captum), ``submission``,
``artifacts`` (run folder), ``evidence`` (machine-readable records the grader reads), ``profiles``.
"""

CLASS_NAMES = ("normal epithelial", "cancer epithelial", "muscle", "immune")
N_CLASSES = len(CLASS_NAMES)

__version__ = "0.1.0"
