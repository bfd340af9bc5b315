"""MIME in and out: the parser and generator on their own, then CreateItem from MimeContent and
GetItem MimeContent through the server on both back ends."""

import base64
import email
import email.policy
import email.utils
import random

import pytest
from exchangelib import FileAttachment, HTMLBody, ItemAttachment, Message
from exchangelib import Mailbox as EWSMailbox

from mailroom.content import mime, recipients, snapshot
from mailroom.content.recipients import Address
from mailroom.store.model import Attachment, Body, NewItem

from .conftest import PASSWORD
from .soap import NS, codes, envelope, parse, post

INNER = (b"From: Dana <dana@example.org>\r\nSubject: The forwarded one\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\nContent-Type: text/plain\r\n\r\ninner text\r\n"
         b"--in\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=rows.csv\r\n\r\na,b\r\n"
         b"--in--\r\n")
RAW = (b"From: =?utf-8?q?J=C3=BCrgen?= <juergen@example.org>\r\nTo: Ann <ann@example.org>, bob@example.org\r\n"
       b"Cc: Carl <carl@example.org>\r\nSubject: =?iso-8859-1?q?Caf=E9_=80_menu?=\r\n"
       b"Date: Tue, 02 Jan 2024 10:00:00 +0100\r\nMessage-ID: <menu-1@example.org>\r\nX-Priority: 1\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n"
       b"--out\r\nContent-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
       b"=93Caf=E9=94 costs 3 =80\r\n"
       b"--out\r\nContent-Type: application/pdf; name=menu.pdf\r\nContent-Disposition: attachment; filename=menu.pdf"
       b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n"
       b"--out\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n" + INNER + b"\r\n--out--\r\n")


def _item(**props):
    return {"ItemClass": "IPM.Note", **props}


def test_generated_mime_is_multipart_with_encoded_headers():
    props = _item(Subject="Grüße — café", DateTimeSent="2024-01-02T03:04:05Z", InternetMessageId="<m1@example.org>",
                  From=recipients.build("From", [Address("Zoë Ärger", "zoe@example.org")], single=True),
                  ToRecipients=recipients.build("ToRecipients", [Address("Müller, Jürgen", "j@example.org")]),
                  BccRecipients=recipients.build("BccRecipients", [Address(None, "hidden@example.org")]))
    inner = NewItem(props=_item(Subject="Inner"), body=Body("Text", "inner body"))
    attachments = [
        Attachment("file", name="logo.png", content_type="image/png", content_id="logo", is_inline=True, content=b"P"),
        Attachment("file", name="résumé.pdf", content_type="application/pdf", content=b"%PDF\x00\xff"),
        Attachment("item", name="Inner", content=snapshot.dump(inner))]
    raw = mime.build_message(props, Body("HTML", '<p>Hällo <img src="cid:logo"></p>'), attachments)
    assert b"\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")
    assert raw.decode("ascii").count("MIME-Version") == 2  # the message and the attached message only
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n")[0] and b"hidden@example.org" not in raw
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(msg["Subject"]) == "Grüße — café"
    assert msg["From"].addresses[0].display_name == "Zoë Ärger"
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [("Müller, Jürgen", "j@example.org")]
    assert msg["Message-ID"] == "<m1@example.org>" and msg["Date"].datetime.hour == 3
    assert _structure(msg) == ("multipart/mixed", [
        ("multipart/alternative", ["text/plain", ("multipart/related", ["text/html", "image/png"])]),
        "application/pdf", "message/rfc822"])
    alternative, pdf, attached = msg.iter_parts()
    assert alternative.get_body(("plain",)).get_content().strip() == "Hällo"
    assert alternative.get_body(("html",)).get_content().strip() == '<p>Hällo <img src="cid:logo"></p>'
    assert (pdf.get_filename(), pdf.get_content()) == ("résumé.pdf", b"%PDF\x00\xff")
    assert attached.get_content()["Subject"] == "Inner"


def _structure(part):
    if part.get_content_maintype() != "multipart":
        return part.get_content_type()
    return (part.get_content_type(), [_structure(p) for p in part.iter_parts()])


