"""Spec-specific hints on top of :mod:`airflow_bridge.issues`."""

from __future__ import annotations

from dataclasses import replace

from airflow_bridge.issues import SpecIssue


def hint_comment_keys(issues: list[SpecIssue], text: str) -> list[SpecIssue]:
    """Issues caused by a key holding ' #' (YAML reads a comment there) get the hint to quote the key."""
    from airflow_bridge.spec.yamlsafe import comment_in_key

    hinted = []
    for issue in issues:
        hint = None if issue.hint else comment_in_key(text, issue.line)
        hinted.append(replace(issue, hint=hint) if hint else issue)
    return hinted
