"""Task ids of the generated DAGs and XCom keys: constants shared by the factory, operators and CLI."""

from __future__ import annotations

import enum


class TaskId(enum.StrEnum):
    """The task ids ``build_dag`` gives each step (the local ``run`` and the UI read them back)."""

    TRAIN = "train"
    VALIDATE = "validate"
    REGISTER = "register"
    APPROVE = "approve"
    DEPLOY = "deploy"


REPORT_XCOM_KEY = "report"
"""``validate`` pushes its report under this key before a failed gate fails the task."""
