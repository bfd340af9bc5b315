"""GetUserAvailability: free/busy (FreeBusy, FreeBusyMerged, Detailed, DetailedMerged, MergedOnly)
and meeting suggestions for a list of mailboxes, read from their calendars.

Times in the request and the answer are wall-clock times in the request's TimeZone. Anyone in
the organisation sees free/busy times (Exchange's default calendar permission); subjects and
locations only of calendars the caller may open, and never of private items. A mailbox this
server does not hold gets its own ErrorMailRecipientNotFound."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from lxml import etree

from mailroom.store.model import Mailbox
from mailroom.store.working_hours import WorkingHours

from .. import availability
from ..availability import Event
from ..dates import parse_utc, to_utc_text
from ..errors import EWSError, SOAPFault
from ..service import Operation, require
from ..xml import M, T, bool_text, m, sub, t, text_of

_MAX_MAILBOXES = 100
_MAX_WINDOW = timedelta(days=62)
_VIEWS = ("MergedOnly", "FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged")
_LOCAL = "%Y-%m-%dT%H:%M:%S"


class GetUserAvailability(Operation):
    name = "GetUserAvailabilityRequest"

    def execute(self, request: etree._Element) -> etree._Element:
        self.zone = availability.request_zone(request.find(t("TimeZone")), self.ctx.tz)
        self._hours: dict[int, WorkingHours] = {}  # by mailbox id: free/busy and suggestions both use them
        entries = list(require(request, m("MailboxDataArray")))
        root = (etree.SubElement(self.parent, m("GetUserAvailabilityResponse")) if self.parent is not None
                else etree.Element(m("GetUserAvailabilityResponse"), nsmap={"m": M, "t": T}))
        if len(entries) > _MAX_MAILBOXES:
            raise SOAPFault("ErrorMailboxDataArrayTooBig", f"At most {_MAX_MAILBOXES} mailboxes may be asked for.")
        mailboxes = [self._mailbox(e) for e in entries]
        options = request.find(t("FreeBusyViewOptions"))
        if options is not None:
            self._free_busy(sub(root, m("FreeBusyResponseArray")), options, mailboxes)
        suggestions = request.find(t("SuggestionsViewOptions"))
        if suggestions is not None:
            self._suggestions(sub(root, m("SuggestionsResponse")), suggestions, mailboxes)
        return root

    def _mailbox(self, entry: etree._Element) -> Mailbox | str:
        """The local mailbox an entry names, or its address when the server holds none."""
        address = (text_of(entry, f"{t('Email')}/{t('Address')}", "") or "").strip()
        return self.ctx.store.directory.mailbox_by_address(address) or address

    def _hours_of(self, mailbox: Mailbox) -> WorkingHours:
        """The mailbox's working hours, read once per request."""
        if mailbox.id not in self._hours:
            self._hours[mailbox.id] = self.ctx.store.working_hours.get(mailbox)
        return self._hours[mailbox.id]

    def _window(self, node: etree._Element | None, limit: timedelta) -> tuple[datetime, datetime]:
        if node is None:
            raise SOAPFault("ErrorSchemaValidation", "The time window is missing.")
        try:
            start = parse_utc(to_utc_text(text_of(node, t("StartTime"), "") or "", self.zone))
            end = parse_utc(to_utc_text(text_of(node, t("EndTime"), "") or "", self.zone))
        except EWSError as exc:
            raise SOAPFault("ErrorSchemaValidation", "StartTime and EndTime must be dates and times.") from exc
        if end <= start:
            raise EWSError("ErrorInvalidTimeInterval", "EndTime must be later than StartTime.")
        if end - start > limit:
            raise EWSError("ErrorTimeIntervalTooBig", f"The window may span at most {limit.days} days.")
        return start, end

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime(_LOCAL)

    # -- free/busy -----------------------------------------------------------------------------
    def _free_busy(self, holder: etree._Element, options: etree._Element, mailboxes: list[Mailbox | str]) -> None:
        failure: EWSError | None = None
        try:
            start, end = self._window(options.find(t("TimeWindow")), _MAX_WINDOW)
            view = (text_of(options, t("RequestedView"), "DetailedMerged") or "").strip()
            if view not in _VIEWS:
                raise EWSError("ErrorInvalidFreeBusyViewType", f"{view!r} is not a free/busy view.")
            interval = int(text_of(options, t("MergedFreeBusyIntervalInMinutes"), "30") or 30)
            if not 5 <= interval <= 1440:
                raise EWSError("ErrorInvalidMergedFreeBusyInterval", "The interval must be 5 to 1440 minutes.")
        except EWSError as err:
            failure = err
        for mailbox in mailboxes:
            response = sub(holder, m("FreeBusyResponse"))
            message = self.success(response, "ResponseMessage")
            try:
                if failure is not None:
                    raise failure
                self._one_view(response, self._known(mailbox), start, end, view, interval)
            except EWSError as err:
                response.remove(message)
                for child in list(response):
                    response.remove(child)
                self.error(response, err, "ResponseMessage")

    def _known(self, mailbox: Mailbox | str) -> Mailbox:
        if isinstance(mailbox, str):
            raise EWSError("ErrorMailRecipientNotFound", f"No mailbox with address {mailbox!r} on this server.")
        return mailbox

    def _one_view(self, response: etree._Element, mailbox: Mailbox, start: datetime, end: datetime, view: str,
                  interval: int) -> None:
        found = availability.events(self.ctx.store, mailbox, start, end)
        node = sub(response, m("FreeBusyView"))
        sub(node, t("FreeBusyViewType"), view)
        if view in ("MergedOnly", "FreeBusyMerged", "DetailedMerged"):
            sub(node, t("MergedFreeBusy"), availability.merged(found, start, end, interval))
        if view != "MergedOnly":
            events = sub(node, t("CalendarEventArray"))
            detailed = view.startswith("Detailed") and self.ctx.identity.may_open(mailbox)
            for event in found:
                self._event(events, event, detailed)
        self._working_hours(sub(node, t("WorkingHours")), self._hours_of(mailbox))

    def _event(self, parent: etree._Element, event: Event, detailed: bool) -> None:
        node = sub(parent, t("CalendarEvent"))
        sub(node, t("StartTime"), self._local(event.start))
        sub(node, t("EndTime"), self._local(event.end))
        sub(node, t("BusyType"), event.status)
        props = event.item.props
        private = props.get("Sensitivity") in ("Private", "Confidential")
        if not detailed:
            return
        details = sub(node, t("CalendarEventDetails"))
        if not private:
            sub(details, t("Subject"), props.get("Subject") or "")
            sub(details, t("Location"), props.get("Location") or "")
        kind = props.get("CalendarItemType")
        sub(details, t("IsMeeting"), bool_text(bool(props.get("IsMeeting"))))
        sub(details, t("IsRecurring"), bool_text(kind in ("Occurrence", "Exception")))
        sub(details, t("IsException"), bool_text(kind == "Exception"))
        sub(details, t("IsReminderSet"), bool_text(bool(props.get("ReminderIsSet"))))
        sub(details, t("IsPrivate"), bool_text(private))

    def _working_hours(self, node: etree._Element, hours: WorkingHours) -> None:
        """The mailbox's working hours, in their own zone (the requester's when they have none)."""
        _serializable_zone(sub(node, t("TimeZone")), availability.work_zone(hours, self.zone))
        periods = sub(node, t("WorkingPeriodArray"))
        period = sub(periods, t("WorkingPeriod"))
        sub(period, t("DayOfWeek"), hours.day_names)
        sub(period, t("StartTimeInMinutes"), str(hours.start))
        sub(period, t("EndTimeInMinutes"), str(hours.end))

    # -- suggestions ---------------------------------------------------------------------------
    def _suggestions(self, holder: etree._Element, options: etree._Element, mailboxes: list[Mailbox | str]) -> None:
        message = self.success(holder, "ResponseMessage")
        try:
            start, end = self._window(options.find(t("DetailedSuggestionsWindow")), _MAX_WINDOW)
            minutes = _number(options, "MeetingDurationInMinutes", 30, 30, 1440)
            good = _number(options, "GoodThreshold", 25, 1, 49)
            per_day = _number(options, "MaximumResultsByDay", 10, 0, 48)
            minimum = (text_of(options, t("MinimumSuggestionQuality"), "Fair") or "Fair").strip()
            if minimum not in availability.QUALITIES:
                raise SOAPFault("ErrorSchemaValidation", f"{minimum!r} is not a suggestion quality.")
            calendars = [None if isinstance(mb, str) else availability.events(self.ctx.store, mb, start, end)
                         for mb in mailboxes]
            hours = [self._hours_of(mb) for mb in mailboxes if not isinstance(mb, str)]
            days = sub(holder, m("SuggestionDayResultArray"))
            day = start.astimezone(self.zone).date()
            while datetime.combine(day, datetime.min.time(), self.zone) < end:
                self._day(days, day, minutes, calendars, hours, good, per_day, minimum)
                day += timedelta(days=1)
        except EWSError as err:
            holder.remove(message)
            for child in list(holder):
                holder.remove(child)
            self.error(holder, err, "ResponseMessage")

    def _day(self, parent: etree._Element, day: object, minutes: int, calendars: list, hours: list[WorkingHours],
             good: int, per_day: int, minimum: str) -> None:
        found = availability.day_suggestions(day, self.zone, minutes, calendars, good, hours)
        kept = [s for s in found if availability.QUALITIES.index(s.quality) <= availability.QUALITIES.index(minimum)]
        node = sub(parent, t("SuggestionDayResult"))
        sub(node, t("Date"), datetime.combine(day, datetime.min.time()).strftime(_LOCAL))
        best = min((availability.QUALITIES.index(s.quality) for s in found), default=3)
        sub(node, t("DayQuality"), availability.QUALITIES[best])
        suggestions = sub(node, t("SuggestionArray"))
        for suggestion in kept[:per_day]:
            item = sub(suggestions, t("Suggestion"))
            sub(item, t("MeetingTime"), suggestion.start.strftime(_LOCAL))
            sub(item, t("IsWorkTime"), "true")
            sub(item, t("SuggestionQuality"), suggestion.quality)
            conflicts = sub(item, t("AttendeeConflictDataArray"))
            for status in suggestion.conflicts:
                if status is None:
                    sub(conflicts, t("UnknownAttendeeConflictData"))
                else:
                    sub(sub(conflicts, t("IndividualAttendeeConflictData")), t("BusyType"), status)


def _number(options: etree._Element, name: str, default: int, low: int, high: int) -> int:
    text = text_of(options, t(name))
    try:
        value = default if text is None else int(text)
    except ValueError as exc:
        raise SOAPFault("ErrorSchemaValidation", f"{name} must be a number.") from exc
    if not low <= value <= high:
        raise EWSError("ErrorInvalidRequest", f"{name} must be between {low} and {high}.")
    return value


def _serializable_zone(node: etree._Element, zone: tzinfo) -> None:
    """The working hours' zone as a SerializableTimeZone: its standard offset (the lower of January's
    and July's), without daylight saving rules."""
    standard = min(datetime(2030, month, 15, tzinfo=zone).utcoffset() or timedelta(0) for month in (1, 7))
    sub(node, t("Bias"), str(int(-standard.total_seconds() // 60)))
    for tag in ("StandardTime", "DaylightTime"):
        when = sub(node, t(tag))
        sub(when, t("Bias"), "0")
        sub(when, t("Time"), "00:00:00")
        sub(when, t("DayOrder"), "0")
        sub(when, t("Month"), "0")
        sub(when, t("DayOfWeek"), "Sunday")

