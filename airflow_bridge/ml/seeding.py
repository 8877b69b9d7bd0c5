"""One seed per run, the spec's ``data.split.seed``, for every random component of training and evaluation.

scikit-learn components (the split, skrub's encoders, the estimator, cross-validation folds) take the seed
itself as ``random_state``, as a scikit-learn user would write it: the version's effective parameters show
``random_state: 42``. Draws airflow-bridge makes itself (bootstrap resamples, row samples of the report)
use :func:`rng`, one independent stream per purpose, so adding a draw for one purpose never shifts another's.
Nothing here reads the clock, the process id or Python's salted ``hash()``: the same seed gives the same
numbers in every process.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from typing import Any

RANDOM_STATE = "random_state"


def seed_random_states(model: Any, seed: int, *, keep: Collection[str] = ()) -> list[str]:
    """Set every ``random_state`` left at ``None`` in ``model``'s parameter tree to ``seed``; the names set.

    ``model`` is a scikit-learn estimator or Pipeline (``get_params(deep=True)``): this reaches components
    a spec never names, such as the ``StringEncoder`` that skrub's ``TableVectorizer`` builds for text
    columns (its SVD is randomised). ``keep`` lists parameter names to leave alone (a ``random_state: null``
    the spec set on purpose). A ``random_state`` that already holds a number or a ``RandomState`` is kept.
    """
    params = model.get_params(deep=True)
    chosen = sorted(
        name
        for name, value in params.items()
        if (name == RANDOM_STATE or name.endswith("__" + RANDOM_STATE)) and value is None and name not in keep
    )
    if chosen:
        model.set_params(**dict.fromkeys(chosen, seed))
    return chosen


def purpose_seed(seed: int, purpose: str) -> int:
    """A 32-bit seed for ``purpose`` derived from the run's seed (stable across processes and platforms)."""
    import numpy as np

    entropy = np.random.SeedSequence([int(seed), zlib.crc32(purpose.encode("utf-8"))])
    return int(entropy.generate_state(1, dtype=np.uint32)[0])


def rng(seed: int, purpose: str) -> Any:
    """A ``numpy.random.Generator`` for draws airflow-bridge makes itself, e.g. ``rng(seed, "bootstrap")``.

    Each purpose gets its own stream from the run's seed, so the same spec gives the same draws.
    """
    import numpy as np

    return np.random.default_rng(purpose_seed(seed, purpose))
