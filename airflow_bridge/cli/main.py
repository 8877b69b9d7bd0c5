"""The ``airflow-bridge`` command line.

Spec commands (validate, schema, init) never import Airflow, so they are fast in CI and editors.
Exit codes: 0 success, 1 invalid input or failed run, 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from airflow_bridge.cli import (
    airflow_client,
    candidates_cmd,
    compare_cmd,
    lineage_cmd,
    loaders_cmd,
    models_change,
    pod_cmd,
    registry_cmds,
    report_cmd,
    spec_cmds,
    targets_cmd,
)
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
app.command("loaders")(loaders_cmd.loaders)
app.command("targets")(targets_cmd.targets)
app.add_typer(registry_cmds.models_app, name="models")
app.add_typer(registry_cmds.audit_app, name="audit")
app.command("lineage")(lineage_cmd.lineage)
app.command("login")(airflow_client.login)
app.command("gc")(registry_cmds.gc)
app.add_typer(pod_cmd.pod_app, name="pod")
assert models_change.models_app is registry_cmds.models_app  # promote/rollback register on import
assert report_cmd.models_app is registry_cmds.models_app  # models report registers on import
assert compare_cmd.models_app is registry_cmds.models_app  # models compare registers on import
assert candidates_cmd.models_app is registry_cmds.models_app  # models candidates registers on import


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
    max_body_bytes: Annotated[
        int, typer.Option(min=1024, help="Largest request body in bytes (8 MiB); larger ones get 413 unread.")
    ] = 8_388_608,
    max_rows: Annotated[int, typer.Option(min=1, help="Most rows in one request; more get 413.")] = 10_000,
    read_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds for a request's headers, then its body, to arrive (else 408).")
    ] = 15.0,
    max_in_flight: Annotated[
        int, typer.Option(min=1, help="Requests in progress at once, /health excluded; more get 503.")
    ] = 64,
    max_connections: Annotated[
        int, typer.Option(min=2, help="Open connections (uvicorn's limit_concurrency); beyond, every request gets 503.")
    ] = 512,
    keep_alive: Annotated[int, typer.Option(min=1, help="Seconds an idle keep-alive connection stays open.")] = 5,
    predict_threads: Annotated[
        int,
        typer.Option(
            min=1,
            help="Threads per worker that read large requests and write large answers (and predict, with "
            "--max-batch-size 1); the event loop stays free.",
        ),
    ] = 4,
    max_batch_size: Annotated[
        int,
        typer.Option(
            callback=lambda value: _batch_option(value, None),
            help="Most rows answered by one predict call: concurrent requests are batched up to this; 1 turns "
            "batching off.",
        ),
    ] = 1024,
    max_batch_wait_ms: Annotated[
        float,
        typer.Option(
            callback=lambda value: _batch_option(None, value),
            help="Longest a request waits for others to join its batch, in milliseconds (only while others "
            "are arriving or the load is steady; a lone client never waits).",
        ),
    ] = 10.0,
    workers: Annotated[
        int | None,
        typer.Option(
            callback=_workers_option,
            help="1: predict in the server process; N >= 2: N predictor processes, each loading and verifying the "
            "model, behind the one HTTP process (a killed predictor costs only its batch a 503); default: one "
            "per CPU, at least 2.",
            show_default=False,
        ),
    ] = None,
    predict_timeout: Annotated[
        float,
        typer.Option(
            callback=_predict_timeout_option,
            help="Seconds a batch may take in a predictor process (--workers N >= 2); then that predictor is "
            "stopped and replaced, and the batch's requests get 504.",
        ),
    ] = 60.0,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="One JSON line per request on stderr.")
    ] = True,
    token_conn_id: Annotated[
        str | None,
        typer.Option(
            "--token-conn-id",
            help="Airflow connection (AIRFLOW_CONN_<ID>) whose password is the bearer token required by every "
            "route but /health [default: $AIRFLOW_BRIDGE_SERVE_TOKEN; none: no authentication].",
        ),
    ] = None,
    home: home_option = None,
    registry: registry_option = None,
) -> None:
    """Serve predictions of MODEL@ALIAS over HTTP (/predict, /health, /metadata, /metrics); checksum verified.

    Concurrent requests are answered in batches (--max-batch-size, --max-batch-wait-ms), predicted by
    --workers predictor processes (docs/serving.md). Exit code 1, with one line on stderr, when the registry,
    the artifact or the token cannot be read.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from airflow_bridge.cli.common import fail, open_cli_registry, registry_url
    from airflow_bridge.exceptions import BridgeError
    from airflow_bridge.serving.app import ModelHolder
    from airflow_bridge.serving.auth import serve_token
    from airflow_bridge.serving.batching import BatchSettings
    from airflow_bridge.serving.limits import ServeLimits
    from airflow_bridge.serving.workers import ServeConfig, default_workers, run_server

    limits = ServeLimits(
        max_body_bytes=max_body_bytes,
        max_rows=max_rows,
        read_timeout=read_timeout,
        max_in_flight=max_in_flight,
        max_connections=max_connections,
        keep_alive=keep_alive,
        predict_threads=predict_threads,
    )
    processes = workers if workers is not None else default_workers()
    try:
        batching = BatchSettings(max_batch_size, max_batch_wait_ms)
        token = serve_token(token_conn_id)
        url = registry_url(registry, home)
        holder = ModelHolder(open_cli_registry(registry, home), model, alias, refresh_seconds)
        loaded = holder.load_initial()  # checked here, so a bad alias or artifact fails before any worker starts
    except (BridgeError, OSError, SQLAlchemyError) as exc:  # OSError: an unreachable object store
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise fail(f"cannot serve {model}@{alias}: {message}") from None
    config = ServeConfig(
        url, model, alias, host, port, refresh_seconds, limits, batching, token, access_log, predict_timeout
    )
    batches = f"batches of up to {max_batch_size} rows" if batching.enabled else "no batching"
    console.print(
        f"serving [bold]{model}[/] v{loaded.version.version} (alias {alias}, sha256 "
        f"{loaded.version.artifact.sha256[:12]}…) on http://{host}:{port}, {processes} worker"
        f"{'s' if processes > 1 else ''}, {batches}" + (" (bearer token required)" if token else "")
    )
    try:
        run_server(config, holder, processes)
    except BridgeError as exc:  # a predictor process could not load the version
        raise fail(f"cannot serve {model}@{alias}: {' '.join(str(exc).split())}") from None


def _batch_option(size: int | None, wait: float | None) -> int | float | None:
    """Refuse a batch size below 1 or a wait outside 0..60000 ms at parse time, with BatchSettings' words."""
    from airflow_bridge.serving.batching import BatchSettings, BatchSettingsError

    try:
        BatchSettings(**({"max_batch_size": size} if size is not None else {"max_wait_ms": wait}))
    except BatchSettingsError as exc:
        raise typer.BadParameter(str(exc)) from None
    return size if size is not None else wait


def _workers_option(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter(f"at least 1 server process is needed; got {value} (default: one per CPU, at least 2)")
    return value


def _predict_timeout_option(value: float) -> float:
    if not value >= 0.1 or value == float("inf"):
        raise typer.BadParameter(f"a predict timeout must be a number of seconds, at least 0.1; got {value:g}")
    return value


def main() -> None:
    app()


if __name__ == "__main__":
    main()
