"""Reply, reply all and forward (CreateItem response objects) between local mailboxes, on both
back ends: exchangelib for what clients do, raw SOAP for the server-side defaults and the errors
(one response message per item, in order; unsupported response objects never fail the batch)."""

from exchangelib import ExtendedProperty, FileAttachment, HTMLBody, Message
from exchangelib import Mailbox as EWSMailbox

from .conftest import PASSWORD, make_account, new_mailbox
from .soap import NS, codes, envelope, parse, post


class LastVerbExecuted(ExtendedProperty):
    property_tag = 0x1081
    property_type = "Integer"


def _people(server, server_store, mailbox, *names):
    """exchangelib accounts for alice (the ``mailbox`` fixture) and the other named local users."""
    domain = mailbox.address.split("@", 1)[1]
    others = [new_mailbox(server_store, domain, name, f"{name.capitalize()} Example") for name in names]
    return [make_account(server, mailbox.address)] + [make_account(server, m.address) for m in others]


def _create(server, address, items, disposition="SendAndSaveCopy"):
    body = f'<m:CreateItem MessageDisposition="{disposition}"><m:Items>{items}</m:Items></m:CreateItem>'
    return parse(post(server.ews_url, envelope(body), address, PASSWORD))


def _reference(item):
    return f'<t:ReferenceItemId Id="{item.id}" ChangeKey="{item.changekey}"/>'


def test_reply_reaches_the_sender_quoted_and_threaded(server, server_store, mailbox):
    alice, bob = _people(server, server_store, mailbox, "bob")
    Message(account=alice, subject="Lunch plans", body="Shall we meet at noon?",
            to_recipients=[bob.primary_smtp_address]).send_and_save()
    server.settle()
    original = bob.inbox.get(subject="Lunch plans")

    Message.register("last_verb", LastVerbExecuted)
    try:
        original.reply(subject=None, body="Noon works.")
        server.settle()
        assert bob.inbox.get(id=original.id).last_verb == 102  # PR_LAST_VERB_EXECUTED: replied
    finally:
        Message.deregister("last_verb")

    reply = alice.inbox.get(subject="RE: Lunch plans")
    assert [r.email_address for r in reply.to_recipients] == [alice.primary_smtp_address]
    assert reply.author.email_address == bob.primary_smtp_address
    assert reply.in_reply_to == original.message_id
    assert original.message_id in reply.references
    assert reply.conversation_topic == "Lunch plans"
    text = str(reply.body)
    assert text.index("Noon works.") < text.index("From: Alice Example") < text.index("Shall we meet at noon?")
    assert "Subject: Lunch plans" in text
    assert bob.sent.filter(subject="RE: Lunch plans").count() == 1


def test_reply_all_reaches_the_cc_but_not_the_replier(server, server_store, mailbox):
    alice, bob, carol = _people(server, server_store, mailbox, "bob", "carol")
    Message(account=alice, subject="Offsite", body="Who is coming?", to_recipients=[bob.primary_smtp_address],
            cc_recipients=[carol.primary_smtp_address]).send_and_save()
    server.settle()
    original = bob.inbox.get(subject="Offsite")
    original.reply_all(subject="RE: Offsite", body="Count me in.")
    server.settle()

    for account in (alice, carol):
        got = account.inbox.get(subject="RE: Offsite")
        assert [r.email_address for r in got.to_recipients] == [alice.primary_smtp_address]
        assert [r.email_address for r in got.cc_recipients] == [carol.primary_smtp_address]
        assert "Count me in." in str(got.body) and "Who is coming?" in str(got.body)
    assert bob.inbox.total_count == 1


def test_reply_all_recipients_and_subject_are_worked_out_by_the_server(server, server_store, mailbox):
    alice, bob, carol = _people(server, server_store, mailbox, "bob", "carol")
    Message(account=alice, subject="RE: Budget", body="Numbers attached.",
            to_recipients=[bob.primary_smtp_address, carol.primary_smtp_address]).send_and_save()
    server.settle()
    original = bob.inbox.get(subject="RE: Budget")
    items = (f'<t:ReplyAllToItem>{_reference(original)}'
             '<t:NewBodyContent BodyType="HTML">&lt;p&gt;Thanks!&lt;/p&gt;</t:NewBodyContent></t:ReplyAllToItem>')
    root = _create(server, bob.primary_smtp_address, items)
    assert codes(root) == ["NoError"]
    assert root.find(".//m:Items", NS) is not None and len(root.find(".//m:Items", NS)) == 0
    server.settle()

    for account in (alice, carol):
        [got] = [m for m in account.inbox.filter(subject="RE: Budget")  # the prefix is not doubled
                 if m.author.email_address == bob.primary_smtp_address]
        assert [r.email_address for r in got.to_recipients] == [alice.primary_smtp_address,
                                                                 carol.primary_smtp_address]
        assert not isinstance(got.body, HTMLBody)  # the original's format: the new text is converted
        assert got.body.index("Thanks!") < got.body.index("Numbers attached.")
    assert bob.inbox.total_count == 1


