"""``vinaforge collect ...``: serve, migrate, seed, users, API tokens, model replies, export.

Mounted into the ``vinaforge`` command through the ``vinaforge.cli_plugins`` entry point, so
vinaforge never imports this package by name. Thin: the work is in the package's modules.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Community collection app: prompts, replies, rankings, moderation.", no_args_is_help=True
)
user_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
app.add_typer(user_app, name="user")
token_app = typer.Typer(
    help="API tokens for the community loop (moderators and admins).", no_args_is_help=True
)
app.add_typer(token_app, name="token")

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db", help="SQLAlchemy URL (default: env VINAFORGE_COLLECT_DATABASE_URL or sqlite:///collect.db)"
    ),
]


def _settings(db: str | None, **overrides):
    from vinaforge_collect.config import Settings

    return Settings.from_env(database_url=db, **overrides)


def _check_database_exists(settings) -> None:
    """Reading commands must not create an empty SQLite file: a mistyped --db would export nothing."""
    from sqlalchemy.exc import ArgumentError

    from vinaforge.checks import InputCheckError
    from vinaforge_collect.config import redact_url, sqlite_path

    try:
        path = sqlite_path(settings.database_url)
    except ArgumentError:
        return  # _database reports the bad URL
    if path is not None and not path.is_file():
        raise InputCheckError(
            f"--db {redact_url(settings.database_url)}: no database file at {path}; nothing to export "
            "(check --db or VINAFORGE_COLLECT_DATABASE_URL)"
        )


def _database(settings):
    """The migrated database, or a one-line error naming the (password-less) URL."""
    from vinaforge.logs import fail
    from vinaforge_collect.config import redact_url
    from vinaforge_collect.db import Database

    try:
        db = Database(settings.database_url)
        db.migrate()
    except Exception as err:  # bad URL, missing driver, server down, unwritable file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        fail(f"--db {redact_url(settings.database_url)}: cannot open the database: {reason}")
        raise typer.Exit(2) from None
    return db


@app.command()
def serve(
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8300,
    seed: Annotated[
        bool, typer.Option("--seed", help="Load the Vietnamese seed data first (if not loaded).")
    ] = False,
    reviews_needed: Annotated[
        int | None, typer.Option(help="Reviews before a message joins its tree.")
    ] = None,
) -> None:
    """Start the web app (migrates the database first; SQLite needs no set-up)."""
    import uvicorn

    from vinaforge.logs import setup_console
    from vinaforge_collect.web import create_app

    log = setup_console(logging.INFO)
    settings = _settings(db, reviews_needed=reviews_needed)
    database = _database(settings)
    if seed:
        from vinaforge_collect.seed import load_seed

        log.info("seed: %s", load_seed(database, settings))
    log.info("collect app on http://%s:%d (database %s)", host, port, settings.public()["database_url"])
    uvicorn.run(create_app(settings, database), host=host, port=port, log_level="warning")


@app.command()
def migrate(db: DbOpt = None) -> None:
    """Create or upgrade the database schema (Alembic)."""
    from vinaforge_collect.db import current_revision

    settings = _settings(db)
    database = _database(settings)
    typer.echo(f"schema at revision {current_revision(database.engine)}")


@app.command()
def seed(db: DbOpt = None) -> None:
    """Load our Vietnamese seed data: users, prompts, replies, rankings (once)."""
    from vinaforge_collect.seed import load_seed

    settings = _settings(db)
    typer.echo(json.dumps(load_seed(_database(settings), settings), ensure_ascii=False))


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Option(help="contributor | moderator | admin")] = "contributor",
    db: DbOpt = None,
) -> None:
    """Create an account; the password is read from the prompt or VINAFORGE_COLLECT_NEW_PASSWORD."""
    import os

    from vinaforge.logs import fail
    from vinaforge_collect.models import User
    from vinaforge_collect.security import Passwords, valid_username

    if role not in ("contributor", "moderator", "admin"):
        fail(f"--role: unknown role {role!r}; expected contributor, moderator or admin")
        return
    if reason := valid_username(username):
        fail(f"username {username!r}: {reason}")
        return
    password = os.environ.get("VINAFORGE_COLLECT_NEW_PASSWORD") or typer.prompt(
        "password", hide_input=True, confirmation_prompt=True
    )
    settings = _settings(db)
    database = _database(settings)
    with database.write() as s:
        s.add(User(username=username, password_hash=Passwords(settings).hash(password), role=role,
                   terms_version=settings.terms_version))  # fmt: skip
    typer.echo(f"created {username} ({role})")


@user_app.command("role")
def user_role(username: str, role: str, db: DbOpt = None) -> None:
    """Change an account's role."""
    from sqlalchemy import select

    from vinaforge.logs import fail
    from vinaforge_collect.models import User

    if role not in ("contributor", "moderator", "admin"):
        fail(f"unknown role {role!r}; expected contributor, moderator or admin")
        return
    settings = _settings(db)
    with _database(settings).write() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            fail(f"no user named {username!r}")
            return
        user.role = role
    typer.echo(f"{username} is now {role}")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option("--user", help="The moderator or admin the token acts as.")],
    name: Annotated[str, typer.Option(help="A label to recognise the token by (e.g. the loop's host).")] = "",
    db: DbOpt = None,
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from sqlalchemy import select

    from vinaforge.logs import fail
    from vinaforge_collect.models import User
    from vinaforge_collect.security import create_api_token

    settings = _settings(db)
    with _database(settings).write() as s:
        account = s.scalar(select(User).where(User.username == user))
        if account is None:
            fail(f"--user: no user named {user!r}")
            raise typer.Exit(2)
        if not account.is_moderator or account.banned:
            fail(
                f"--user {user}: API tokens are for moderators and admins (vinaforge collect user role {user} admin)"
            )
            raise typer.Exit(2)
        token = create_api_token(s, account, name)
    typer.echo(token)


