"""FindItem through exchangelib and raw SOAP: restrictions, sorting, paging, shapes, QueryString."""

from __future__ import annotations

import pytest
from exchangelib import Q
from exchangelib.ewsdatetime import UTC, EWSDateTime
from lxml import etree

from mailroom.store.model import Body, NewItem

from .conftest import PASSWORD
from .soap import NS, codes, envelope, parse, post

ROWS = [
    # subject, received (January 2024, UTC), categories, is_read, importance
    ("Quarterly Report", (5, 10), ["Red", "Finance"], False, "High"),
    ("quarterly report", (6, 10), ["red"], True, "Normal"),
    ("Weekly report draft", (7, 10), None, False, "Low"),
    ("Lunch_plans 100%", (8, 10), ["Blue"], True, "Normal"),
    ("Budget", (9, 10), None, False, "Normal"),
]


def _utc(day: int, hour: int) -> EWSDateTime:
    return EWSDateTime(2024, 1, day, hour, tzinfo=UTC)


@pytest.fixture
def inbox(server_store, mailbox):
    """The mailbox's Inbox holding ROWS (and ``extra`` more plain notes, see fill)."""
    return fill(server_store, mailbox, 0)


def fill(store, mailbox, extra: int):
    inbox = store.folders.distinguished(mailbox, "inbox")
    for subject, (day, hour), categories, is_read, importance in ROWS:
        props = {"Subject": subject, "DateTimeReceived": f"2024-01-{day:02d}T{hour:02d}:00:00Z", "IsRead": is_read,
                 "Importance": importance, "ItemClass": "IPM.Note"}
        if categories is not None:
            props["Categories"] = categories
        store.items.create(mailbox, inbox.id, NewItem(props=props))
    for n in range(extra):
        store.items.create(mailbox, inbox.id, NewItem(props={
            "Subject": f"Note {n:02d}", "DateTimeReceived": f"2024-02-{n + 1:02d}T08:00:00Z", "IsRead": True}))
    return inbox


def subjects(qs) -> list[str]:
    return list(qs.values_list("subject", flat=True))


def test_django_style_lookups(account, inbox):
    f = account.inbox.all()
    by_date = f.order_by("datetime_received")
    assert subjects(by_date.filter(subject="QUARTERLY REPORT")) == ["Quarterly Report", "quarterly report"]
    assert subjects(by_date.filter(subject__exact="quarterly report")) == ["quarterly report"]
    assert subjects(by_date.filter(subject__iexact="quarterly REPORT")) == ["Quarterly Report", "quarterly report"]
    assert subjects(by_date.filter(subject__contains="Report")) == ["Quarterly Report"]
    assert subjects(by_date.filter(subject__icontains="report")) == ["Quarterly Report", "quarterly report",
                                                                    "Weekly report draft"]
    assert subjects(by_date.filter(subject__contains="_plans 100%")) == ["Lunch_plans 100%"]
    assert subjects(by_date.filter(subject__startswith="quarterly")) == ["quarterly report"]
    assert subjects(by_date.filter(subject__istartswith="QUARTERLY")) == ["Quarterly Report", "quarterly report"]
    assert subjects(by_date.filter(datetime_received__gt=_utc(7, 10))) == ["Lunch_plans 100%", "Budget"]
    assert subjects(by_date.filter(datetime_received__range=(_utc(6, 10), _utc(7, 10)))) == [
        "quarterly report", "Weekly report draft"]
    assert subjects(by_date.filter(is_read=False)) == ["Quarterly Report", "Weekly report draft", "Budget"]
    assert subjects(by_date.filter(importance="High")) == ["Quarterly Report"]
    assert subjects(by_date.filter(categories__contains=["RED"])) == ["Quarterly Report", "quarterly report"]
    assert subjects(by_date.filter(categories__contains=["red", "finance"])) == ["Quarterly Report"]
    assert subjects(by_date.filter(categories__in=["blue", "finance"])) == ["Quarterly Report", "Lunch_plans 100%"]
    assert subjects(by_date.filter(categories__icontains="fin")) == ["Quarterly Report"]
    assert subjects(by_date.exclude(categories__contains=["red"])) == ["Weekly report draft", "Lunch_plans 100%",
                                                                       "Budget"]
    assert subjects(by_date.filter(categories__exists=False)) == ["Weekly report draft", "Budget"]
    assert subjects(f.filter(subject__contains="Report", datetime_received__gt=_utc(1, 0),
                             categories__contains=["red"], is_read=False)) == ["Quarterly Report"]


