"""What a prediction answers: labels, and on request each class's probability; KServe's v2 request and answer.

``/predict`` and KServe's v1 route take ``"probabilities": true`` beside ``"instances"`` and answer
``"classes"`` (the model's class order) and ``"probabilities"`` (one row per instance, in that order)
beside ``"predictions"``. KServe's v2 route (``/v2/models/NAME/infer``) takes the flag in the request's
``parameters`` and answers with v2 output tensors: ``predictions`` [n], ``probabilities`` [n, classes]
(FP64, row-major) and ``classes`` [classes]. A model without ``predict_proba`` (a regressor, an SVC
without ``probability: true``) refuses the flag with 422, naming the model and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from airflow_bridge.serving.inputs import InputError, excerpt, wants_probabilities

V2_DATATYPES = frozenset(
    {"BOOL", "BYTES", "FP16", "FP32", "FP64"} | {f"{sign}INT{bits}" for sign in ("", "U") for bits in (8, 16, 32, 64)}
)
"""The tensor datatypes of KServe's (Open Inference Protocol's) v2."""
V2_OUTPUTS = ("predictions", "probabilities", "classes")
MAX_REQUEST_ID = 128


def refuse_without_probabilities(model: str, version: Any, estimator: Any) -> None:
    """422 unless ``estimator`` gives class probabilities; says which model and why not."""
    if hasattr(estimator, "predict_proba"):  # a Pipeline answers for its last step (SVC: only with probability)
        return
    what = f"model '{model}' v{version.version} ({version.estimator.rsplit('.', 1)[-1] or 'its estimator'})"
    if version.task_kind == "regression":
        why = "it is a regression model: it predicts numbers, not classes"
    else:
        why = (
            "its estimator gives labels only (no predict_proba); train one that has it (LogisticRegression, a "
            "tree ensemble) or, for SVC, set model.params.probability: true"
        )
    raise InputError(422, f'{what} gives no class probabilities: {why}; ask without "probabilities"')


def labels_and_probabilities(estimator: Any, frame: Any, probabilities: bool) -> tuple[Any, list[Any], Any]:
    """(labels, classes, probabilities or None); with probabilities, a Pipeline's preprocessing runs once."""
    if not probabilities:
        return estimator.predict(frame), [], None
    steps = getattr(estimator, "steps", None)
    final, rows = estimator, frame
    if steps and len(steps) > 1:
        rows = estimator[:-1].transform(frame)
        final = steps[-1][1]
    classes = [plain(c) for c in getattr(estimator, "classes_", [])]
    return final.predict(rows), classes, final.predict_proba(rows)


def plain(value: Any) -> Any:
    """A JSON value: numpy scalars unwrapped, NaN and infinities as null."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


def probability_rows(matrix: Any) -> list[list[Any]]:
    return [[plain(p) for p in row] for row in matrix]


# -- KServe v2 ------------------------------------------------------------------------------------


class V2Tensor(BaseModel):
    """One input of KServe's v2 ``POST /v2/models/NAME/infer``: a column of the table."""

    name: str
    shape: list[int] = Field(description="[rows] or [rows, 1]")
    datatype: str = Field(description="BYTES for text, FP64, INT64, BOOL ...")
    data: list[Any]


class V2InferRequest(BaseModel):
    """Body of KServe's v2 ``POST /v2/models/NAME/infer`` (the OpenAPI schema; :mod:`.outputs` reads it)."""

    id: str | None = None
    inputs: list[V2Tensor] = Field(min_length=1, description="One tensor per column, all with the same rows.")
    parameters: dict[str, Any] | None = Field(
        default=None, description='{"probabilities": true} adds the outputs probabilities [rows, classes] and classes.'
    )
    outputs: list[dict[str, Any]] | None = Field(
        default=None, description="Outputs to return by name: predictions, probabilities, classes (default: all)."
    )


@dataclass(frozen=True)
class V2Request:
    """A v2 inference request read into the v1 form the rest of the server takes."""

    instances: dict[str, Any]
    """``{"instances": [{column: [values]}]}``: one columns block, checked by :func:`read_instances`."""
    probabilities: bool
    outputs: tuple[str, ...]
    request_id: str | None


