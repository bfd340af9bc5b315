"""Each mailbox's working hours (Exchange's Set-MailboxCalendarConfiguration WorkDays,
WorkingHoursStartTime, WorkingHoursEndTime, WorkingHoursTimeZone), which free/busy and meeting
suggestions report and keep to. A mailbox that sets none works Monday to Friday, 08:00 to 17:00,
in the zone of whoever asks (Exchange's defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from . import tables as t
from .directory import Directory
from .engine import reading, writing
from .model import Mailbox

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class WorkingHours:
    days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday is 0
    start: int = 8 * 60  # minutes after midnight
    end: int = 17 * 60
    zone: str | None = None  # a Windows time zone id; None: the zone of whoever asks

    def __post_init__(self) -> None:
        if not self.days or any(d not in range(7) for d in self.days) or len(set(self.days)) != len(self.days):
            raise ValueError("working days must be distinct days of the week, at least one")
        if not 0 <= self.start < self.end <= 24 * 60:
            raise ValueError("working hours must start before they end, within the day")

    @property
    def day_names(self) -> str:
        """The days as EWS lists them (DayOfWeek: ``Monday Tuesday ...``)."""
        return " ".join(DAYS[d] for d in sorted(self.days))


class WorkingHoursSettings:
    def __init__(self, engine: Engine, directory: Directory) -> None:
        self.engine = engine
        self.directory = directory

    def get(self, mailbox: Mailbox) -> WorkingHours:
        c = t.working_hours.c
        with reading(self.engine) as conn:
            row = conn.execute(select(c.work_days, c.start_minutes, c.end_minutes, c.time_zone)
                               .where(c.mailbox_id == mailbox.id)).first()
        if row is None:
            return WorkingHours()
        return WorkingHours(tuple(DAYS.index(d) for d in row.work_days.split()), row.start_minutes, row.end_minutes,
                            row.time_zone)

    def set(self, address: str, hours: WorkingHours) -> None:
        mailbox = self.directory.require(address)
        with writing(self.engine) as w:
            w.replace_row(t.working_hours, mailbox.id, work_days=hours.day_names, start_minutes=hours.start,
                          end_minutes=hours.end, time_zone=hours.zone)
