"""Extended (MAPI) properties on items and folders through exchangelib and raw SOAP, item classes
EWS has no type for, and the TimeZoneContext for property values."""

from __future__ import annotations

import bisect
import calendar
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from zoneinfo import ZoneInfo

import isodate
import pytest
from exchangelib import ExtendedProperty, Folder, Message
from exchangelib.ewsdatetime import UTC, EWSDateTime, EWSTimeZone
from lxml import etree
from tzlocal.windows_tz import win_tz

from mailroom.ews import timezones
from mailroom.store.model import NewItem

from .conftest import PASSWORD
from .soap import NS, codes, envelope, parse, post

MY_SET = "c11ff724-aa03-4555-9952-8fa248a11c3e"
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
WHEN = EWSDateTime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

# (property type, value, another value): one of every type exchangelib (and EWS) can set.
VALUES = [
    ("String", "héllo wörld", "changed"),
    ("Integer", 2_000_000_000, -5),
    ("Long", 2**40 + 1, -(2**62)),
    ("Short", -12, 32_767),
    ("Boolean", True, False),
    ("Double", Decimal("3.141592653589793"), Decimal("-0.5")),
    ("Float", Decimal("1.5"), Decimal("2.25")),
    ("Currency", 123_456_789, 0),
    ("SystemTime", WHEN, EWSDateTime(2030, 1, 1, tzinfo=UTC)),
    ("Binary", b"\x00\x01\xffbinary", b"x"),
    ("CLSID", "f8c1ef3b-1d8b-4f2e-9d4d-5f6a7b8c9d0e", "00062008-0000-0000-c000-000000000046"),
    ("ApplicationTime", Decimal("45000.25"), Decimal("1")),
    ("StringArray", ["a", "B", "ç"], ["only"]),
    ("IntegerArray", [1, -2, 3], [7]),
    ("LongArray", [2**40, 0], [1]),
    ("ShortArray", [1, 2], [3]),
    ("DoubleArray", [Decimal("1.25"), Decimal("-2")], [Decimal("0")]),
    ("FloatArray", [Decimal("0.5")], [Decimal("1.5"), Decimal("2.5")]),
    ("CurrencyArray", [5, 6], [7]),
    ("SystemTimeArray", [WHEN, EWSDateTime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)], [WHEN]),
    ("BinaryArray", [b"one", b"\x00two"], [b"z"]),
    ("CLSIDArray", ["f8c1ef3b-1d8b-4f2e-9d4d-5f6a7b8c9d0e"], ["00062008-0000-0000-c000-000000000046"]),
]  # ApplicationTimeArray, which exchangelib lacks, is tested with raw SOAP


def _classes() -> dict[str, type[ExtendedProperty]]:
    """Each type three ways: by tag, by PropertySetId + PropertyName, by a distinguished set + PropertyId."""
    found: dict[str, type[ExtendedProperty]] = {}
    for n, (prop_type, _v, _w) in enumerate(VALUES):
        found[f"tag_{prop_type.lower()}"] = type(f"Tag{prop_type}", (ExtendedProperty,), {
            "property_tag": 0x6100 + n, "property_type": prop_type})
        found[f"named_{prop_type.lower()}"] = type(f"Named{prop_type}", (ExtendedProperty,), {
            "property_set_id": MY_SET, "property_name": f"mailroom-{prop_type}", "property_type": prop_type})
        found[f"id_{prop_type.lower()}"] = type(f"Id{prop_type}", (ExtendedProperty,), {
            "distinguished_property_set_id": "PublicStrings", "property_id": 0x8500 + n, "property_type": prop_type})
    return found


CLASSES = _classes()


class Score(ExtendedProperty):
    property_set_id = MY_SET
    property_name = "score"
    property_type = "Integer"


class Labels(ExtendedProperty):
    distinguished_property_set_id = "PublicStrings"
    property_name = "labels"
    property_type = "StringArray"


class Due(ExtendedProperty):
    property_tag = 0x6200
    property_type = "SystemTime"


class MapiSubject(ExtendedProperty):
    property_tag = 0x0037  # PR_SUBJECT: the item's own Subject
    property_type = "String"


class MessageFlags(ExtendedProperty):
    property_tag = 0x0E07  # PR_MESSAGE_FLAGS
    property_type = "Integer"


class Colour(ExtendedProperty):
    property_set_id = MY_SET
    property_name = "folder-colour"
    property_type = "String"


EXTRA = {"score": Score, "labels": Labels, "due": Due, "mapi_subject": MapiSubject, "message_flags": MessageFlags}


