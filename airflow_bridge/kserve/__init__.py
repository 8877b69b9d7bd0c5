"""The KServe deployment target: InferenceService objects, a small client and the readiness trigger.

Nothing here is imported at DAG parse time; the Kubernetes clients are imported inside functions.
"""

from __future__ import annotations

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"
KSERVE_TARGET = "kserve"
