"""Contact items through exchangelib on both back ends: the common fields, e-mail, phone and
postal entries, CompleteName, and a photo attached as the contact's picture."""

import datetime

from exchangelib import Contact, FileAttachment
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress

from .conftest import PASSWORD
from .soap import envelope, fault_code, parse, post

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _full_contact(account) -> Contact:
    contact = Contact(
        folder=account.contacts, given_name="Grace", middle_name="B.", surname="Hopper", nickname="Amazing",
        initials="GBH", display_name="Grace Hopper", company_name="US Navy", job_title="Rear admiral",
        department="Computing", office="Pentagon 3E", manager="Chester Nimitz", assistant_name="Ann",
        profession="Computer scientist", spouse_name="Vincent", generation="Sr.",
        birthday=datetime.date(1906, 12, 9), business_homepage="https://navy.example/grace",
        children=["None"], companies=["Navy", "Remington Rand"], file_as="Hopper, Grace",
        email_addresses=[EmailAddress(label="EmailAddress1", email="grace@navy.example"),
                         EmailAddress(label="EmailAddress2", email="ghopper@remington.example"),
                         EmailAddress(label="EmailAddress3", email="grace@home.example")],
        phone_numbers=[PhoneNumber(label="BusinessPhone", phone_number="+1 202 555 0100"),
                       PhoneNumber(label="MobilePhone", phone_number="+1 202 555 0199"),
                       PhoneNumber(label="HomePhone", phone_number="+1 202 555 0142")],
        physical_addresses=[PhysicalAddress(label="Business", street="1000 Navy Pentagon", city="Washington",
                                            state="DC", country="USA", zipcode="20350"),
                            PhysicalAddress(label="Home", street="1 Home St", city="Arlington", state="VA",
                                            country="USA", zipcode="22201")],
    )
    contact.save()
    return contact


def test_every_common_field_round_trips(account):
    created = _full_contact(account)
    contact = account.contacts.get(id=created.id)
    assert (contact.given_name, contact.middle_name, contact.surname, contact.nickname, contact.initials) == (
        "Grace", "B.", "Hopper", "Amazing", "GBH")
    assert (contact.display_name, contact.company_name, contact.job_title, contact.department) == (
        "Grace Hopper", "US Navy", "Rear admiral", "Computing")
    assert (contact.office, contact.manager, contact.assistant_name, contact.profession) == (
        "Pentagon 3E", "Chester Nimitz", "Ann", "Computer scientist")
    assert (contact.spouse_name, contact.generation, contact.file_as) == ("Vincent", "Sr.", "Hopper, Grace")
    assert contact.birthday == datetime.date(1906, 12, 9)
    assert contact.business_homepage == "https://navy.example/grace"
    assert contact.companies == ["Navy", "Remington Rand"]
    assert sorted((e.label, e.email) for e in contact.email_addresses) == [
        ("EmailAddress1", "grace@navy.example"), ("EmailAddress2", "ghopper@remington.example"),
        ("EmailAddress3", "grace@home.example")]
    assert sorted((p.label, p.phone_number) for p in contact.phone_numbers) == [
        ("BusinessPhone", "+1 202 555 0100"), ("HomePhone", "+1 202 555 0142"), ("MobilePhone", "+1 202 555 0199")]
    addresses = {a.label: a for a in contact.physical_addresses}
    assert (addresses["Business"].street, addresses["Business"].city, addresses["Business"].zipcode) == (
        "1000 Navy Pentagon", "Washington", "20350")
    assert (addresses["Home"].state, addresses["Home"].country) == ("VA", "USA")
    complete = contact.complete_name
    assert (complete.first_name, complete.middle_name, complete.last_name, complete.suffix, complete.nickname,
            complete.full_name) == ("Grace", "B.", "Hopper", "Sr.", "Amazing", "Grace Hopper")
    assert contact.has_picture is False


def test_entries_change_one_by_one(account):
    contact = _full_contact(account)
    contact.phone_numbers = [PhoneNumber(label="BusinessPhone", phone_number="+1 202 555 0111")]
    contact.job_title = "Commodore"
    contact.save(update_fields=["phone_numbers", "job_title"])
    fresh = account.contacts.get(id=contact.id)
    assert fresh.job_title == "Commodore"
    assert {(p.label, p.phone_number) for p in fresh.phone_numbers} == {("BusinessPhone", "+1 202 555 0111")}
    assert fresh.department == "Computing"  # untouched


def test_a_contact_photo(account):
    contact = _full_contact(account)
    photo = FileAttachment(name="ContactPicture.jpg", content=PNG, is_contact_photo=True)
    contact.attach(photo)
    fresh = account.contacts.get(id=contact.id)
    assert fresh.has_picture is True
    [attachment] = fresh.attachments
    assert attachment.is_contact_photo is True and attachment.content == PNG
    contact.detach(photo)
    assert account.contacts.get(id=contact.id).has_picture is False


def test_a_plain_attachment_is_not_a_picture(account):
    contact = _full_contact(account)
    contact.attach(FileAttachment(name="notes.txt", content=b"hello"))
    assert account.contacts.get(id=contact.id).has_picture is False


def test_a_bad_phone_key_is_refused(server, account):
    body = ('<m:CreateItem><m:SavedItemFolderId><t:DistinguishedFolderId Id="contacts"/></m:SavedItemFolderId>'
            '<m:Items><t:Contact><t:DisplayName>Bad</t:DisplayName><t:PhoneNumbers>'
            '<t:Entry Key="SatellitePhone">1</t:Entry></t:PhoneNumbers></t:Contact></m:Items></m:CreateItem>')
    root = parse(post(server.ews_url, envelope(body), account.primary_smtp_address, PASSWORD))
    assert fault_code(root) == "ErrorSchemaValidation"
    assert account.contacts.all().count() == 0
