"""The ``mailroom`` command. Every command takes ``--data DIR`` or ``--config FILE``."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from alembic.runtime.migration import MigrationContext
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from mailroom.access.identity import DELEGATE, IMPERSONATION, OWNER
from mailroom.access.passwords import hash_password
from mailroom.server import config as configuration
from mailroom.store import Store
from mailroom.store.errors import StoreError

app = typer.Typer(help="mailroom: a self-hosted messaging server that speaks Exchange Web Services.",
                  no_args_is_help=True, add_completion=False)
domain_app = typer.Typer(help="Accepted domains.", no_args_is_help=True)
mailbox_app = typer.Typer(help="Mailboxes.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
impersonation_app = typer.Typer(help="ApplicationImpersonation grants (service accounts acting as mailbox owners).",
                                no_args_is_help=True)
app.add_typer(domain_app, name="domain")
app.add_typer(mailbox_app, name="mailbox")
app.add_typer(db_app, name="db")
app.add_typer(impersonation_app, name="impersonation")
audit_app = typer.Typer(help="The audit log of access to mailboxes by anyone but their owner.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
console = Console()
errors = Console(stderr=True)

DataOpt = Annotated[Path | None, typer.Option("--data", help="Data folder (default: ./data).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML configuration file.")]
DatabaseOpt = Annotated[str | None, typer.Option("--database", help="Store URL (sqlite:///... or "
                                                                     "postgresql+psycopg://...).")]


def _config(data: Path | None, config_file: Path | None, **overrides: object) -> configuration.Config:
    values = {"data_dir": str(data) if data else None, **overrides}
    try:
        return configuration.load(config_file, values)
    except configuration.ConfigError as exc:
        _fail(str(exc))


def _store(data: Path | None, config_file: Path | None, database: str | None = None) -> Store:
    config = _config(data, config_file, database_url=database)
    try:
        if not config["database_url"]:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        return Store.open(config.database_url, pool_size=1)
    except (OSError, ValueError, SQLAlchemyError) as exc:
        _fail(f"cannot open the store at {config.database_url}: {exc}")


def _fail(message: str) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(1)


@app.command()
def serve(
    data: DataOpt = None,
    config: ConfigOpt = None,
    database: DatabaseOpt = None,
    http: Annotated[str | None, typer.Option("--http", help="HOST:PORT for EWS over HTTP ('' disables).")] = None,
    https: Annotated[str | None, typer.Option("--https", help="HOST:PORT for EWS over HTTPS ('' disables).")] = None,
    smtp: Annotated[str | None, typer.Option("--smtp", help="HOST:PORT for inbound SMTP ('' disables).")] = None,
    workers: Annotated[int | None, typer.Option(help="EWS worker threads.")] = None,
) -> None:
    """Run the server (SQLite under the data folder, loopback listeners, no configuration needed)."""
    cfg = _config(data, config, database_url=database, **{"ews.http_listen": http, "ews.https_listen": https,
                                                           "transport.inbound_listen": smtp,
                                                           "ews.workers": workers})
    logging.basicConfig(level=cfg["log_level"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from mailroom.server.app import serve as run

    try:
        asyncio.run(run(cfg))
    except (configuration.ConfigError, OSError) as exc:
        _fail(str(exc))


@domain_app.command("add")
def domain_add(name: str, data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """Accept mail for a domain."""
    store = _store(data, config, database)
    try:
        domain = store.directory.add_domain(name)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"domain {domain.name} added")


@domain_app.command("list")
def domain_list(data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """List accepted domains."""
    table = Table("Domain", "Created")
    for domain in _store(data, config, database).directory.domains():
        table.add_row(domain.name, domain.created)
    console.print(table)


@domain_app.command("remove")
def domain_remove(name: str, data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """Stop accepting a domain (it must have no mailboxes)."""
    try:
        _store(data, config, database).directory.remove_domain(name)
    except StoreError as exc:
        _fail(str(exc))
    console.print(f"domain {name} removed")


def _password(password: str | None, password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if password:
        return password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@mailbox_app.command("add")
def mailbox_add(
    address: str,
    password: Annotated[str | None, typer.Option(help="Password (prompted for when omitted).")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    mailbox_database: Annotated[str, typer.Option("--mailbox-database", help="Mailbox database.")] = "DB01",
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Create a mailbox with Exchange's default folders."""
    store = _store(data, config, database)
    try:
        mailbox = store.directory.add_mailbox(address, hash_password(_password(password, password_stdin)), name,
                                              mailbox_database)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"mailbox {mailbox.address} added ({mailbox.display_name}, database {mailbox.database_name})")


