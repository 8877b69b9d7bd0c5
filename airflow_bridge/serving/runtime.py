"""Two settings of a serving process (``serve``'s front and its predictor processes), each measured.

- **The heap** (:func:`settle`). A loaded model sits beside pandas, scikit-learn, skrub and the web
  stack: ~200,000 tracked objects that live as long as the process. Each full collection of the cyclic
  garbage collector walks them all (~95 ms on this project's 2-core machine), and the allocations of
  ~30 single-row predictions trigger one: one request in 25 waited for it. Once a version is loaded,
  everything alive moves to the collector's permanent generation (:func:`gc.freeze`, as large Python
  services do); each request's own garbage is still collected as before.
- **pandas' strings** (:func:`use_python_strings`). pandas 3's ``str`` dtype keeps its values in
  PyArrow when PyArrow is installed, else in Python objects (PDEP-14: one dtype, the same NaN
  semantics and results, two storages). A one-row predict makes many tiny frames (skrub's
  ``TableVectorizer`` handles each column apart) where PyArrow's per-call cost dominates: the Python
  storage makes the breast-cancer example's predict ~3 ms (9 %) faster. Predictions are the same with
  either storage on every example table (tests/test_serve_runtime.py).

Figures: docs/benchmarks.md ("Serving under load against KServe's model server").
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Freeze what is alive now (call after loading a version, once the previous one is let go).

    Unfreezes first, so the cycles of a version that was replaced are collected rather than kept
    frozen for good; objects still frozen are freed as usual when their last reference goes.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def use_python_strings() -> None:
    """New ``str`` columns in this process keep their values as Python objects (see the module's text)."""
    import pandas as pd

    pd.set_option("mode.string_storage", "python")