def read_v2(document: Any) -> V2Request:
    """Check a v2 body's structure (inputs as named 1-D tensors of equal length) and convert it.

    Values are not checked here: :func:`~airflow_bridge.serving.inputs.read_instances` checks them as it
    checks every other shape. Each input is one column; its ``shape`` is ``[rows]`` or ``[rows, 1]``.
    """
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list) or not document["inputs"]:
        raise InputError(
            422, 'expected a v2 request {"inputs": [{"name": column, "shape": [rows], "datatype": ..., "data": [...]}]}'
        )
    parameters = document.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InputError(422, "'parameters' must be an object")
    request_id = document.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID):
        raise InputError(422, f"'id' must be a string of at most {MAX_REQUEST_ID} characters")
    columns: dict[str, list[Any]] = {}
    for index, tensor in enumerate(document["inputs"]):
        name, values = _v2_input(tensor, f"inputs[{index}]")
        if name in columns:
            raise InputError(422, f"inputs[{index}]: column {excerpt(name)} is sent twice")
        columns[name] = values
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        shown = ", ".join(f"{excerpt(name)}: {len(values)}" for name, values in list(columns.items())[:5])
        raise InputError(422, f"every input must have the same number of rows ({shown})")
    if not lengths - {0}:
        raise InputError(422, "the inputs hold no rows: send at least one")
    outputs = _v2_outputs(document.get("outputs"))
    probabilities = wants_probabilities(parameters, "parameters.") or bool({"probabilities", "classes"} & set(outputs))
    return V2Request({"instances": [columns]}, probabilities, outputs, request_id)


def _v2_input(tensor: Any, where: str) -> tuple[str, list[Any]]:
    if not isinstance(tensor, dict):
        raise InputError(422, f"{where} must be a tensor object {{name, shape, datatype, data}}")
    name, shape, datatype, data = (tensor.get(key) for key in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise InputError(422, f"{where}: 'name' must be the column's name")
    if not isinstance(datatype, str) or datatype not in V2_DATATYPES:
        raise InputError(422, f"{where} ({excerpt(name)}): 'datatype' must be one of {', '.join(sorted(V2_DATATYPES))}")
    if not isinstance(data, list):
        raise InputError(422, f"{where} ({excerpt(name)}): 'data' must be a list of values")
    if not (
        isinstance(shape, list)
        and len(shape) in (1, 2)
        and all(type(n) is int and n >= 0 for n in shape)
        and (len(shape) == 1 or shape[1] == 1)
    ):
        raise InputError(422, f"{where} ({excerpt(name)}): 'shape' must be [rows] or [rows, 1] (one column)")
    if len(shape) == 2 and all(type(v) is list and len(v) == 1 for v in data):
        data = [v[0] for v in data]  # [[v], [v], ...] for shape [rows, 1]
    if len(data) != shape[0]:
        raise InputError(422, f"{where} ({excerpt(name)}): 'shape' says {shape[0]} rows but 'data' holds {len(data)}")
    return name, data


def _v2_outputs(requested: Any) -> tuple[str, ...]:
    if requested is None:
        return ()
    names = [o.get("name") if isinstance(o, dict) else None for o in requested] if isinstance(requested, list) else []
    if not isinstance(requested, list) or any(n not in V2_OUTPUTS for n in names):
        raise InputError(422, f"'outputs' must list outputs by name: {', '.join(repr(n) for n in V2_OUTPUTS)}")
    return tuple(dict.fromkeys(str(n) for n in names))


def v2_location(message: str) -> str:
    """A value's location as a v2 client knows it (the row), not as the v1 form it was converted to."""
    return message.replace("instances[0], value ", "row ", 1)


def v2_answer(
    request: V2Request,
    *,
    model: str,
    version: int,
    labels: list[Any],
    classes: list[Any],
    probabilities: list[list[Any]] | None,
    warnings: list[str],
) -> dict[str, Any]:
    """The v2 response: output tensors (the requested ones, else all computed), data flattened row-major."""
    tensors = {"predictions": {"shape": [len(labels)], "datatype": _datatype(labels), "data": labels}}
    if probabilities is not None:
        tensors["probabilities"] = {
            "shape": [len(probabilities), len(classes)],
            "datatype": "FP64",
            "data": [p for row in probabilities for p in row],
        }
        tensors["classes"] = {"shape": [len(classes)], "datatype": _datatype(classes), "data": classes}
    wanted = request.outputs or tuple(tensors)
    answer: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request.request_id is not None:
        answer["id"] = request.request_id
    if warnings:
        answer["parameters"] = {"warnings": " | ".join(warnings)}
    answer["outputs"] = [{"name": name, **tensors[name]} for name in wanted if name in tensors]
    return answer


def _datatype(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {bool}:
        return "BOOL"
    if kinds and kinds <= {int}:
        return "INT64"
    if kinds and kinds <= {int, float}:
        return "FP64"
    return "BYTES"
