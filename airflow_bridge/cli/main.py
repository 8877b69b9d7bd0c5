"""The ``airflow-bridge`` command line.

Spec commands (validate, schema, init) never import Airflow, so they are fast in CI and editors.
Exit codes: 0 success, 1 invalid input or failed run, 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airflow_bridge.cli import airflow_client, lineage_cmd, models_change, pod_cmd, registry_cmds, report_cmd, spec_cmds
from airflow_bridge.cli.common import Format, console, home_option, registry_option

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
app.command("lineage")(lineage_cmd.lineage)
app.command("login")(airflow_client.login)
app.command("gc")(registry_cmds.gc)
app.add_typer(pod_cmd.pod_app, name="pod")
assert models_change.models_app is registry_cmds.models_app  # promote/rollback register on import
assert report_cmd.models_app is registry_cmds.models_app  # models report registers on import


@app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="The spec file to run.", dir_okay=False)],
    home: home_option = None,
    approve_as: Annotated[
        str | None,
        typer.Option("--approve-as", help="Answer an approval request as this Airflow user (checked by policy)."),
    ] = None,
    reject: Annotated[bool, typer.Option("--reject", help="With --approve-as: reject instead of approve.")] = False,
    output: Annotated[Format, typer.Option("--format", help="Summary format.")] = Format.text,
) -> None:
    """Run a spec end to end with dag.test() in an isolated Airflow (SQLite, local files).

    Exit codes: 0 deployed (or everything the spec asks for done), 1 invalid spec, failed task,
    rejected or refused approval, 2 usage error, 3 stopped at an approval (use --approve-as).
    """
    from airflow_bridge.cli.run_cmd import run_spec

    if reject and not approve_as:
        raise typer.BadParameter("--reject needs --approve-as USER", param_hint="--reject")
    raise typer.Exit(run_spec(spec, home, output, approve_as=approve_as, reject=reject))


@app.command("serve")
def serve(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to serve; moves are followed live.")] = "production",
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    refresh_seconds: Annotated[float, typer.Option(help="How often the alias is re-read.")] = 2.0,
    home: home_option = None,
    registry: registry_option = None,
) -> None:
    """Serve predictions of MODEL@ALIAS over HTTP (/predict, /health, /metadata); checksum verified."""
    from airflow_bridge.cli.common import fail, open_cli_registry
    from airflow_bridge.exceptions import BridgeError
    from airflow_bridge.serving.app import ModelHolder, create_app

    holder = ModelHolder(open_cli_registry(registry, home), model, alias, refresh_seconds)
    try:
        loaded = holder.load_initial()
    except BridgeError as exc:
        raise fail(f"cannot serve {model}@{alias}: {exc}") from None
    import uvicorn

    console.print(
        f"serving [bold]{model}[/] v{loaded.version.version} (alias {alias}, sha256 "
        f"{loaded.version.artifact.sha256[:12]}…) on http://{host}:{port}"
    )
    uvicorn.run(create_app(holder), host=host, port=port, log_level="info")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