def test_q_objects_exclude_and_combinations(account, inbox):
    f = account.inbox.all().order_by("datetime_received")
    unread_or_blue = Q(is_read=False) | Q(categories__contains=["blue"])
    assert subjects(f.filter(unread_or_blue & ~Q(subject__icontains="weekly"))) == [
        "Quarterly Report", "Lunch_plans 100%", "Budget"]
    assert subjects(f.filter(~(Q(subject__icontains="report") | Q(is_read=True)))) == ["Budget"]
    assert subjects(f.exclude(subject__icontains="report").filter(datetime_received__lt=_utc(9, 0))) == [
        "Lunch_plans 100%"]
    assert subjects(f.filter(Q(importance="Low") | Q(importance="High"), is_read=False)) == [
        "Quarterly Report", "Weekly report draft"]


def test_ordering_slicing_counting_and_shapes(account, server_store, mailbox):
    fill(server_store, mailbox, 7)
    f = account.inbox.all()
    newest = subjects(f.order_by("-datetime_received"))
    assert newest[:2] == ["Note 06", "Note 05"] and newest[-1] == "Quarterly Report" and len(newest) == 12
    assert subjects(f.order_by("-importance", "-subject"))[:3] == ["Quarterly Report", "quarterly report",
                                                                  "Note 06"]
    assert subjects(f.order_by("importance"))[0] == "Weekly report draft"  # Low < Normal < High
    names = f.values_list("subject", flat=True)
    assert list(names.order_by("-datetime_received")[2:5]) == ["Note 04", "Note 03", "Note 02"]
    assert list(names.order_by("subject")[10:]) == ["Weekly report draft", "quarterly report"]
    assert f.count() == 12 and f.filter(subject__startswith="Note").count() == 7
    assert f.filter(subject="Budget").exists() and not f.filter(subject="nothing").exists()
    item = f.filter(subject="Budget").only("subject", "is_read")[0]
    assert (item.subject, item.is_read, item.datetime_received) == ("Budget", False, None)
    assert list(f.filter(subject="Budget").values("subject", "importance")) == [
        {"subject": "Budget", "importance": "Normal"}]
    assert account.inbox.filter(subject="Budget").get().datetime_received == _utc(9, 10)


def test_query_string(account, inbox):
    f = account.inbox.all().order_by("datetime_received")
    assert subjects(f.filter("subject:report")) == ["Quarterly Report", "quarterly report", "Weekly report draft"]
    assert subjects(f.filter('subject:"weekly report"')) == ["Weekly report draft"]
    assert subjects(f.filter("subject:report AND isread:false")) == ["Quarterly Report", "Weekly report draft"]
    assert subjects(f.filter("subject:(weekly OR budget)")) == ["Weekly report draft", "Budget"]
    assert subjects(f.filter("category:blue OR NOT subject:report")) == ["Lunch_plans 100%", "Budget"]
    assert subjects(f.filter("received:>=2024-01-08")) == ["Lunch_plans 100%", "Budget"]
    assert subjects(f.filter("received:2024-01-06")) == ["quarterly report"]
    assert subjects(f.filter("budget")) == ["Budget"]


# -- raw SOAP ---------------------------------------------------------------------------------------
def find(server, mailbox, view: str = "", restriction: str = "", sort: str = "", shape: str = "IdOnly",
         extra: str = "", folders: str = '<t:DistinguishedFolderId Id="inbox"/>', header: str = "",
         version: str = "Exchange2016") -> etree._Element:
    body = (f'<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>{shape}</t:BaseShape>{extra}</m:ItemShape>'
            f"{view}{restriction}{sort}<m:ParentFolderIds>{folders}</m:ParentFolderIds></m:FindItem>")
    return parse(post(server.ews_url, envelope(body, version, header), mailbox.address, PASSWORD))


