"""Tasks through exchangelib and raw SOAP: status and percent rules, Exchange 2007 SP1 RU4 date
semantics with the server running in a time zone far from the client's, recurring tasks."""

import time
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from exchangelib import EWSTimeZone, Task
from exchangelib.recurrence import DailyRegeneration, NoEndPattern, TaskRecurrence, WeeklyPattern

from .conftest import PASSWORD
from .soap import codes, envelope, parse, post

LOS_ANGELES = EWSTimeZone("America/Los_Angeles")


@pytest.fixture
def far_server_zone(monkeypatch):
    """The whole process (the in-thread server included) runs at UTC+14 while the client is at UTC-8."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    assert time.localtime().tm_gmtoff == 14 * 3600
    yield
    monkeypatch.undo()
    time.tzset()


def _soap(server, mailbox, body: str):
    return parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))


def _get(server, mailbox, item_id: str):
    return _soap(server, mailbox, f"""<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape>
</m:ItemShape><m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>""")


def test_a_due_date_with_an_offset_is_the_day_the_client_meant(far_server_zone, server, mailbox):
    # 22:00 on the 10th in California is already the 11th in UTC and the 12th at the server.
    created = _soap(server, mailbox, """<m:CreateItem><m:Items><t:Task><t:Subject>File taxes</t:Subject>
<t:DueDate>2030-01-10T22:00:00-08:00</t:DueDate><t:StartDate>2030-01-09T10:00:00-08:00</t:StartDate>
</t:Task></m:Items></m:CreateItem>""")
    assert codes(created) == ["NoError"]
    task = _get(server, mailbox, created.find(".//{*}ItemId").get("Id"))
    due = datetime.fromisoformat(task.findtext(".//{*}DueDate").replace("Z", "+00:00"))
    start = datetime.fromisoformat(task.findtext(".//{*}StartDate").replace("Z", "+00:00"))
    assert due.astimezone(LOS_ANGELES).date() == date(2030, 1, 10)
    assert start.astimezone(LOS_ANGELES).date() == date(2030, 1, 9)
    assert due.astimezone(LOS_ANGELES).time().hour == 0


def test_completing_sets_percent_and_complete_date_in_the_clients_day(far_server_zone, account):
    account.default_timezone = LOS_ANGELES
    task = Task(account=account, folder=account.tasks, subject="Report", due_date=date(2030, 1, 10))
    task.save()
    got = account.tasks.get(id=task.id)
    assert (got.status, got.percent_complete, got.is_complete) == ("NotStarted", 0, False)
    got.percent_complete = Decimal(40)
    got.save(update_fields=["percent_complete"])
    assert account.tasks.get(id=task.id).status == "InProgress"
    got.status = "Completed"
    got.save(update_fields=["status"])
    done = account.tasks.get(id=task.id)
    assert (done.status, done.percent_complete, done.is_complete) == ("Completed", 100, True)
    client_today = datetime.now(LOS_ANGELES).date()
    assert done.complete_date.astimezone(LOS_ANGELES).date() == client_today
    assert done.due_date == date(2030, 1, 10)
    done.percent_complete = Decimal(0)
    done.save(update_fields=["percent_complete"])
    reopened = account.tasks.get(id=task.id)
    assert (reopened.status, reopened.complete_date) == ("NotStarted", None)


def test_percent_out_of_range_is_refused_and_nothing_changes(server, mailbox, server_store):
    answer = _soap(server, mailbox, """<m:CreateItem><m:Items><t:Task><t:Subject>Too much</t:Subject>
<t:PercentComplete>150</t:PercentComplete></t:Task></m:Items></m:CreateItem>""")
    assert codes(answer) == ["ErrorInvalidPercentCompleteValue"]
    folder = server_store.folders.distinguished(mailbox, "tasks")
    assert server_store.folders.get(mailbox, folder.id).total_count == 0


def test_completing_a_regenerating_task_makes_the_next_one(account):
    account.default_timezone = LOS_ANGELES
    start = datetime.now(LOS_ANGELES).date() - timedelta(days=1)
    task = Task(account=account, folder=account.tasks, subject="Water plants", start_date=start, due_date=start,
                recurrence=TaskRecurrence(pattern=DailyRegeneration(interval=3), boundary=NoEndPattern(start=start)))
    task.save()
    got = account.tasks.get(id=task.id)
    assert got.is_recurring
    got.status = "Completed"
    got.save(update_fields=["status"])
    tasks = {t.id: t for t in account.tasks.all()}
    assert len(tasks) == 2
    series = tasks[task.id]
    copy = next(t for i, t in tasks.items() if i != task.id)
    assert (copy.status, copy.is_recurring, copy.subject) == ("Completed", False, "Water plants")
    assert series.status == "NotStarted" and series.recurrence is not None
    today = datetime.now(LOS_ANGELES).date()
    assert series.start_date == today + timedelta(days=3)


def test_completing_a_weekly_task_moves_it_to_the_next_week(account):
    account.default_timezone = LOS_ANGELES
    start = date(2030, 1, 7)  # a Monday
    task = Task(account=account, folder=account.tasks, subject="Timesheet", start_date=start, due_date=start,
                recurrence=TaskRecurrence(pattern=WeeklyPattern(interval=1, weekdays=[1]),
                                          boundary=NoEndPattern(start=start)))
    task.save()
    got = account.tasks.get(id=task.id)
    got.percent_complete = Decimal(100)
    got.save(update_fields=["percent_complete"])
    series = account.tasks.get(id=task.id)
    assert (series.start_date, series.due_date, series.status) == (date(2030, 1, 14), date(2030, 1, 14),
                                                                    "NotStarted")
    assert account.tasks.all().count() == 2
