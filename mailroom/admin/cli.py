"""The ``mailroom`` command. Every command takes ``--data DIR`` or ``--config FILE``."""

from __future__ import annotations

import inspect
import logging
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from alembic.runtime.migration import MigrationContext
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from mailroom.access.identity import DELEGATE, IMPERSONATION, OWNER
from mailroom.access.passwords import hash_password
from mailroom.content import junk
from mailroom.ews import timezones
from mailroom.notify import optout
from mailroom.server import config as configuration
from mailroom.store import Store, calendar_processing
from mailroom.store.directory import ATTRIBUTES, PHONE_KEYS
from mailroom.store.errors import StoreError
from mailroom.store.model import Mailbox
from mailroom.store.working_hours import DAYS, WorkingHours
from mailroom.throttling import policy as throttling
from mailroom.transport.queue_admin import QueueAdmin, QueueError
from mailroom.transport.tracking import MessageTrackingLog, TrackingQuery

T = TypeVar("T")

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
tracking_app = typer.Typer(help="The message tracking log (Get-MessageTrackingLog).", no_args_is_help=True)
app.add_typer(tracking_app, name="tracking")
queue_app = typer.Typer(help="The transport's queues (Exchange's Queue Viewer).", no_args_is_help=True)
message_app = typer.Typer(help="Messages in the transport's queues.", no_args_is_help=True)
app.add_typer(queue_app, name="queue")
app.add_typer(message_app, name="message")
audit_app = typer.Typer(help="The audit log of access to mailboxes by anyone but their owner.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
policy_app = typer.Typer(help="EWS throttling policies (the Global policy is built in; one may be the organization "
                              "default; `mailbox set --throttling-policy` assigns one).", no_args_is_help=True)
app.add_typer(policy_app, name="throttling-policy")
group_app = typer.Typer(help="Public distribution groups and room lists in the directory.", no_args_is_help=True)
group_member_app = typer.Typer(help="A group's members: mailboxes, other groups, external addresses.",
                               no_args_is_help=True)
app.add_typer(group_app, name="group")
group_app.add_typer(group_member_app, name="member")
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


def _mailbox(store: Store, address: str) -> Mailbox:
    """The mailbox at ``address``; the command fails when there is none."""
    try:
        return store.directory.require(address)
    except StoreError as exc:
        _fail(str(exc))


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
    submission: Annotated[str | None, typer.Option("--submission",
                                                   help="HOST:PORT for SMTP submission ('' disables).")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", help="HOST:PORT for Prometheus metrics ('' disables).")
                       ] = None,
    workers: Annotated[int | None, typer.Option(help="EWS worker threads.")] = None,
) -> None:
    """Run the server (SQLite under the data folder, loopback listeners, no configuration needed)."""
    cfg = _config(data, config, database_url=database, **{"ews.http_listen": http, "ews.https_listen": https,
                                                           "transport.inbound_listen": smtp,
                                                           "transport.submission_listen": submission,
                                                           "metrics.listen": metrics,
                                                           "ews.workers": workers})
    logging.basicConfig(level=cfg["log_level"], format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if cfg["log_level"] != "DEBUG":  # aiosmtpd logs each SMTP command at INFO: protocol logging, only for DEBUG
        logging.getLogger("mail.log").setLevel(logging.WARNING)
    from mailroom.server.app import run

    try:
        run(cfg)
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
    """Stop accepting a domain (it must have no mailboxes, aliases or groups)."""
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
    room: Annotated[bool, typer.Option("--room", help="A room mailbox (a resource; no password needed).")] = False,
    equipment: Annotated[bool, typer.Option("--equipment", help="An equipment mailbox (a resource; no password "
                                                                "needed).")] = False,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Create a mailbox with Exchange's default folders."""
    if room and equipment:
        _fail("give one of --room or --equipment, not both")
    kind = "room" if room else "equipment" if equipment else "user"
    resource = kind != "user" and password is None and not password_stdin
    store = _store(data, config, database)
    try:
        secret = None if resource else hash_password(_password(password, password_stdin))
        mailbox = store.directory.add_mailbox(address, secret, name, mailbox_database, kind)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    shown = f"{mailbox.kind} mailbox" if mailbox.kind != "user" else "mailbox"
    console.print(f"{shown} {mailbox.address} added ({mailbox.display_name}, database {mailbox.database_name})")


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


_PHONE_KINDS = {"business": "BusinessPhone", "mobile": "MobilePhone", "home": "HomePhone", "fax": "BusinessFax",
                "pager": "Pager", "other": "OtherTelephone", "assistant": "AssistantPhone"}


def _phones(given: list[str]) -> dict[str, str]:
    """``KIND=NUMBER`` options by PhoneNumbers key (business, mobile, home, fax, pager, other, assistant
    or any EWS key such as CarPhone); an empty NUMBER removes that phone."""
    keys = {key.lower(): key for key in PHONE_KEYS} | _PHONE_KINDS
    phones = {}
    for option in given:
        kind, equals, number = option.partition("=")
        key = keys.get(kind.strip().lower())
        if not equals or key is None:
            _fail(f"--phone takes KIND=NUMBER with KIND one of {', '.join(_PHONE_KINDS)} or an EWS key "
                  f"({', '.join(PHONE_KEYS)}), not {option!r}")
        phones[key] = number
    return phones


def _text(help_text: str, option: str) -> object:
    """An optional text option for one directory attribute."""
    return Annotated[str | None, typer.Option(option, help=f"{help_text} ('' removes it).")]


@mailbox_app.command("set")
def mailbox_set(
    address: str,
    throttling_policy: Annotated[str | None, typer.Option("--throttling-policy", help="Govern the mailbox by this "
                                                          "throttling policy (Set-Mailbox -ThrottlingPolicy).")] = None,
    no_throttling_policy: Annotated[bool, typer.Option("--no-throttling-policy", help="Take its own policy away (the "
                                                       "organization default, else Global, applies).")] = False,
    display_name: Annotated[str | None, typer.Option("--display-name", help="Display name.")] = None,
    first_name: _text("Given name", "--first-name") = None,
    initials: _text("Initials", "--initials") = None,
    last_name: _text("Surname", "--last-name") = None,
    company: _text("Company", "--company") = None,
    department: _text("Department", "--department") = None,
    title: _text("Job title", "--title") = None,
    office: _text("Office", "--office") = None,
    assistant: _text("Assistant's name", "--assistant") = None,
    notes: _text("Notes", "--notes") = None,
    street: _text("Street address", "--street") = None,
    city: _text("City", "--city") = None,
    state: _text("State or province", "--state") = None,
    country: _text("Country or region", "--country") = None,
    postal_code: _text("Postal code", "--postal-code") = None,
    manager: Annotated[str | None, typer.Option("--manager", help="The manager's mailbox address ('' removes it).")
                       ] = None,
    phone: Annotated[list[str] | None, typer.Option("--phone", help="KIND=NUMBER, repeatable: business, mobile, home, "
                                                    "fax, pager, other, assistant or an EWS key ('' NUMBER removes)."
                                                    )] = None,
    work_days: Annotated[str | None, typer.Option("--work-days", help="Working days: Weekdays, Weekend, AllDays or "
                                                  "day names (Monday,Tuesday or Mon,Tue).")] = None,
    start_time: Annotated[str | None, typer.Option("--working-hours-start-time", help="When work starts, HH:MM "
                                                   "(default 08:00).")] = None,
    end_time: Annotated[str | None, typer.Option("--working-hours-end-time", help="When work ends, HH:MM (default "
                                                 "17:00).")] = None,
    time_zone: Annotated[str | None, typer.Option("--working-hours-time-zone", help="The working hours' zone: a "
                                                  "Windows id (W. Europe Standard Time) or an IANA name "
                                                  "(Europe/Berlin); '' for the zone of whoever asks.")] = None,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Change a mailbox's settings and directory attributes (Set-Mailbox / Set-User), and its working
    hours (Set-MailboxCalendarConfiguration), which free/busy and meeting suggestions use."""
    values = {name: value for name, value in (
        ("GivenName", first_name), ("Initials", initials), ("Surname", last_name), ("CompanyName", company),
        ("Department", department), ("JobTitle", title), ("OfficeLocation", office), ("AssistantName", assistant),
        ("Notes", notes), ("Street", street), ("City", city), ("State", state), ("CountryOrRegion", country),
        ("PostalCode", postal_code)) if value is not None}
    phones = _phones(phone or [])
    if throttling_policy is not None and no_throttling_policy:
        _fail("give one of --throttling-policy NAME or --no-throttling-policy, not both")
    hours = (work_days, start_time, end_time, time_zone)
    changes_hours = any(v is not None for v in hours)
    changes_attributes = bool(values or phones) or manager is not None or display_name is not None
    changes_policy = throttling_policy is not None or no_throttling_policy
    if not (changes_hours or changes_attributes or changes_policy):
        _fail("give at least one option to change: --throttling-policy NAME or --no-throttling-policy, "
              "--display-name, a directory attribute (--department, --title, --manager, --office, --company, "
              "--phone KIND=NUMBER, ...), working hours (--work-days, --working-hours-start-time, ...; see --help)")
    if display_name is not None and not display_name.strip():
        _fail("--display-name cannot be empty")
    store = _store(data, config, database)
    try:
        if changes_hours:
            changed = _working_hours(store.working_hours.get(store.directory.require(address)), *hours)
            store.working_hours.set(address, changed)
            console.print(f"{address}: working hours {_hours_text(changed)}", highlight=False)
        if display_name is not None:
            store.directory.set_display_name(address, display_name.strip())
        if values or phones or manager is not None:
            store.directory.set_attributes(address, values, phones, manager)
        if no_throttling_policy:
            store.throttling.unassign(address)
        elif throttling_policy is not None:
            store.throttling.assign(address, throttling_policy)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    if changes_policy:
        governed = ("its own throttling policy removed" if no_throttling_policy
                    else f"throttling policy {throttling_policy}")
        console.print(f"{address}: {governed}", highlight=False)
    if changes_attributes:
        console.print(f"{address}: directory attributes changed", highlight=False)


_DAY_SETS = {"weekdays": (0, 1, 2, 3, 4), "weekend": (5, 6), "alldays": tuple(range(7))}


def _working_hours(current: WorkingHours, days: str | None, start: str | None, end: str | None,
                   zone: str | None) -> WorkingHours:
    """``current`` with the options given applied (ValueError for one that cannot be read)."""
    changes: dict[str, object] = {}
    if days is not None:
        names = [d.strip().lower() for d in days.replace(",", " ").split()]
        if len(names) == 1 and names[0] in _DAY_SETS:
            changes["days"] = _DAY_SETS[names[0]]
        else:
            found = [next((i for i, day in enumerate(DAYS) if len(n) >= 3 and day.lower().startswith(n)), None)
                     for n in names]
            if not found or None in found:
                raise ValueError(f"--work-days: {days!r} is not Weekdays, Weekend, AllDays or a list of day names")
            changes["days"] = tuple(sorted(set(found)))  # type: ignore[arg-type]
    for key, text in (("start", start), ("end", end)):
        if text is not None:
            hours, colon, minutes = text.strip().partition(":")
            if not (colon and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and int(minutes) < 60):
                raise ValueError(f"{text!r} is not a time of day (HH:MM)")
            changes[key] = int(hours) * 60 + int(minutes)
    if zone is not None:
        zone = zone.strip()
        windows = zone if zone in timezones.windows_ids() or not zone else timezones.windows_id_for(zone)
        if windows is None:
            raise ValueError(f"--working-hours-time-zone: {zone!r} is not a Windows time zone id or IANA zone name")
        changes["zone"] = windows or None
    return replace(current, **changes)


def _hours_text(hours: WorkingHours) -> str:
    zone = hours.zone or "the zone of whoever asks"
    return (f"{hours.day_names} {hours.start // 60:02}:{hours.start % 60:02}-{hours.end // 60:02}:"
            f"{hours.end % 60:02} ({zone})")


@mailbox_app.command("show")
def mailbox_show(address: str, data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """Print a mailbox, its directory attributes (Get-User) and its working hours."""
    store = _store(data, config, database)
    directory = store.directory
    mailbox = _mailbox(store, address)
    entry = directory.entry(mailbox)
    lines = [("Address", mailbox.address), ("DisplayName", mailbox.display_name), ("Kind", mailbox.kind),
             ("Database", mailbox.database_name), ("Aliases", ", ".join(mailbox.aliases))]
    lines += [(name, entry.attributes[name]) for name in ATTRIBUTES if name in entry.attributes]
    lines += [(key, entry.phones[key]) for key in PHONE_KEYS if key in entry.phones]
    if entry.manager is not None:
        lines.append(("Manager", entry.manager.address))
    if entry.direct_reports:
        lines.append(("DirectReports", ", ".join(m.address for m in entry.direct_reports)))
    lines.append(("WorkingHours", _hours_text(store.working_hours.get(mailbox))))
    for name, value in lines:
        console.print(f"{name}: {value}", highlight=False)


@mailbox_app.command("set-notifications")
def mailbox_set_notifications(
    address: str,
    enabled: Annotated[bool, typer.Option("--enabled/--disabled", help="Allow or refuse subscriptions.")],
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Turn EWS notifications (pull, push and streaming subscriptions) on or off for a mailbox."""
    store = _store(data, config, database)
    mailbox = _mailbox(store, address)
    optout.set_enabled(store, mailbox, enabled)
    console.print(f"notifications {'enabled' if enabled else 'disabled'} for {mailbox.address}")


@mailbox_app.command("junk")
def mailbox_junk(
    address: str,
    block: Annotated[list[str] | None, typer.Option("--block", help="Block a sender address or domain.")] = None,
    unblock: Annotated[list[str] | None, typer.Option("--unblock", help="Unblock an address or domain.")] = None,
    trust: Annotated[list[str] | None, typer.Option("--trust", help="Trust a sender address or domain.")] = None,
    untrust: Annotated[list[str] | None, typer.Option("--untrust", help="Stop trusting an address or domain.")] = None,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Show or change a mailbox's junk email lists (Set-MailboxJunkEmailConfiguration): mail from a
    blocked sender or domain is delivered to Junk Email unless it is trusted."""
    store = _store(data, config, database)
    mailbox = _mailbox(store, address)
    changes = {"block": block, "unblock": unblock, "trust": trust, "untrust": untrust}
    if any(changes.values()):
        lists = junk.change(store, mailbox, **{k: tuple(v or ()) for k, v in changes.items()})
    else:
        lists = junk.load(store, mailbox)
    console.print(f"BlockedSendersAndDomains: {', '.join(lists.blocked)}", highlight=False)
    console.print(f"TrustedSendersAndDomains: {', '.join(lists.trusted)}", highlight=False)


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


@group_app.command("add")
def group_add(
    address: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    room_list: Annotated[bool, typer.Option("--room-list", help="A room list (its rooms are what GetRooms "
                                                                "answers).")] = False,
    data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
) -> None:
    """Create a distribution group (New-DistributionGroup [-RoomList])."""
    try:
        group = _store(data, config, database).groups.add(address, name, room_list)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"{'room list' if group.room_list else 'group'} {group.address} added ({group.display_name})",
                  highlight=False)


@group_app.command("list")
def group_list(data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """List groups with their members."""
    store = _store(data, config, database)
    table = Table("Address", "Display name", "Room list", "Members")
    for group in store.groups.list():
        table.add_row(group.address, group.display_name, "yes" if group.room_list else "",
                      ", ".join(m.address for m in store.groups.members(group)))
    console.print(table)


@group_app.command("remove")
def group_remove(address: str, data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """Delete a group (its mailboxes stay; groups it was a member of lose it)."""
    try:
        _store(data, config, database).groups.remove(address)
    except StoreError as exc:
        _fail(str(exc))
    console.print(f"group {address} removed", highlight=False)


@group_member_app.command("add")
def group_member_add(group: str, member: str, data: DataOpt = None, config: ConfigOpt = None,
                     database: DatabaseOpt = None) -> None:
    """Add a mailbox, a group or an external address to a group."""
    try:
        _store(data, config, database).groups.add_member(group, member)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"{member} added to {group}", highlight=False)


@group_member_app.command("remove")
def group_member_remove(group: str, member: str, data: DataOpt = None, config: ConfigOpt = None,
                        database: DatabaseOpt = None) -> None:
    """Take a member out of a group."""
    try:
        _store(data, config, database).groups.remove_member(group, member)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"{member} removed from {group}", highlight=False)


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


def _with_options(options: list[tuple[str, str, str]]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command one text option per (name, flag, help) of ``options``: Exchange's parameters,
    their flags in kebab case; the command receives them as ``**values`` by Exchange's name."""
    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command)
        fixed = [p for p in signature.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
        extra = []
        for name, flag, text in options:
            annotation = Annotated[str | None, typer.Option(flag, help=text)]
            extra.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation))
            command.__annotations__[name] = annotation
        command.__signature__ = signature.replace(parameters=fixed + extra)  # type: ignore[attr-defined]
        return command
    return decorate


_with_parameters = _with_options([
    (p.name, p.option, f"{p.help} A whole number or 'unlimited' (Global: "
                       f"{'unlimited' if p.default is None else p.default}).") for p in throttling.PARAMETERS])


def _values(given: dict[str, str | None]) -> dict[str, int | None]:
    try:
        return {name: throttling.parse_value(throttling.parameter(name), text)
                for name, text in given.items() if text is not None}
    except throttling.PolicyError as exc:
        _fail(str(exc))


def _settings(values: dict[str, int | None]) -> str:
    return ", ".join(f"{k}={'unlimited' if v is None else v}" for k, v in values.items()) or "(inherits all)"


@policy_app.command("new")
@_with_parameters
def policy_new(
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


@policy_app.command("get")
def policy_get(name: str, data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """One policy's parameters: the values it sets, and what it leaves to inherit."""
    found = [(p, users) for p, users in _store(data, config, database).throttling.policies() if p.name == name]
    if not found:
        _fail(f"no throttling policy {name}")
    policy, users = found[0]
    kind = ", the organization default" if policy.is_default else ""
    table = Table("Parameter", "Value", title=f"{policy.name}{kind} ({users} mailbox(es))")
    for param in throttling.PARAMETERS:
        value = policy.values.get(param.name)
        shown = "inherited" if param.name not in policy.values else "unlimited" if value is None else str(value)
        table.add_row(param.name, shown)
    console.print(table)


@policy_app.command("association")
def policy_association(mailbox: str, data: DataOpt = None, config: ConfigOpt = None,
                       database: DatabaseOpt = None) -> None:
    """The effective throttling values of MAILBOX and the policy each one comes from
    (Get-ThrottlingPolicyAssociation)."""
    store = _store(data, config, database)
    found = _mailbox(store, mailbox)
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


WhenOpt = Annotated[datetime | None, typer.Option(help="ISO 8601 date-time (UTC unless it has an offset).",
                                                  formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z",
                                                           "%Y-%m-%d %H:%M:%S"])]
EventOpt = Annotated[str | None, typer.Option("--event-id", help="RECEIVE, DELIVER, SEND, FAIL, ...")]


def _tracking_log(data: Path | None, config_file: Path | None) -> MessageTrackingLog:
    return MessageTrackingLog.configured(_config(data, config_file))


def _utc(when: datetime | None) -> datetime | None:
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def _result_size(value: str) -> int | None:
    if value.lower() == "unlimited":
        return None
    if not value.isdigit() or int(value) < 1:
        _fail(f"--result-size must be a positive number or 'unlimited', not {value!r}")
    return int(value)


@tracking_app.command("search")
def tracking_search(
    start: WhenOpt = None,
    end: WhenOpt = None,
    sender: Annotated[str | None, typer.Option(help="Sender address.")] = None,
    recipients: Annotated[str | None, typer.Option(help="Recipient addresses, comma-separated (any of them).")] = None,
    event_id: EventOpt = None,
    message_id: Annotated[str | None, typer.Option("--message-id", help="Message-ID, with its <>.")] = None,
    subject: Annotated[str | None, typer.Option(help="Part of the subject.")] = None,
    source: Annotated[str | None, typer.Option(help="SMTP, PICKUP, STOREDRIVER, ...")] = None,
    result_size: Annotated[str, typer.Option("--result-size", help="Most records shown, or 'unlimited'.")] = "1000",
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Search the message tracking log, as Get-MessageTrackingLog does (end is exclusive)."""
    query = TrackingQuery(start=_utc(start), end=_utc(end), sender=sender, event_id=event_id, message_id=message_id,
                          recipients=tuple(r.strip() for r in (recipients or "").split(",") if r.strip()),
                          subject=subject, source=source, result_size=_result_size(result_size))
    table = Table("Timestamp", "EventId", "Source", "Sender", "Recipients", "MessageSubject", "MessageId",
                  "InternalMessageId", "TotalBytes", "ConnectorId")
    for event in _tracking_log(data, config).search(query):
        table.add_row(event.date_time.isoformat(timespec="seconds"), event.event_id, event.source,
                      event.sender_address, ", ".join(event.recipient_address), event.message_subject,
                      event.message_id, event.internal_message_id,
                      "" if event.total_bytes is None else str(event.total_bytes), event.connector_id)
    console.print(table)


@tracking_app.command("counts")
def tracking_counts(
    start: WhenOpt = None,
    end: WhenOpt = None,
    event_id: EventOpt = None,
    by: Annotated[str, typer.Option(help="Count per sender, recipient or event.")] = "sender",
    data: DataOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Count tracking records in a time range, e.g. messages received per sender:
    ``tracking counts --start 2026-11-01 --end 2026-12-01 --event-id RECEIVE --by sender``."""
    if by not in ("sender", "recipient", "event"):
        _fail(f"--by must be sender, recipient or event, not {by!r}")
    query = TrackingQuery(start=_utc(start), end=_utc(end), event_id=event_id, result_size=None)
    counts: Counter[str] = Counter()
    for event in _tracking_log(data, config).search(query):
        if by == "recipient":
            counts.update(event.recipient_address)
        else:
            counts[event.sender_address if by == "sender" else event.event_id] += 1
    table = Table(by.capitalize(), "Count")
    for key, count in counts.most_common():
        table.add_row(key or "<>", str(count))
    console.print(table)
def _queue_admin(data: Path | None, config_file: Path | None) -> QueueAdmin:
    """The queue of the data folder (it works while the server runs)."""
    cfg = _config(data, config_file)
    try:
        return QueueAdmin(cfg.data_dir, MessageTrackingLog.configured(cfg),
                          expiration=cfg["transport.message_expiration_timeout"])
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        _fail(f"cannot open the queue in {cfg.data_dir}: {exc}")


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds") if timestamp else ""


@queue_app.command("list")
def queue_list(data: DataOpt = None, config: ConfigOpt = None) -> None:
    """List the queues: Submission, one per next hop, Unreachable and Poison."""
    table = Table("Identity", "DeliveryType", "Status", "MessageCount", "NextRetryTime", "LastError")
    for q in _queue_admin(data, config).queues():
        table.add_row(q.identity, q.delivery_type, q.status, str(q.message_count), _when(q.next_retry), q.last_error)
    console.print(table)


@queue_app.command("messages")
def queue_messages(
    queue: Annotated[str | None, typer.Argument(help="Only this queue (default: all).")] = None,
    data: DataOpt = None, config: ConfigOpt = None,
) -> None:
    """List queued messages (the MESSAGE_ID column is what the message commands take)."""
    try:
        infos = _queue_admin(data, config).messages(queue)
    except QueueError as exc:
        _fail(str(exc))
    table = Table("MessageId", "Queue", "Status", "From", "Recipients", "Size", "Subject", "Received", "LastError")
    for info in infos:
        m = info.message
        errors_ = [r.last_response for r in info.recipients if r.last_response]
        table.add_row(str(m.id), info.queue, info.status, m.mail_from or "<>",
                      ", ".join(r.address for r in info.recipients), str(m.size), m.subject, _when(m.received),
                      errors_[-1] if errors_ else m.last_error)
    console.print(table)


@queue_app.command("retry")
def queue_retry(
    queue: str,
    resubmit: Annotated[bool, typer.Option("--resubmit", help="Send the messages back through the categorizer "
                                                              "(for the Unreachable queue).")] = False,
    data: DataOpt = None, config: ConfigOpt = None,
) -> None:
    """Retry a queue now (the server picks it up within transport.queue_scan_interval)."""
    try:
        count = _queue_admin(data, config).retry(queue, resubmit)
    except QueueError as exc:
        _fail(str(exc))
    console.print(f"{count} message(s) in {queue} {'resubmitted' if resubmit else 'due for retry now'}")


MessageIdArg = Annotated[int, typer.Argument(help="The MessageId from mailroom queue messages.")]


@message_app.command("suspend")
def message_suspend(message_id: MessageIdArg, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Stop delivery attempts for a message until it is resumed."""
    _queue_action(lambda q: q.suspend(message_id), data, config)
    console.print(f"message {message_id} suspended")


@message_app.command("resume")
def message_resume(message_id: MessageIdArg, data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Resume a suspended message (one in the poison queue is processed again)."""
    _queue_action(lambda q: q.resume(message_id), data, config)
    console.print(f"message {message_id} resumed")


@message_app.command("remove")
def message_remove(
    message_id: MessageIdArg,
    ndr: Annotated[bool, typer.Option("--ndr/--no-ndr", help="Send the sender a non-delivery report.")] = True,
    data: DataOpt = None, config: ConfigOpt = None,
) -> None:
    """Remove a message from the queue (with a non-delivery report unless --no-ndr)."""
    _queue_action(lambda q: q.remove(message_id, ndr), data, config)
    console.print(f"message {message_id} removed{' (non-delivery report queued)' if ndr else ''}")


@message_app.command("export")
def message_export(
    message_id: MessageIdArg,
    to: Annotated[Path, typer.Option("--to", help="The .eml file to write.")],
    data: DataOpt = None, config: ConfigOpt = None,
) -> None:
    """Write a suspended message's content to a file."""
    content = _queue_action(lambda q: q.export(message_id), data, config)
    try:
        to.write_bytes(content)
    except OSError as exc:
        _fail(str(exc))
    console.print(f"message {message_id} written to {to} ({len(content)} bytes)")


def _queue_action(action: Callable[[QueueAdmin], T], data: Path | None, config: Path | None) -> T:
    admin = _queue_admin(data, config)
    try:
        return action(admin)
    except QueueError as exc:
        _fail(str(exc))
    finally:
        admin.close()


def main() -> None:
    app()


# -- calendar processing -------------------------------------------------------------------------
processing_app = typer.Typer(help="How a mailbox answers meeting requests (Set-CalendarProcessing): the Resource "
                                  "Booking Attendant of rooms and equipment.", no_args_is_help=True)
app.add_typer(processing_app, name="calendar-processing")


def _processing_options() -> list[tuple[str, str, str]]:
    options = []
    for name, param in calendar_processing.PARAMETERS.items():
        choices = param.metadata.get("choices")
        kind = ("One of " + ", ".join(choices) if choices else "True or false" if isinstance(param.default, bool)
                else "A whole number" if isinstance(param.default, int) else "Text")
        options.append((name, "--" + param.name.replace("_", "-"), f"{param.metadata['help']} {kind} (resource "
                                                                   f"default: {_shown(param.default) or 'empty'})."))
    return options


def _processing_table(address: str, settings: calendar_processing.CalendarProcessing) -> Table:
    table = Table("Parameter", "Value", title=f"Calendar processing of {address}")
    for name, value in settings.values().items():
        table.add_row(name, _shown(value))
    return table


def _shown(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@processing_app.command("get")
def processing_get(address: str, data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None) -> None:
    """A mailbox's calendar processing settings (Get-CalendarProcessing), defaults included."""
    store = _store(data, config, database)
    mailbox = _mailbox(store, address)
    console.print(_processing_table(mailbox.address, store.calendar_processing.get(mailbox)))


@processing_app.command("set")
@_with_options(_processing_options())
def processing_set(address: str, data: DataOpt = None, config: ConfigOpt = None, database: DatabaseOpt = None,
                   **values: str | None) -> None:
    """Change a mailbox's calendar processing settings (Set-CalendarProcessing); the next request uses them."""
    try:
        given = {name: calendar_processing.parse_value(name, text) for name, text in values.items()
                 if text is not None}
        if not given:
            _fail("give at least one setting to change (see --help)")
        settings = _store(data, config, database).calendar_processing.set(address, given)
    except (StoreError, ValueError) as exc:
        _fail(str(exc))
    console.print(_processing_table(address.lower(), settings))