def page_of(root: etree._Element) -> tuple[dict[str, str], list[str]]:
    folder = root.find(".//m:RootFolder", NS)
    return dict(folder.attrib), [s.text for s in folder.iterfind(".//t:Subject", NS)]


BY_SUBJECT = ('<m:SortOrder><t:FieldOrder Order="Ascending"><t:FieldURI FieldURI="item:Subject"/></t:FieldOrder>'
              "</m:SortOrder>")
SUBJECT = '<t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/></t:AdditionalProperties>'


def test_paging_attributes_on_every_page(server, server_store, mailbox):
    fill(server_store, mailbox, 7)
    ordered = sorted([r[0] for r in ROWS] + [f"Note {n:02d}" for n in range(7)])

    def indexed(offset, limit, base="Beginning"):
        view = f'<m:IndexedPageItemView MaxEntriesReturned="{limit}" Offset="{offset}" BasePoint="{base}"/>'
        return page_of(find(server, mailbox, view, sort=BY_SUBJECT, extra=SUBJECT))

    seen, offset = [], 0
    while True:
        attrs, names = indexed(offset, 5)
        assert attrs["TotalItemsInView"] == "12"
        assert attrs["IndexedPagingOffset"] == str(offset + len(names))
        seen += names
        offset += len(names)
        if attrs["IncludesLastItemInRange"] == "true":
            break
        assert len(names) == 5
    assert seen == ordered and offset == 12

    attrs, names = indexed(0, 5, "End")  # the last five, in view order
    assert names == ordered[7:] and attrs["IndexedPagingOffset"] == "5"
    assert attrs["IncludesLastItemInRange"] == "false"
    attrs, names = indexed(10, 5, "End")  # what is left before the last ten
    assert names == ordered[:2] and attrs["IndexedPagingOffset"] == "12"
    assert attrs["IncludesLastItemInRange"] == "true"
    attrs, names = indexed(30, 5)
    assert names == [] and attrs["IncludesLastItemInRange"] == "true" and attrs["TotalItemsInView"] == "12"

    fractional = '<m:FractionalPageItemView MaxEntriesReturned="4" Numerator="1" Denominator="2"/>'
    attrs, names = page_of(find(server, mailbox, fractional, sort=BY_SUBJECT, extra=SUBJECT))
    assert names == ordered[6:10]
    assert (attrs["NumeratorOffset"], attrs["AbsoluteDenominator"]) == ("10", "12")
    assert attrs["IncludesLastItemInRange"] == "false" and attrs["TotalItemsInView"] == "12"

    attrs, names = page_of(find(server, mailbox, sort=BY_SUBJECT, extra=SUBJECT))  # no view: everything
    assert names == ordered and attrs["IncludesLastItemInRange"] == "true"

    for view, code in (('<m:IndexedPageItemView MaxEntriesReturned="0" Offset="0" BasePoint="Beginning"/>',
                        "ErrorInvalidPagingMaxRows"),
                       ('<m:IndexedPageItemView MaxEntriesReturned="5" Offset="-1" BasePoint="Beginning"/>',
                        "ErrorInvalidIndexedPagingParameters"),
                       ('<m:FractionalPageItemView Numerator="3" Denominator="2"/>',
                        "ErrorInvalidFractionalPagingParameters")):
        assert codes(find(server, mailbox, view)) == [code]


def test_sort_order_on_several_fields_and_default_order(server, server_store, mailbox):
    fill(server_store, mailbox, 0)
    sort = ('<m:SortOrder><t:FieldOrder Order="Descending"><t:FieldURI FieldURI="message:IsRead"/></t:FieldOrder>'
            '<t:FieldOrder Order="Ascending"><t:FieldURI FieldURI="item:DateTimeReceived"/></t:FieldOrder>'
            "</m:SortOrder>")
    assert page_of(find(server, mailbox, sort=sort, extra=SUBJECT))[1] == [
        "quarterly report", "Lunch_plans 100%", "Quarterly Report", "Weekly report draft", "Budget"]
    assert page_of(find(server, mailbox, extra=SUBJECT))[1] == [r[0] for r in reversed(ROWS)]  # newest first