def test_forward_carries_the_attachments_and_the_html_original(server, server_store, mailbox):
    alice, bob, carol = _people(server, server_store, mailbox, "bob", "carol")
    msg = Message(account=alice, subject="Agenda", to_recipients=[bob.primary_smtp_address],
                  body=HTMLBody("<html><body><p>Agenda <b>inside</b></p></body></html>"))
    msg.attach(FileAttachment(name="agenda.pdf", content=b"%PDF-1.4 \x00\xff", content_type="application/pdf"))
    msg.send_and_save()
    server.settle()
    original = bob.inbox.get(subject="Agenda")
    original.forward(subject=None, body="FYI", to_recipients=[EWSMailbox(email_address=carol.primary_smtp_address)])
    server.settle()

    got = carol.inbox.get(subject="FW: Agenda")
    assert got.in_reply_to is None and original.message_id in got.references
    assert isinstance(got.body, HTMLBody)
    assert got.body.index("FYI") < got.body.index("<b>From:</b>") < got.body.index("<b>inside</b>")
    assert [(a.name, a.content) for a in got.attachments] == [("agenda.pdf", b"%PDF-1.4 \x00\xff")]
    assert alice.inbox.total_count == 0


def test_create_reply_save_gives_a_draft(server, server_store, mailbox):
    alice, bob = _people(server, server_store, mailbox, "bob")
    Message(account=alice, subject="Contract", body="Please review.", to_recipients=[bob.primary_smtp_address]).send()
    server.settle()
    original = bob.inbox.get(subject="Contract")
    created = original.create_reply(None, "Looks fine, one question.").save(bob.drafts)
    assert created.id

    [draft] = bob.fetch(ids=[(created.id, created.changekey)])
    assert draft.subject == "RE: Contract" and draft.is_draft
    assert draft.parent_folder_id.id == bob.drafts.id
    assert [r.email_address for r in draft.to_recipients] == [alice.primary_smtp_address]
    assert draft.in_reply_to == original.message_id
    assert "Looks fine" in draft.body and "Please review." in draft.body
    assert alice.inbox.total_count == 0  # saved, not sent


def test_bad_reference_items_are_per_item_errors(server, server_store, mailbox):
    alice, bob = _people(server, server_store, mailbox, "bob")
    mine = Message(account=alice, folder=alice.drafts, subject="Alice's own", body="x")
    mine.save()
    gone = Message(account=bob, folder=bob.drafts, subject="Gone", body="x")
    gone.save()
    gone_reference = _reference(gone)
    gone.delete()
    new = "<t:NewBodyContent BodyType=\"Text\">hi</t:NewBodyContent>"
    items = (f'<t:ReplyToItem><t:ReferenceItemId Id="garbage"/>{new}</t:ReplyToItem>'
             f"<t:ReplyToItem>{new}</t:ReplyToItem>"
             f"<t:ReplyAllToItem>{gone_reference}</t:ReplyAllToItem>"
             f"<t:ForwardItem>{_reference(mine)}</t:ForwardItem>")
    root = _create(server, bob.primary_smtp_address, items)
    assert codes(root) == ["ErrorInvalidIdMalformed", "ErrorMissingInformationReferenceItemId",
                           "ErrorItemNotFound", "ErrorAccessDenied"]

    root = _create(server, alice.primary_smtp_address, f"<t:ForwardItem>{_reference(mine)}</t:ForwardItem>")
    assert codes(root) == ["ErrorInvalidRecipients"]  # a forward goes only where the client says
    body = f"<m:CreateItem><m:Items><t:ReplyToItem>{_reference(mine)}</t:ReplyToItem></m:Items></m:CreateItem>"
    root = parse(post(server.ews_url, envelope(body), alice.primary_smtp_address, PASSWORD))
    assert codes(root) == ["ErrorMessageDispositionRequired"]
    server.settle()
    assert bob.inbox.total_count == 0 and alice.sent.total_count == 0


def test_other_response_objects_fail_alone(server, server_store, mailbox):
    alice, bob = _people(server, server_store, mailbox, "bob")
    Message(account=alice, subject="Status", body="All green.", to_recipients=[bob.primary_smtp_address]).send()
    server.settle()
    original = bob.inbox.get(subject="Status")
    to_alice = (f"<t:ToRecipients><t:Mailbox><t:EmailAddress>{alice.primary_smtp_address}</t:EmailAddress>"
                "</t:Mailbox></t:ToRecipients>")
    unsupported = ["SuppressReadReceipt", "PostReplyItem", "AcceptSharingInvitation"]
    meeting_only = ["AcceptItem", "TentativelyAcceptItem", "DeclineItem", "RemoveItem"]  # a message is no meeting
    items = (f"<t:ForwardItem>{to_alice}{_reference(original)}</t:ForwardItem>"
             + "".join(f"<t:{name}>{_reference(original)}</t:{name}>" for name in unsupported + meeting_only)
             + f"<t:CancelCalendarItem>{_reference(original)}</t:CancelCalendarItem>"
             + f"<t:Message><t:Subject>Plain</t:Subject>{to_alice}</t:Message>")
    root = _create(server, bob.primary_smtp_address, items)
    assert codes(root) == (["NoError"] + ["ErrorInvalidOperation"] * len(unsupported)
                           + ["ErrorInvalidReferenceItem"] * len(meeting_only)
                           + ["ErrorCalendarIsNotOrganizer", "NoError"])
    server.settle()
    texts = [e.text for e in root.iterfind(".//m:MessageText", NS)][:len(unsupported)]
    assert all("not supported yet" in text for text in texts) and len(texts) == len(unsupported)
    assert {m.subject for m in alice.inbox.all()} == {"FW: Status", "Plain"}