def test_text_body_makes_a_single_text_part():
    raw = mime.build_message(_item(Subject="Line\nbreak"), Body("Text", "plain ünïcode"), [])
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "text/plain" and msg.get_content().strip() == "plain ünïcode"
    assert str(msg["Subject"]) == "Line break"


def test_parse_reads_properties_charsets_and_attachments():
    parsed = mime.parse_message(RAW)
    props = parsed.props
    assert props["Subject"] == "Café € menu"
    assert recipients.parse(props["From"]) == [Address("Jürgen", "juergen@example.org")]
    assert [a.email for a in recipients.parse(props["ToRecipients"])] == ["ann@example.org", "bob@example.org"]
    assert recipients.parse(props["CcRecipients"]) == [Address("Carl", "carl@example.org")]
    assert (props["DateTimeSent"], props["InternetMessageId"]) == ("2024-01-02T09:00:00Z", "<menu-1@example.org>")
    assert props["Importance"] == "High"
    assert (parsed.body.body_type, parsed.body.text.strip()) == ("Text", "“Café” costs 3 €")
    pdf, forwarded = parsed.attachments
    assert (pdf.kind, pdf.name, pdf.content) == ("file", "menu.pdf", b"%PDF-1.4")
    assert (forwarded.kind, forwarded.name) == ("item", "The forwarded one")
    inner = snapshot.load(forwarded.content)
    assert inner.mime == INNER
    assert (inner.props["Subject"], inner.body.text.strip()) == ("The forwarded one", "inner text")
    assert [(a.name, a.content) for a in inner.attachments] == [("rows.csv", b"a,b")]


def test_legacy_and_unknown_charsets_decode():
    latin = b"Subject: caf\xe9\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9 \x80"
    assert mime.parse_message(latin).body.text == "café €"
    raw_utf8 = b"From: \xc3\xa9l\xc3\xa8ve <e@example.org>\r\nSubject: caf\xc3\xa9\r\n\r\nbody"
    parsed = mime.parse_message(raw_utf8)
    assert parsed.props["Subject"] == "café"
    assert recipients.parse(parsed.props["From"])[0].name == "élève"
    bogus = b"Subject: =?bogus?q?x?=\r\nContent-Type: text/plain; charset=bogus\r\n\r\nna\xc3\xafve"
    assert mime.parse_message(bogus).body.text == "naïve"


@pytest.mark.parametrize("raw", [
    b"", b"\x00\x01\x02 not mail at all \xff\xfe", b"Subject: \x00\x07bell\r\n\r\n\x00body\x0b",
    b"To: :;,,<>@@\r\nFrom: \"unterminated\r\nDate: yesterday\r\nContent-Type: multipart/mixed\r\n\r\nno boundary",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Type: image/png; name*=bogus''%ff%fe\r\n\r\n!!notbase64!!\r\n--x",
    b"Content-Type: message/rfc822\r\n\r\n\xff\xfe",
    b"Subject: deep\r\n" + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" * 3000,
])
def test_garbage_is_read_without_raising(raw):
    parsed = mime.parse_message(raw)
    texts = [v for v in parsed.props.values() if isinstance(v, str)] + ([parsed.body.text] if parsed.body else [])
    assert all(snapshot.clean(text) == text for text in texts)
    snapshot.load(snapshot.dump(NewItem(props=parsed.props, body=parsed.body, attachments=parsed.attachments)))


