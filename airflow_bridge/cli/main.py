"""The ``airflow-bridge`` command line.

Spec commands (validate, schema, init) never import Airflow, so they are fast in CI and editors.
Exit codes: 0 success, 1 invalid input or failed run, 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airflow_bridge.cli import registry_cmds, spec_cmds
from airflow_bridge.cli.common import Format, home_option

app = typer.Typer(
    name="airflow-bridge",
    help="YAML experiment specs → governed ML pipelines on Apache Airflow 3.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("validate")(spec_cmds.validate)
app.command("render")(spec_cmds.render)
app.command("schema")(spec_cmds.schema)
app.command("init")(spec_cmds.init)
app.add_typer(registry_cmds.models_app, name="models")
app.add_typer(registry_cmds.audit_app, name="audit")


@app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="The spec file to run.", dir_okay=False)],
    home: home_option = None,
    output: Annotated[Format, typer.Option("--format", help="Summary format.")] = Format.text,
) -> None:
    """Run a spec end to end with dag.test() in an isolated Airflow (SQLite, local files)."""
    from airflow_bridge.cli.run_cmd import run_spec

    raise typer.Exit(run_spec(spec, home, output))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