@pytest.mark.parametrize(("mode", "comparison", "value", "expected"), [
    ("PrefixOnWords", "IgnoreCase", "REP", ["Quarterly Report", "Weekly report draft", "quarterly report"]),
    ("PrefixOnWords", "Exact", "Rep", ["Quarterly Report"]),
    ("ExactPhrase", "Loose", "WEEKLY REPORT", ["Weekly report draft"]),
    ("ExactPhrase", "LooseAndIgnoreCase", "repor", []),
    ("Substring", "IgnoreNonSpacingCharacters", "report", ["Weekly report draft", "quarterly report"]),
    ("FullString", "IgnoreCaseAndNonSpacingCharacters", "BUDGET", ["Budget"]),
])
def test_containment_modes_and_comparisons(server, server_store, mailbox, mode, comparison, value, expected):
    fill(server_store, mailbox, 0)
    restriction = (f'<m:Restriction><t:Contains ContainmentMode="{mode}" ContainmentComparison="{comparison}">'
                   f'<t:FieldURI FieldURI="item:Subject"/><t:Constant Value="{value}"/></t:Contains></m:Restriction>')
    assert page_of(find(server, mailbox, restriction=restriction, sort=BY_SUBJECT, extra=SUBJECT))[1] == expected


def test_restrictions_on_the_body(server, server_store, mailbox):
    inbox = server_store.folders.distinguished(mailbox, "inbox")
    for subject, text in (("one", "Meet at the Harbour"), ("two", "nothing to see")):
        server_store.items.create(mailbox, inbox.id, NewItem(props={"Subject": subject}, body=Body("Text", text)))
    body = ('<m:Restriction><t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase">'
            '<t:FieldURI FieldURI="item:Body"/><t:Constant Value="harbour"/></t:Contains></m:Restriction>')
    assert page_of(find(server, mailbox, restriction=body, extra=SUBJECT))[1] == ["one"]


def test_restriction_errors_are_reported_per_folder(server, server_store, mailbox):
    contains_bool = ('<m:Restriction><t:Contains ContainmentMode="Substring" ContainmentComparison="Exact">'
                     '<t:FieldURI FieldURI="message:IsRead"/><t:Constant Value="true"/></t:Contains></m:Restriction>')
    two = '<t:DistinguishedFolderId Id="inbox"/><t:DistinguishedFolderId Id="drafts"/>'
    root = find(server, mailbox, restriction=contains_bool, folders=two)
    assert codes(root) == ["ErrorContainsFilterWrongType", "ErrorContainsFilterWrongType"]
    indexed = ('<m:Restriction><t:Exists><t:IndexedFieldURI FieldURI="contacts:PhoneNumber" FieldIndex="Car"/>'
               "</t:Exists></m:Restriction>")
    assert codes(find(server, mailbox, restriction=indexed)) == ["ErrorUnsupportedPathForQuery"]
    bad_value = ('<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="item:Size"/><t:FieldURIOrConstant>'
                 '<t:Constant Value="big"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>')
    assert codes(find(server, mailbox, restriction=bad_value)) == ["ErrorInvalidValueForProperty"]
    leaf = '<t:Exists><t:FieldURI FieldURI="item:Subject"/></t:Exists>'
    deep = "<m:Restriction>" + "<t:Not>" * 40 + leaf + "</t:Not>" * 40 + "</m:Restriction>"
    assert codes(find(server, mailbox, restriction=deep)) == ["ErrorRestrictionTooComplex"]
    query = "<m:QueryString>subject:x</m:QueryString>"
    body = (f'<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
            f'<m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds>{query}</m:FindItem>')
    response = post(server.ews_url, envelope(body, "Exchange2007_SP1"), mailbox.address, PASSWORD)
    assert parse(response).find(".//e:ResponseCode", NS).text == "ErrorSchemaValidation"