@pytest.fixture
def registered():
    done: list[str] = []
    try:
        for name, cls in {**CLASSES, **EXTRA}.items():
            Message.register(name, cls)
            done.append(name)
        Folder.register("colour", Colour)
        yield
        Folder.deregister("colour")
    finally:
        for name in done:
            Message.deregister(name)


def test_every_type_round_trips_by_tag_and_by_name(account, registered):
    first = {name: VALUES[n // 3][1] for n, name in enumerate(CLASSES)}
    msg = Message(account=account, folder=account.drafts, subject="typed", **first)
    msg.save()
    got = account.drafts.get(id=msg.id)
    assert {name: getattr(got, name) for name in CLASSES} == first

    second = {name: VALUES[n // 3][2] for n, name in enumerate(CLASSES)}
    for name, value in second.items():
        setattr(got, name, value)
    got.save(update_fields=list(second))
    again = account.drafts.get(id=msg.id)
    assert {name: getattr(again, name) for name in CLASSES} == second

    gone = list(CLASSES)[::2]
    for name in gone:
        setattr(again, name, None)
    again.save(update_fields=gone)
    last = account.drafts.get(id=msg.id)
    assert all(getattr(last, name) is None for name in gone)
    assert all(getattr(last, name) == second[name] for name in list(CLASSES)[1::2])


def test_restrictions_and_sorting_on_extended_properties(account, registered):
    for subject, score, labels, due in (("low", 1, ["x", "Urgent"], WHEN), ("mid", 5, None, None),
                                        ("high", 9, ["later"], EWSDateTime(2020, 1, 1, tzinfo=UTC)),
                                        ("none", None, None, None)):
        Message(account=account, folder=account.drafts, subject=subject, score=score, labels=labels,
                due=due, id_short=score and -score, tag_double=score and Decimal(score) / 4).save()
    drafts = account.drafts.all()

    def names(qs):
        return list(qs.values_list("subject", flat=True))

    assert names(drafts.filter(score__gt=1).order_by("score")) == ["mid", "high"]
    assert names(drafts.filter(score=5)) == ["mid"]
    assert names(drafts.exclude(score=5).order_by("subject")) == ["high", "low", "none"]
    assert names(drafts.filter(score__exists=True).order_by("-score")) == ["high", "mid", "low"]
    assert names(drafts.order_by("score")) == ["low", "mid", "high", "none"]  # a missing value sorts last
    assert names(drafts.filter(labels__contains=["urgent"])) == ["low"]
    assert names(drafts.filter(labels__icontains="LAT")) == ["high"]
    assert names(drafts.filter(due__lt=WHEN)) == ["high"]
    assert names(drafts.filter(due__range=(WHEN, WHEN))) == ["low"]
    assert names(drafts.filter(id_short__lte=-5).order_by("id_short")) == ["high", "mid"]  # PublicStrings + id
    assert names(drafts.filter(tag_double__gt=Decimal("0.3"), tag_double__lt=Decimal(2))) == ["mid"]  # by tag


def test_well_known_tags_are_the_real_properties(account, registered):
    msg = Message(account=account, folder=account.drafts, subject="visible", mapi_subject="renamed by tag")
    msg.save()
    got = account.drafts.get(id=msg.id)
    assert got.subject == "renamed by tag" and got.mapi_subject == "renamed by tag"
    assert got.message_flags == 0x8  # MSGFLAG_UNSENT; exchangelib saves it unread
    got.is_read = True
    got.save(update_fields=["is_read"])
    assert account.drafts.get(id=msg.id).message_flags == 0x9  # and MSGFLAG_READ
    assert list(account.drafts.filter(mapi_subject="RENAMED BY TAG").values_list("subject", flat=True)) == [
        "renamed by tag"]


def test_folder_extended_properties(account, server, mailbox, registered):
    def stored_colour(folder: Folder) -> str | None:
        folder.colour = None  # forget the local value: refresh() reads the server's
        folder.refresh()
        return folder.colour

    folder = Folder(parent=account.inbox, name="Coloured", folder_class="IPF.Mailroom", colour="teal")
    folder.save()
    assert stored_colour(folder) == "teal"
    folder.colour = "plum"
    folder.save(update_fields=["colour"])
    assert stored_colour(folder) == "plum"
    plain = Folder(parent=account.inbox, name="Plain", folder_class="IPF.Mailroom", colour="pink")
    plain.save()
    plain.colour = None
    plain.save(update_fields=["colour"])
    assert stored_colour(plain) is None
    uri = f'<t:ExtendedFieldURI PropertySetId="{MY_SET}" PropertyName="folder-colour" PropertyType="String"/>'
    body = ('<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>'
            f'<t:AdditionalProperties><t:FieldURI FieldURI="folder:DisplayName"/>{uri}</t:AdditionalProperties>'
            '</m:FolderShape><m:Restriction>'
            f'<t:Contains ContainmentMode="Prefixed" ContainmentComparison="IgnoreCase">{uri}'
            '<t:Constant Value="PL"/></t:Contains></m:Restriction>'
            '<m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindFolder>')
    root = parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))
    assert [n.text for n in root.iterfind(".//t:DisplayName", NS)] == ["Coloured"]
    assert [n.text for n in root.iterfind(".//t:ExtendedProperty/t:Value", NS)] == ["plum"]


# -- raw SOAP -----------------------------------------------------------------------------------------
def _call(server, mailbox, body: str, version: str | None = "Exchange2016", header: str = "") -> etree._Element:
    return parse(post(server.ews_url, envelope(body, version, header), mailbox.address, PASSWORD))


def _prop(attrs: str, value: str) -> str:
    return f"<t:ExtendedProperty><t:ExtendedFieldURI {attrs}/><t:Value>{value}</t:Value></t:ExtendedProperty>"


def test_extended_property_values_are_checked(server, mailbox):
    def create(prop: str) -> list[str]:
        body = ('<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message><t:Subject>x</t:Subject>'
                f"{prop}</t:Message></m:Items></m:CreateItem>")
        return codes(_call(server, mailbox, body))

    assert create(_prop('PropertyTag="0x6001" PropertyType="Integer"', "twelve")) == [
        "ErrorInvalidExtendedPropertyValue"]
    assert create(_prop('PropertyTag="0x6001" PropertyType="Short"', "70000")) == [
        "ErrorInvalidExtendedPropertyValue"]
    assert create(_prop('PropertyTag="0x6001" PropertyType="Boolean"', "maybe")) == [
        "ErrorInvalidExtendedPropertyValue"]
    assert create(_prop('PropertyTag="0x6001" PropertyType="Binary"', "!!not base64!!")) == [
        "ErrorInvalidExtendedPropertyValue"]
    assert create(_prop('PropertyTag="0x8001" PropertyType="String"', "x")) == [
        "ErrorNoPropertyTagForCustomProperties"]
    assert create(_prop(f'PropertySetId="{MY_SET}" PropertyType="String"', "x")) == [
        "ErrorInvalidExtendedProperty"]
    assert create(_prop('PropertyTag="0x6001" PropertyType="StringArray"', "x")) == [
        "ErrorInvalidExtendedPropertyValue"]
    assert create(_prop('PropertyTag="0x6001" PropertyType="Boolean"', "1")) == ["NoError"]

    times = 'PropertyTag="0x6002" PropertyType="ApplicationTimeArray"'
    prop = (f"<t:ExtendedProperty><t:ExtendedFieldURI {times}/><t:Values><t:Value>45000.5</t:Value>"
            "<t:Value>-1.25</t:Value></t:Values></t:ExtendedProperty>")
    body = ('<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message><t:Subject>times</t:Subject>'
            f"{prop}</t:Message></m:Items></m:CreateItem>")
    item_id = _call(server, mailbox, body).find(".//t:ItemId", NS).get("Id")
    get = ('<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>'
           f'<t:ExtendedFieldURI {times}/></t:AdditionalProperties></m:ItemShape>'
           f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>')
    values = _call(server, mailbox, get).iterfind(".//t:ExtendedProperty/t:Values/t:Value", NS)
    assert [v.text for v in values] == ["45000.5", "-1.25"]


def test_naive_times_in_properties_follow_the_time_zone_context(server, mailbox, account):
    zone = '<t:TimeZoneContext><t:TimeZoneDefinition Id="W. Europe Standard Time"/></t:TimeZoneContext>'
    due = 'PropertyTag="0x6200" PropertyType="SystemTime"'
    body = ('<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:Message><t:Subject>zoned</t:Subject>'
            f"{_prop(due, '2024-07-01T12:00:00')}</t:Message></m:Items></m:CreateItem>")
    item_id = _call(server, mailbox, body, header=zone).find(".//t:ItemId", NS).get("Id")
    get = ('<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>'
           f'<t:ExtendedFieldURI {due}/></t:AdditionalProperties></m:ItemShape>'
           f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>')
    assert _call(server, mailbox, get).find(".//t:Value", NS).text == "2024-07-01T10:00:00Z"  # CEST is UTC+2
    Message.register("due", Due)
    try:
        berlin = EWSTimeZone("Europe/Berlin")
        assert account.drafts.get(subject="zoned").due == EWSDateTime(2024, 7, 1, 12, tzinfo=berlin)
    finally:
        Message.deregister("due")


@pytest.mark.parametrize("item_class", ["IPM.MyApp", "IPM.Sharing", "IPM.InfoPath.Form1"])
def test_classes_without_a_type_are_item_for_exchange2007_and_message_later(server, server_store, mailbox,
                                                                            item_class):
    body = ('<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/></m:SavedItemFolderId>'
            f"<m:Items><t:Item><t:ItemClass>{item_class}</t:ItemClass><t:Subject>custom</t:Subject></t:Item>"
            "</m:Items></m:CreateItem>")
    created = _call(server, mailbox, body, version="Exchange2007")
    assert codes(created) == ["NoError"]
    item_id = created.find(".//t:ItemId", NS).get("Id")
    inbox = server_store.folders.distinguished(mailbox, "inbox")
    server_store.items.create(mailbox, inbox.id, NewItem(props={"ItemClass": item_class, "Subject": "stored"}))
    get = ('<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>'
           f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>')
    find = ('<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>'
            '<m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>')
    for version, element in (("Exchange2007", "Item"), ("Exchange2007_SP1", "Message"), ("Exchange2016", "Message")):
        got = _call(server, mailbox, get, version=version).find(".//m:Items", NS)
        assert [etree.QName(c).localname for c in got] == [element]
        assert got[0].find("t:ItemClass", NS).text == item_class
        found = _call(server, mailbox, find, version=version).find(".//t:Items", NS)
        assert [etree.QName(c).localname for c in found] == [element, element]
        shown = {etree.QName(c).localname for c in found[0]}
        assert ("EffectiveRights" in shown, "LastModifiedTime" in shown) == (version != "Exchange2007",) * 2
        assert ("IsAssociated" in shown, "ConversationId" in shown) == (version == "Exchange2016",) * 2


def test_exchange2007_callers_only_get_what_their_schema_has(server, mailbox):
    convert = ('<m:ConvertId DestinationFormat="HexEntryId"><m:SourceIds>'
               '<t:AlternateId Format="EwsId" Id="x" Mailbox="a@b.c"/></m:SourceIds></m:ConvertId>')
    for body in (convert, '<m:GetServerTimeZones ReturnFullTimeZoneData="false"/>'):
        fault = _call(server, mailbox, body, version="Exchange2007")
        assert fault.find(".//e:ResponseCode", NS).text == "ErrorInvalidSchemaVersionForMailboxVersion"
    assert _call(server, mailbox, convert, version="Exchange2007_SP1").find(".//e:ResponseCode", NS) is None


# -- time zones ---------------------------------------------------------------------------------------
def _offsets(definition: etree._Element):
    """How a client reads a TimeZoneDefinition: a function from a UTC instant to the UTC offset."""
    offset_of = {p.get("Id"): -isodate.parse_duration(p.get("Bias"))
                 for p in definition.iterfind("t:Periods/t:Period", NS)}
    groups = {g.get("Id"): list(g) for g in definition.iterfind("t:TransitionsGroups/t:TransitionsGroup", NS)}
    transitions = list(definition.find("t:Transitions", NS))
    starts = [datetime.min] + [datetime.fromisoformat(c.find("t:DateTime", NS).text) for c in transitions[1:]]
    eras = [c.find("t:To", NS).text for c in transitions]

    @cache
    def changes(group_id: str, year: int) -> list[tuple[datetime, str]]:
        """The group's two yearly changes in ``year``: (UTC instant, period after)."""
        group = groups[group_id]
        periods = [g.find("t:To", NS).text for g in group]
        found = []
        for n, rule in enumerate(group):
            month, occurrence = int(rule.find("t:Month", NS).text), int(rule.find("t:Occurrence", NS).text)
            weekday = DAYS.index(rule.find("t:DayOfWeek", NS).text)
            days = [d for d in range(1, calendar.monthrange(year, month)[1] + 1)
                    if calendar.weekday(year, month, d) == weekday]
            wall = datetime(year, month, days[-1 if occurrence == -1 else occurrence - 1])
            wall += isodate.parse_duration(rule.find("t:TimeOffset", NS).text)
            found.append((wall - offset_of[periods[1 - n]], periods[n]))
        return found

    def in_group(group_id: str, instant: datetime) -> timedelta:
        group = groups[group_id]
        if len(group) == 1:
            return offset_of[group[0].find("t:To", NS).text]
        passed = [c for year in (instant.year - 1, instant.year) for c in changes(group_id, year) if c[0] <= instant]
        return offset_of[max(passed)[1]]

    def offset(instant: datetime) -> timedelta:
        k = bisect.bisect_right(starts, instant + timedelta(hours=15)) - 1  # no clock is further ahead
        while k > 0 and instant + in_group(eras[k - 1], instant) < starts[k]:
            k -= 1
        return in_group(eras[k], instant)

    return offset


def test_time_zone_definitions_agree_with_tzdata():
    """Every zone, every year from 1970 to 2037: the definition gives the offset zoneinfo gives,
    just before and at each change and between changes."""
    holder = etree.Element("holder")
    for windows_id in timezones.windows_ids():
        definition = timezones.definition(holder, windows_id, full=True)
        zone = ZoneInfo(win_tz[windows_id])
        offset = _offsets(definition)
        changes = [c for c in timezones._changes(zone) if c.wall.year > timezones.FIRST_YEAR]
        for n, change in enumerate(changes):
            probes = [change.at - 1, change.at]
            if n + 1 < len(changes):
                probes.append((change.at + changes[n + 1].at) // 2)
            for at in probes:
                instant = datetime(1970, 1, 1) + timedelta(seconds=at)
                expected = datetime.fromtimestamp(at, zone).utcoffset()
                assert offset(instant) == expected, (windows_id, instant)
    assert len(holder) == len(win_tz) > 100


def test_get_server_time_zones(account, server, mailbox):
    listed = list(account.protocol.get_timezones())
    assert len(listed) == len(win_tz)
    by_id = {z.id: z for z in listed}
    assert by_id["W. Europe Standard Time"].name == "(UTC+01:00) Berlin" and not by_id["UTC"].periods

    zones = [EWSTimeZone("Europe/Berlin"), EWSTimeZone("America/Los_Angeles"), EWSTimeZone("Australia/Sydney"),
             EWSTimeZone("Asia/Tokyo")]
    full = {z.id: z for z in account.protocol.get_timezones(zones, return_full_timezone_data=True)}
    assert list(full) == ["W. Europe Standard Time", "Pacific Standard Time", "AUS Eastern Standard Time",
                          "Tokyo Standard Time"]
    standard, daylight, period = full["W. Europe Standard Time"].get_std_and_dst(2024)
    assert period.bias_in_minutes == -60 and daylight.bias == -60
    assert (daylight.iso_month, daylight.occurrence, daylight.weekday, str(daylight.time)) == (3, 5, 7, "02:00:00")
    assert (standard.iso_month, standard.occurrence, standard.weekday, str(standard.time)) == (10, 5, 7, "03:00:00")
    standard, daylight, period = full["Pacific Standard Time"].get_std_and_dst(2024)
    assert period.bias_in_minutes == 480
    assert (daylight.iso_month, daylight.occurrence, standard.iso_month, standard.occurrence) == (3, 2, 11, 1)
    standard, daylight, period = full["Pacific Standard Time"].get_std_and_dst(2000)  # before the 2007 change
    assert (daylight.iso_month, daylight.occurrence, standard.iso_month, standard.occurrence) == (4, 1, 10, 5)
    standard, daylight, period = full["AUS Eastern Standard Time"].get_std_and_dst(2024)
    assert (period.bias_in_minutes, daylight.iso_month, standard.iso_month) == (-600, 10, 4)
    assert full["Tokyo Standard Time"].get_std_and_dst(2024)[2].bias_in_minutes == -540

    ids = "<m:Ids><t:Id>Tokyo Standard Time</t:Id><t:Id>Nowhere Standard Time</t:Id></m:Ids>"
    root = _call(server, mailbox, f'<m:GetServerTimeZones ReturnFullTimeZoneData="false">{ids}</m:GetServerTimeZones>')
    assert codes(root) == ["ErrorTimeZone"]
    ids = "<m:Ids><t:Id>Tokyo Standard Time</t:Id><t:Id>UTC</t:Id></m:Ids>"
    root = _call(server, mailbox, f"<m:GetServerTimeZones>{ids}</m:GetServerTimeZones>", version="Exchange2010")
    found = root.findall(".//t:TimeZoneDefinition", NS)
    assert [d.get("Id") for d in found] == ["Tokyo Standard Time", "UTC"]
    assert found[0].find("t:Periods/t:Period", NS).get("Bias") == "-PT9H"  # full data unless asked otherwise
