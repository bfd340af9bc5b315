"""Sending from EWS: local recipients get the message; recipients this server cannot reach yield
a non-delivery report to the sender instead of silently vanishing."""

from exchangelib import Mailbox, Message

from .conftest import make_account, new_mailbox


def test_remote_recipients_get_a_non_delivery_report(account, server, server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    bob = new_mailbox(server_store, domain, "bob", "Bob")
    Message(account=account, subject="Plans", body="Friday at ten",
            to_recipients=[Mailbox(email_address=bob.address), Mailbox(email_address="carol@elsewhere.example")]
            ).send_and_save()

    received = make_account(server, bob.address).inbox.filter(subject="Plans")
    assert [m.body.rstrip("\r\n") for m in received] == ["Friday at ten"]  # MIME ends text with a newline
    assert account.sent.filter(subject="Plans").count() == 1

    [report] = account.inbox.filter(subject="Undeliverable: Plans")
    assert report.item_class == "REPORT.IPM.Note.NDR"
    assert "carol@elsewhere.example" in report.body
    assert bob.address not in report.body
    assert report.author.email_address == f"postmaster@{domain}"


def test_all_local_recipients_mean_no_report(account, server, server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    bob = new_mailbox(server_store, domain, "bob", "Bob")
    Message(account=account, subject="Lunch", body="Noon", to_recipients=[Mailbox(email_address=bob.address)]
            ).send()
    assert make_account(server, bob.address).inbox.filter(subject="Lunch").count() == 1
    assert account.inbox.all().count() == 0
