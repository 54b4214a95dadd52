"""``lifelongrec models``: model names and defaults, and the model registry's commands
(list, show, promote, rollback, verify)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lifelongrec._errors import LifelongrecError
from lifelongrec.cli._common import JsonOpt, _fail

models_app = typer.Typer(
    help="Model names and defaults (no subcommand); the model registry: list, show, "
    "promote, rollback, verify."
)

RegistryOpt = Annotated[
    Path,
    typer.Option(
        "--registry",
        envvar="LIFELONGREC_REGISTRY",
        help="The model registry folder (or $LIFELONGREC_REGISTRY).",
    ),
]
VersionArg = Annotated[str, typer.Argument(help="A version id (v000003) or its number (3).")]
ReasonOpt = Annotated[str, typer.Option(help="Why, recorded in the registry's history.")]


def _open_registry(root: Path):
    """An existing registry (never creates one from the command line)."""
    from lifelongrec.registry import ModelRegistry

    return ModelRegistry(root, create=False)


def _registry_call(run: Any) -> Any:
    """``run()``; a user error (unknown version, no champion, corruption) exits 2."""
    try:
        return run()
    except (LifelongrecError, FileNotFoundError) as exc:
        _fail(exc)


def _window_text(window: dict[str, Any] | None) -> str:
    if not window:
        return ""
    if "label" in window:
        return str(window["label"])
    return f"{window['start']}-{window['end']}"


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context) -> None:
    """List the available models and their default hyperparameters (no subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    from lifelongrec.models import MODELS

    for name, cls in MODELS.items():
        typer.echo(f"{name:12s} {cls().get_params()}")


@models_app.command("list")
def models_list(registry: RegistryOpt, as_json: JsonOpt = False) -> None:
    """Every version in a registry, oldest first, with status, parent, window and figures."""
    from lifelongrec.evaluation import format_table

    infos = _registry_call(lambda: _open_registry(registry).versions())
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    if not infos:
        typer.echo(f"{registry}: no versions")
        return
    figures = sorted(
        {
            key
            for i in infos
            for key, value in i.metrics.items()
            if not key.startswith("champion_") and isinstance(value, (int, float))
        }
    )
    rows = [
        {
            "version": i.version,
            "status": i.status,
            "model": i.model,
            "parent": i.parent or "",
            "created": i.created_at[:19],
            "window": _window_text(i.window),
            **{key: i.metrics.get(key) for key in figures},
        }
        for i in infos
    ]
    typer.echo(format_table(rows, list(rows[0])))


@models_app.command("show")
def models_show(version: VersionArg, registry: RegistryOpt, as_json: JsonOpt = False) -> None:
    """Everything the registry knows about one version, and its lineage."""

    def run() -> dict[str, Any]:
        reg = _open_registry(registry)
        return {**reg.info(version).to_dict(), "lineage": reg.lineage(version)}

    out = _registry_call(run)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        if key == "files":
            value = f"{len(value)} files, {sum(f['bytes'] for f in value.values())} bytes"
        elif key == "lineage":
            value = " <- ".join(value)
        elif isinstance(value, dict):
            value = json.dumps(value)
        typer.echo(f"{key}: {'' if value is None else value}")


@models_app.command("promote")
def models_promote(
    version: VersionArg, registry: RegistryOpt, reason: ReasonOpt = "", as_json: JsonOpt = False
) -> None:
    """Make a version the champion (its files are verified first)."""

    def run() -> tuple[str | None, Any]:
        reg = _open_registry(registry)
        before = reg.champion()
        return before, reg.promote(version, reason=reason or "promoted from the command line")

    before, info = _registry_call(run)
    if as_json:
        typer.echo(json.dumps({**info.to_dict(), "previous": before}, indent=2))
    elif before == info.version:
        typer.echo(f"{info.version} is already the champion")
    else:
        typer.echo(f"{info.version} is now the champion (was {before or 'none'})")


@models_app.command("rollback")
def models_rollback(
    registry: RegistryOpt,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Version to restore (default: the champion before this one)."),
    ] = None,
    reason: ReasonOpt = "",
    as_json: JsonOpt = False,
) -> None:
    """Restore an earlier champion: the previous one, or any version with --to."""

    def run() -> tuple[str | None, Any]:
        reg = _open_registry(registry)
        before = reg.champion()
        return before, reg.rollback(to, reason=reason or "rolled back from the command line")

    before, info = _registry_call(run)
    if as_json:
        typer.echo(json.dumps({**info.to_dict(), "previous": before}, indent=2))
    else:
        typer.echo(f"rolled back: {info.version} is the champion again (was {before})")


@models_app.command("verify")
def models_verify(version: VersionArg, registry: RegistryOpt) -> None:
    """Check a version's files against the SHA-256 sums in its manifest (exit 2 if not)."""

    def run() -> str:
        reg = _open_registry(registry)
        reg.verify(version)
        return reg.info(version).version

    typer.echo(f"{_registry_call(run)}: files match the manifest")
