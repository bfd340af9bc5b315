"""Sending from EWS goes through the transport queue: local recipients get the message, an
unknown recipient in our domain yields a non-delivery report (a DSN) to the sender, Bcc stays
off the sent MIME, and the Sent Items copy is kept."""

from exchangelib import Mailbox, Message

from .conftest import make_account, new_mailbox


def test_unknown_recipients_get_a_non_delivery_report(account, server, server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    bob = new_mailbox(server_store, domain, "bob", "Bob")
    Message(account=account, subject="Plans", body="Friday at ten",
            to_recipients=[Mailbox(email_address=bob.address), Mailbox(email_address=f"carol@{domain}")]
            ).send_and_save()
    server.settle()

    received = make_account(server, bob.address).inbox.filter(subject="Plans")
    assert [m.body.rstrip("\r\n") for m in received] == ["Friday at ten"]  # MIME ends text with a newline
    assert account.sent.filter(subject="Plans").count() == 1

    [report] = account.inbox.filter(subject="Undeliverable: Plans")
    assert report.item_class == "REPORT.IPM.Note.NDR"
    assert f"carol@{domain}" in report.body
    assert bob.address not in report.body
    assert report.author.email_address == f"postmaster@{domain}"


def test_all_local_recipients_mean_no_report(account, server, server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    bob = new_mailbox(server_store, domain, "bob", "Bob")
    Message(account=account, subject="Lunch", body="Noon", to_recipients=[Mailbox(email_address=bob.address)]
            ).send()
    server.settle()
    assert make_account(server, bob.address).inbox.filter(subject="Lunch").count() == 1
    assert account.inbox.all().count() == 0


def test_bcc_recipients_get_the_message_without_a_bcc_header(account, server, server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    bob = new_mailbox(server_store, domain, "bob", "Bob")
    carol = new_mailbox(server_store, domain, "carol", "Carol")
    Message(account=account, subject="Secret", body="Psst", to_recipients=[Mailbox(email_address=bob.address)],
            bcc_recipients=[Mailbox(email_address=carol.address)]).send()
    server.settle()
    for who in (bob, carol):
        [item] = make_account(server, who.address).inbox.filter(subject="Secret")
        assert b"carol" not in item.mime_content.split(b"\r\n\r\n", 1)[0].lower()