@token_app.command("list")
def token_list(db: DbOpt = None) -> None:
    """Every token: id, user, label, dates, revoked (never the token itself)."""
    from sqlalchemy import select

    from vinaforge_collect.models import ApiToken

    with _database(_settings(db)).read() as s:
        for t in s.scalars(select(ApiToken).order_by(ApiToken.id)):
            used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
            state = "revoked" if t.revoked else "live"
            typer.echo(
                f"{t.id}\t{t.user.username}\t{t.name or '-'}\tcreated {t.created_at:%Y-%m-%d}\tused {used}\t{state}"
            )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The id shown by `token list`.")], db: DbOpt = None
) -> None:
    """Revoke a token: the API refuses it from now on."""
    from vinaforge.logs import fail
    from vinaforge_collect.models import ApiToken

    with _database(_settings(db)).write() as s:
        row = s.get(ApiToken, token_id)
        if row is None:
            fail(f"no API token with id {token_id} (see vinaforge collect token list)")
            raise typer.Exit(2)
        row.revoked = True
    typer.echo(f"token {token_id} revoked")


@app.command("model-replies")
def model_replies(
    model: Annotated[str, typer.Option(help="Local model folder, or the served model name with --base-url.")],
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    ] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Name of the env var holding the endpoint's key.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Model name recorded with each reply (default: --model).")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many prompts.")] = 100,
    max_new_tokens: int = 256,
    temperature: float = 0.7,
    db: DbOpt = None,
) -> None:
    """Add model replies (vinaforge.generate) to prompts, to be ranked beside human ones."""
    from vinaforge.generate import BackendConfig, SamplingParams, load_backend
    from vinaforge.logs import setup_console
    from vinaforge_collect.replies import add_model_replies

    setup_console(logging.INFO)
    settings = _settings(db)
    cfg = BackendConfig(
        kind="openai" if base_url else "local", model=model, base_url=base_url, api_key_env=api_key_env
    )
    backend = load_backend(cfg)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, seed=0)
    counts = add_model_replies(_database(settings), settings, backend, params, name or model, limit)
    typer.echo(json.dumps(counts))


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the JSONL files.")],
    db: DbOpt = None,
) -> None:
    """Export SFT conversations, preference pairs, full trees and anonymised raw rankings (JSONL)."""
    from vinaforge.checks import InputCheckError, check_output_dir
    from vinaforge.logs import fail
    from vinaforge_collect.export import export_all

    settings = _settings(db)
    try:
        check_output_dir(output, "--output")
        _check_database_exists(settings)
    except InputCheckError as err:
        fail(str(err))
        raise typer.Exit(2) from None
    database = _database(settings)
    secret = settings.secret_key or database.secret()
    with database.read() as s:
        summary = export_all(s, settings, secret, output)
    for kind, c in summary["counts"].items():
        typer.echo(f"{kind}: {c['kept']} records ({c['rejected']} rejected) -> {output / (kind + '.jsonl')}")