def test_snapshot_round_trips_and_rejects_forgeries():
    new = NewItem(props=_item(Subject="S", IsRead=True, Categories=["a"]), body=Body("HTML", "<p>x</p>"),
                  mime=b"raw", attachments=[Attachment("file", name="f", content=b"\x00")])
    back = snapshot.load(snapshot.dump(new))
    assert (back.props, back.body, back.mime, back.attachments[0].content) == (new.props, new.body, b"raw", b"\x00")
    for forged in (b"", b"{}", snapshot.MAGIC + b"[]", snapshot.MAGIC + b'{"props":{}}',
                   snapshot.MAGIC + b'{"props":{"Size":NaN},"body":null,"mime":null,"extended":[],"attachments":[]}',
                   snapshot.MAGIC + b'{"props":{"Size":1e999},"body":null,"mime":null,"extended":[],"attachments":[]}',
                   snapshot.MAGIC + b'{"props":{"S":"\\u0000"},"body":null,"mime":null,"extended":[],"attachments":[]}',
                   snapshot.MAGIC + b'{"props":{"S":{}},"body":null,"mime":null,"extended":[],"attachments":[]}',
                   snapshot.MAGIC + b"[" * 100000):
        with pytest.raises(snapshot.Corrupt):
            snapshot.load(forged)


def test_create_from_mime_then_read_properties(account):
    msg = Message(account=account, folder=account.drafts, mime_content=RAW)
    msg.save()
    fetched = account.drafts.get(id=msg.id)
    assert fetched.subject == "Café € menu"
    assert (fetched.author.name, fetched.author.email_address) == ("Jürgen", "juergen@example.org")
    assert [r.email_address for r in fetched.to_recipients] == ["ann@example.org", "bob@example.org"]
    assert [r.email_address for r in fetched.cc_recipients] == ["carl@example.org"]
    assert fetched.body.strip() == "“Café” costs 3 €"
    assert fetched.mime_content == RAW
    found = {a.name: a for a in fetched.attachments}
    pdf, forwarded = found["menu.pdf"], found["The forwarded one"]
    assert isinstance(pdf, FileAttachment) and (pdf.name, pdf.content) == ("menu.pdf", b"%PDF-1.4")
    assert isinstance(forwarded, ItemAttachment) and forwarded.item.subject == "The forwarded one"
    assert forwarded.item.mime_content == INNER
    assert [(a.name, a.content) for a in forwarded.item.attachments] == [("rows.csv", b"a,b")]


def test_create_from_properties_then_read_mime(account):
    msg = Message(account=account, folder=account.drafts, subject="Grüße aus Köln", body=HTMLBody("<p>Hallo</p>"),
                  to_recipients=[EWSMailbox(email_address="ann@example.org", name="Änn")])
    msg.attach(FileAttachment(name="notes.txt", content=b"some notes"))
    msg.save()
    raw = account.drafts.get(id=msg.id).mime_content
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(parsed["Subject"]) == "Grüße aus Köln"
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [("Änn", "ann@example.org")]
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hallo</p>"
    (attachment,) = parsed.iter_attachments()
    assert (attachment.get_filename(), attachment.get_payload(decode=True)) == ("notes.txt", b"some notes")


def _create_mime(data):
    return ('<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="drafts"/>'
            f'</m:SavedItemFolderId><m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">{data}</t:MimeContent>'
            "</t:Message></m:Items></m:CreateItem>")


def test_garbage_mime_is_stored_and_bad_base64_refused(server, account, mailbox):
    garbage = b"\x00\x01 this is no mail \xff\xfe\r\n"
    before = account.drafts.total_count
    bodies = [_create_mime(base64.b64encode(garbage).decode()), _create_mime("%%% not base64 %%%")]
    roots = [parse(post(server.ews_url, envelope(b), mailbox.address, PASSWORD)) for b in bodies]
    assert [codes(r) for r in roots] == [["NoError"], ["ErrorMimeContentInvalid"]]
    assert account.drafts.refresh().total_count == before + 1
    item_id = roots[0].find(".//t:Message/t:ItemId", NS).get("Id")
    fetched = account.drafts.get(id=item_id)
    assert fetched.mime_content == garbage
    assert "this is no mail" in fetched.body


def _feed_parsed(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=mime._READING)


