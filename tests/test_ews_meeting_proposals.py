"""An attendee proposing a new time (Exchange 2013 and later: ProposedStart / ProposedEnd on
TentativelyAcceptItem or DeclineItem): sent as METHOD:COUNTER and recorded on the organizer's
meeting with that attendee's response, the meeting's own time unchanged."""

from __future__ import annotations

from datetime import timedelta

import pytest

from . import test_ews_meetings
from .conftest import PASSWORD
from .soap import codes, envelope, parse, post
from .test_ews_meeting_occurrences import _ical
from .test_ews_meetings import _invited, _request, _start, responses

bob = test_ews_meetings.bob  # the attendee's mailbox (a fixture)


@pytest.mark.parametrize(("respond", "response", "item_class"), responses("tentatively_accept", "decline"))
def test_a_new_time_proposed_reaches_the_organizer(account, server, bob, respond, response, item_class):
    item, bob_account = _invited(account, server, bob)
    proposed = (_start() + timedelta(days=1), _start() + timedelta(days=1, hours=1))
    getattr(_request(bob_account), respond)(proposed_start=proposed[0], proposed_end=proposed[1])
    server.settle()

    [reply] = list(account.inbox.all())
    assert reply.item_class == item_class and reply.subject == "New Time Proposed: Planning"
    assert (reply.proposed_start, reply.proposed_end) == proposed
    event = _ical(reply.mime_content)
    assert event.decoded("dtstart") == proposed[0]
    mine = account.calendar.get(id=item.id)
    assert mine.start == item.start
    [attendee] = mine.required_attendees
    assert attendee.response_type == response
    assert (attendee.proposed_start, attendee.proposed_end) == proposed


def _respond(server, who, element: str, reference: str, extra: str, version: str = "Exchange2016"):
    body = (f'<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:Items><t:{element}>'
            f'<t:ReferenceItemId Id="{reference}"/>{extra}</t:{element}></m:Items></m:CreateItem>')
    return parse(post(server.ews_url, envelope(body, version=version), who.address, PASSWORD))


@pytest.mark.parametrize(("element", "extra", "version", "code"), [
    ("AcceptItem", "<t:ProposedStart>2031-03-11T09:00:00Z</t:ProposedStart>"
                   "<t:ProposedEnd>2031-03-11T10:00:00Z</t:ProposedEnd>", "Exchange2016", "ErrorInvalidOperation"),
    ("TentativelyAcceptItem", "<t:ProposedStart>2031-03-11T09:00:00Z</t:ProposedStart>"
                              "<t:ProposedEnd>2031-03-11T08:00:00Z</t:ProposedEnd>", "Exchange2016",
     "ErrorCalendarEndDateIsEarlierThanStartDate"),
    ("TentativelyAcceptItem", "<t:ProposedStart>2031-03-11T09:00:00Z</t:ProposedStart>", "Exchange2016",
     "ErrorInvalidPropertyRequest"),
    ("DeclineItem", "<t:ProposedStart>2031-03-11T09:00:00Z</t:ProposedStart>"
                    "<t:ProposedEnd>2031-03-11T10:00:00Z</t:ProposedEnd>", "Exchange2010_SP2", "ErrorSchemaValidation"),
])
def test_a_proposal_that_cannot_be_made(account, server, bob, element, extra, version, code):
    _, bob_account = _invited(account, server, bob)
    root = _respond(server, bob, element, _request(bob_account).id, extra, version)
    assert code in codes(root) or root.findtext(".//{*}ResponseCode") == code
    server.settle()
    assert account.inbox.all().count() == 0
    [meeting] = list(bob_account.calendar.all())
    assert meeting.my_response_type == "NoResponseReceived"
