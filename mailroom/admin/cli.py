"""The ``mailroom`` command. Every command takes ``--data DIR`` or ``--config FILE``."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from alembic.runtime.migration import MigrationContext
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from mailroom.access.passwords import hash_password
from mailroom.server import config as configuration
from mailroom.store import Store
from mailroom.store.errors import StoreError
from mailroom.throttling import policy as throttling

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
throttling_app = typer.Typer(help="EWS throttling: policies and which mailbox is governed by which.",
                             no_args_is_help=True)
policy_app = typer.Typer(help="Throttling policies (the Global policy is built in; one may be the organization "
                              "default).", no_args_is_help=True)
throttling_app.add_typer(policy_app, name="policy")
app.add_typer(throttling_app, name="throttling")
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


def _with_parameters(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command one option per throttling parameter, named after Exchange's in kebab case
    (``--ews-max-concurrency``); the command receives them as ``**values`` by Exchange's name."""
    signature = inspect.signature(command)
    fixed = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    extra = []
    for param in throttling.PARAMETERS:
        default = "unlimited" if param.default is None else param.default
        annotation = Annotated[str | None, typer.Option(param.option, help=f"{param.help} A whole number or "
                                                                           f"'unlimited' (Global: {default}).")]
        extra.append(inspect.Parameter(param.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                       annotation=annotation))
        command.__annotations__[param.name] = annotation
    command.__signature__ = signature.replace(parameters=fixed + extra)  # type: ignore[attr-defined]
    return command


def _values(given: dict[str, str | None]) -> dict[str, int | None]:
    try:
        return {name: throttling.parse_value(throttling.parameter(name), text)
                for name, text in given.items() if text is not None}
    except throttling.PolicyError as exc:
        _fail(str(exc))


def _settings(values: dict[str, int | None]) -> str:
    return ", ".join(f"{k}={'unlimited' if v is None else v}" for k, v in values.items()) or "(inherits all)"


@policy_app.command("add")
@_with_parameters
def policy_add(
    name: str,
    default: Annotated[bool, typer.Option("--default", help="Make it the organization default policy.")] = False,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None, **values: str | None,
) -> None:
    """Create a throttling policy; parameters it does not set inherit (organization default, then Global)."""
    try:
        policy = _store(data, config, database).throttling.add(name, _values(values), default)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    kind = "organization default " if policy.is_default else ""
    console.print(f"{kind}throttling policy {policy.name} added: {_settings(policy.values)}", highlight=False)


@policy_app.command("set")
@_with_parameters
def policy_set(
    name: str,
    unset: Annotated[list[str] | None, typer.Option("--unset", help="A parameter to stop setting (it inherits "
                                                                    "again); repeatable.")] = None,
    default: Annotated[bool | None, typer.Option("--default/--no-default", help="Make it (or stop it being) the "
                                                                                 "organization default.")] = None,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None, **values: str | None,
) -> None:
    """Change a throttling policy (servers see it when their cache reloads: throttling.policy_cache_max_seconds)."""
    try:
        policy = _store(data, config, database).throttling.update(name, _values(values), tuple(unset or ()), default)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"throttling policy {policy.name}: {_settings(policy.values)}", highlight=False)


@policy_app.command("list")
def policy_list(data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """List throttling policies as a table (the built-in Global policy first)."""
    table = Table("Policy", "Default", "Mailboxes", "Settings")
    global_values = {p.name: p.default for p in throttling.PARAMETERS}
    table.add_row(throttling.GLOBAL, "", "", _settings(global_values))
    for policy, users in _store(data, config, database).throttling.policies():
        table.add_row(policy.name, "yes" if policy.is_default else "", str(users), _settings(policy.values))
    console.print(table)


@policy_app.command("remove")
def policy_remove(name: str, data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """Delete a throttling policy (it must not be assigned to any mailbox)."""
    try:
        _store(data, config, database).throttling.remove(name)
    except StoreError as exc:
        _fail(str(exc))
    console.print(f"throttling policy {name} removed", highlight=False)


@throttling_app.command("assign")
def throttling_assign(mailbox: str, policy: str, data: DataOpt = None, config: ConfigOpt = None,
                      database: DatabaseOpt = None) -> None:
    """Govern MAILBOX by POLICY (Set-Mailbox -ThrottlingPolicy)."""
    try:
        _store(data, config, database).throttling.assign(mailbox, policy)
    except StoreError as exc:
        _fail(str(exc))
    console.print(f"{mailbox} is governed by throttling policy {policy}", highlight=False)


@throttling_app.command("unassign")
def throttling_unassign(mailbox: str, data: DataOpt = None, config: ConfigOpt = None,
                        database: DatabaseOpt = None) -> None:
    """Take MAILBOX's own policy away (the organization default, else Global, applies)."""
    try:
        _store(data, config, database).throttling.unassign(mailbox)
    except StoreError as exc:
        _fail(str(exc))
    console.print(f"{mailbox} has no throttling policy of its own", highlight=False)


@throttling_app.command("show")
def throttling_show(mailbox: str, data: DataOpt = None, config: ConfigOpt = None,
                    database: DatabaseOpt = None) -> None:
    """The effective throttling values of MAILBOX and the policy each one comes from."""
    store = _store(data, config, database)
    found = store.directory.mailbox_by_address(mailbox)
    if found is None:
        _fail(f"no mailbox {mailbox}")
    effective = throttling.resolve(store.throttling.chain(found.id))
    table = Table("Parameter", "Value", "From", title=f"{found.address}: policy {effective.policy}")
    for name, value in effective.values.items():
        table.add_row(name, "unlimited" if value is None else str(value), effective.sources[name])
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