_ONE_PART_SAMPLES = [
    b"From: a@example.org\r\nSubject: plain\r\n\r\nbody line 1\r\nbody line 2\r\n",
    b"From: a@example.org\nSubject: bare line feeds\n\nbody\nmore\n",
    b"Subject: no body\r\n\r\n",
    b"Subject: headers only, no empty line\r\n",
    b"From sender@example.org Sat Nov 21 12:00:00 2026\r\nSubject: unix from line\r\n\r\nbody",
    b"Subject: folded\r\n  over two lines\r\nTo: x@example.org\r\n\r\nbody",
    b"Subject: a line that is no header ends the block early\r\nnot a header\r\n\r\nbody",
    b"Subject: bare CR\r\rearly\r\n\r\nbody",
    b"Subject: line feeds first\n\nbody\r\n\r\nmore",
    b"Subject: eight bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xc3\xa9 \xff\xfe\r\n",
    b"Subject: html\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=C3=A9</p>",
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n",
    b"Content-Type: bogus\r\n\r\nbody",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\npart\r\n--x--\r\n",
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body",
    b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b\r\n",
    b"",
    b"\r\n\r\nbody without headers",
]


@pytest.mark.parametrize("raw", _ONE_PART_SAMPLES)
def test_messages_are_read_as_the_feed_parser_reads_them(raw):
    """``_read`` takes a one-part message's body in one piece; what it makes must be what the
    email package's parser makes of the whole message, line by line."""
    fast, full = mime._read(raw), _feed_parsed(raw)
    assert list(fast.raw_items()) == list(full.raw_items())
    assert fast.get_unixfrom() == full.get_unixfrom()
    assert fast.is_multipart() == full.is_multipart()
    assert [type(d) for d in fast.defects] == [type(d) for d in full.defects]
    if not full.is_multipart():
        assert fast.get_payload() == full.get_payload()
        assert fast.get_payload(decode=True) == full.get_payload(decode=True)
    assert fast.as_bytes(policy=email.policy.SMTP) == full.as_bytes(policy=email.policy.SMTP)


def test_plain_address_lists_are_split_as_getaddresses_splits_them():
    """Address fields of plain mailboxes are split by ``mime._addresses`` itself; over generated
    lists (names of atoms, spaces and tabs anywhere allowed) it must give what the email package gives."""
    rnd = random.Random(7)
    atoms = ["Ann", "o'Neil", "x", "A1", "#!$%&*+/=?^_`{|}~-", "Z"]

    def space() -> str:
        return rnd.choice(["", " ", "  ", "\t", " \t "])

    def mailbox() -> str:
        local, domain = rnd.choices(atoms, k=rnd.randint(1, 2)), rnd.choices(atoms, k=rnd.randint(1, 3))
        address = ".".join(local) + "@" + ".".join(domain)
        if rnd.random() < 0.3:
            return space() + address + space()
        name = "".join(rnd.choice(atoms) + rnd.choice([" ", "  ", "\t"]) for _ in range(rnd.randint(0, 3)))
        return space() + name + rnd.choice(atoms + [""]) + space() + "<" + address + ">" + space()

    taken = 0
    for _ in range(3000):
        text = ",".join(mailbox() for _ in range(rnd.randint(1, 4)))
        taken += bool(mime._ADDRESS_LIST.fullmatch(text))
        expected = [Address(name or None, addr or None)
                    for name, addr in email.utils.getaddresses([text]) if name or addr]
        assert mime._addresses(text) == expected, text
    assert taken > 2500  # the generated lists do take the plain path


def test_clean_removes_exactly_the_characters_no_store_can_hold():
    """``snapshot.clean`` skips its pattern for printable text; over generated strings of the
    awkward characters it must remove exactly what the pattern removes."""
    rnd = random.Random(3)
    awkward = [chr(c) for c in [*range(0x00, 0x21), *range(0x7e, 0xa1), 0x2028, 0x200b, 0xd7ff, 0xd800, 0xdfff,
                                0xe000, 0xfeff, 0xfffd, 0xfffe, 0xffff, 0x10000, 0x10ffff]] + ["a", "é", "€"]
    for _ in range(20000):
        text = "".join(rnd.choices(awkward, k=rnd.randint(0, 8)))
        assert snapshot.clean(text) == snapshot._UNSTORABLE.sub("", text), repr(text)