@mailbox_app.command("list")
def mailbox_list(data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """List mailboxes as a table."""
    table = Table("Address", "Display name", "Database", "Aliases")
    for mb in _store(data, config, database).directory.mailboxes():
        table.add_row(mb.address, mb.display_name, mb.database_name, ", ".join(mb.aliases))
    console.print(table)


@mailbox_app.command("set-password")
def mailbox_set_password(
    address: str,
    password: Annotated[str | None, typer.Option(help="New password (prompted for when omitted).")] = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Change a mailbox's password."""
    try:
        _store(data, config, database).directory.set_password(address, hash_password(_password(password,
                                                                                                 password_stdin)))
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"password of {address} changed")


@mailbox_app.command("alias")
def mailbox_alias(
    address: str, alias: str,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias instead.")] = False,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Add (or --remove) an alias address of a mailbox."""
    directory = _store(data, config, database).directory
    try:
        directory.remove_alias(alias) if remove else directory.add_alias(address, alias)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"alias {alias} {'removed from' if remove else 'added to'} {address}")


@mailbox_app.command("remove")
def mailbox_remove(
    address: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Delete a mailbox and everything in it."""
    if not yes:
        typer.confirm(f"Delete {address} and all its mail?", abort=True)
    try:
        _store(data, config, database).directory.remove_mailbox(address)
    except StoreError as exc:
        _fail(str(exc))
    console.print(f"mailbox {address} removed")


ScopeOpt = Annotated[str, typer.Option("--scope", help="all, domain:D, database:DB, mailboxes:A,B or filter:EXPR "
                                                       "(e.g. filter:\"address -like '*@sales.example.com'\").")]


@impersonation_app.command("grant")
def impersonation_grant(account: str, scope: ScopeOpt, data: DataOpt = None, config: ConfigOpt = None,
                        database: DatabaseOpt = None) -> None:
    """Let ACCOUNT impersonate every mailbox in the scope (checked per request: new mailboxes count)."""
    try:
        grant = _store(data, config, database).directory.grant_impersonation(account, scope)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"{grant.account} may impersonate mailboxes in scope {grant.scope}", highlight=False)


@impersonation_app.command("revoke")
def impersonation_revoke(
    account: str,
    scope: Annotated[str | None, typer.Option("--scope", help="Only this grant (default: all of ACCOUNT's).")] = None,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Take back ACCOUNT's impersonation grants (or the one with --scope)."""
    try:
        removed = _store(data, config, database).directory.revoke_impersonation(account, scope)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"{removed} impersonation grant(s) of {account} revoked", highlight=False)


@impersonation_app.command("list")
def impersonation_list(data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """List impersonation grants as a table."""
    table = Table("Account", "Scope", "Created")
    for grant in _store(data, config, database).directory.impersonation_grants():
        table.add_row(grant.account, str(grant.scope), grant.created)
    console.print(table)


def _utc_text(value: str | None, option: str) -> str | None:
    """An ISO 8601 date or time from the command line as the store's UTC text (naive means UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option}: {value!r} is not an ISO 8601 date or time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@audit_app.command("search")
def audit_search(
    mailbox: Annotated[str, typer.Option("--mailbox", help="Whose mailbox was accessed (address).")],
    caller: Annotated[str | None, typer.Option("--caller", help="Only access by this account.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="From this ISO 8601 time (UTC unless it says).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Before this ISO 8601 time.")] = None,
    right: Annotated[str | None, typer.Option("--right", help="owner, impersonation or delegate.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many records (newest first).")] = 100,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Accesses to a mailbox, newest first, as a table."""
    if right is not None and right not in (OWNER, IMPERSONATION, DELEGATE):
        _fail(f"--right must be {OWNER}, {IMPERSONATION} or {DELEGATE}, not {right!r}")
    since, until = _utc_text(start, "--start"), _utc_text(end, "--end")
    records = _store(data, config, database).audit.search(mailbox, caller, since, until, right, limit)
    table = Table("Time", "Caller", "Mailbox", "Right", "Operation", "Folder", "Item", "Result", "Client IP")
    for r in records:
        table.add_row(r.time, r.caller, r.mailbox, r.right, r.operation, str(r.folder_id or ""),
                      str(r.item_id or ""), r.result, r.client_ip)
    console.print(table)


@db_app.command("upgrade")
def db_upgrade(data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """Create or migrate the store's schema to the newest version."""
    store = _store(data, config, database)
    with store.engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
    console.print(f"{store.backend} store is at schema revision {revision} (the newest)")


def main() -> None:
    app()