def test_compare_two_fields_and_time_zone_context(server, server_store, mailbox):
    fill(server_store, mailbox, 0)
    same = ('<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURIOrConstant>'
            '<t:FieldURI FieldURI="item:DateTimeReceived"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>')
    assert len(page_of(find(server, mailbox, restriction=same))[1]) == 0  # IdOnly: no subjects
    assert page_of(find(server, mailbox, restriction=same))[0]["TotalItemsInView"] == "5"
    # 2024-01-07 11:00 in Central Europe is 10:00 UTC: "Weekly report draft" and later.
    naive = ('<m:Restriction><t:IsGreaterThanOrEqualTo><t:FieldURI FieldURI="item:DateTimeReceived"/>'
             '<t:FieldURIOrConstant><t:Constant Value="2024-01-07T11:00:00"/></t:FieldURIOrConstant>'
             "</t:IsGreaterThanOrEqualTo></m:Restriction>")
    zone = '<t:TimeZoneContext><t:TimeZoneDefinition Id="W. Europe Standard Time"/></t:TimeZoneContext>'
    assert page_of(find(server, mailbox, restriction=naive, extra=SUBJECT, header=zone, sort=BY_SUBJECT))[1] == [
        "Budget", "Lunch_plans 100%", "Weekly report draft"]
    assert page_of(find(server, mailbox, restriction=naive, extra=SUBJECT, sort=BY_SUBJECT))[1] == [
        "Budget", "Lunch_plans 100%"]  # without a context the naive time is UTC


def test_shapes_on_find_item_and_get_item(server, server_store, mailbox):
    fill(server_store, mailbox, 0)
    budget = '<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="item:Subject"/><t:FieldURIOrConstant>' \
             '<t:Constant Value="budget"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>'

    def children(shape: str, extra: str = "") -> list[str]:
        message = find(server, mailbox, restriction=budget, shape=shape, extra=extra).find(".//t:Message", NS)
        return [etree.QName(c).localname for c in message]

    assert children("IdOnly") == ["ItemId"]
    default = children("Default")
    assert {"ItemId", "ParentFolderId", "ItemClass", "Subject", "DateTimeReceived", "IsRead"} <= set(default)
    assert "Body" not in default and "ToRecipients" not in default  # never part of a FindItem row
    assert set(default) < set(children("AllProperties"))
    extra = ('<t:AdditionalProperties><t:FieldURI FieldURI="item:Importance"/>'
             '<t:ExtendedFieldURI PropertyTag="0x0037" PropertyType="String"/>'
             '<t:ExtendedFieldURI PropertyTag="0x0E07" PropertyType="Integer"/></t:AdditionalProperties>')
    root = find(server, mailbox, restriction=budget, extra=extra)
    message = root.find(".//t:Message", NS)
    assert [etree.QName(c).localname for c in message] == ["ItemId", "Importance", "ExtendedProperty",
                                                            "ExtendedProperty"]
    values = [v.text for v in message.iterfind("t:ExtendedProperty/t:Value", NS)]
    assert values == ["Budget", "0"]  # PR_SUBJECT and PR_MESSAGE_FLAGS (unread) come from the item itself

    item_id = message.find("t:ItemId", NS).get("Id")
    indexed = ('<t:AdditionalProperties><t:FieldURI FieldURI="item:Categories"/>'
               '<t:IndexedFieldURI FieldURI="item:InternetMessageHeader" FieldIndex="X-Nothing"/>'
               '<t:ExtendedFieldURI PropertyTag="0x001A" PropertyType="String"/></t:AdditionalProperties>')
    body = (f"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>{indexed}</m:ItemShape>"
            f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>')
    got = parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD)).find(".//t:Message", NS)
    assert [etree.QName(c).localname for c in got] == ["ItemId", "ExtendedProperty"]
    assert got.find("t:ExtendedProperty/t:Value", NS).text == "IPM.Note"


def test_find_item_over_many_folders_gives_one_message_each(server, server_store, mailbox):
    fill(server_store, mailbox, 0)
    two = '<t:DistinguishedFolderId Id="inbox"/><t:FolderId Id="nonsense"/><t:DistinguishedFolderId Id="drafts"/>'
    root = find(server, mailbox, folders=two)
    assert codes(root) == ["NoError", "ErrorInvalidIdMalformed", "NoError"]
    totals = [f.get("TotalItemsInView") for f in root.iterfind(".//m:RootFolder", NS)]
    assert totals == ["5", "0"]

