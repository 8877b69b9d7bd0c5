"""Serve registry artifacts with KServe's own model server, the way KServe's sklearn predictor does.

Run with the KServe venv (``make .venv-kserve``), never with the project's:
``.venv-kserve/bin/python tests/kserve_predictor.py PORT NAME=ARTIFACT [NAME=ARTIFACT ...]``.
KServe's ``sklearnserver`` is not on PyPI; its predict is KServe's ``get_predict_input``, the model's
``predict`` (``predict_proba`` with ``PREDICT_PROBA=true``) and ``get_predict_response``, which this
``Model`` repeats, so requests take KServe's real REST v1/v2 decoding path (tests/test_kserve_protocol.py).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import joblib
import kserve
from kserve.utils.utils import get_predict_input, get_predict_response


class SklearnPredictor(kserve.Model):
    def __init__(self, name: str, artifact: str) -> None:
        super().__init__(name)
        self.artifact = artifact
        self.model: Any = None

    def load(self) -> bool:
        self.model = joblib.load(self.artifact)
        self.ready = True
        return True

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        instances = get_predict_input(payload)
        if os.environ.get("PREDICT_PROBA", "false").lower() == "true" and hasattr(self.model, "predict_proba"):
            return get_predict_response(payload, self.model.predict_proba(instances), self.name)
        return get_predict_response(payload, self.model.predict(instances), self.name)


def main(port: str, *models: str) -> None:
    served = []
    for item in models:
        name, artifact = item.split("=", 1)
        model = SklearnPredictor(name, artifact)
        model.load()
        served.append(model)
    kserve.ModelServer(http_port=int(port), enable_grpc=False, workers=1).start(served)


if __name__ == "__main__":
    main(*sys.argv[1:])
