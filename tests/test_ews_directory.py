"""The directory beyond mailboxes' addresses, through exchangelib and raw SOAP on both back ends:
directory attributes in ResolveNames, public groups (ResolveNames, ExpandDL) and rooms
(GetRoomLists, GetRooms). The directory is shared by every test of a run, so each test names its
people with a token of its own."""

import uuid

import pytest
from exchangelib.errors import ErrorNameResolutionNoResults

from .conftest import PASSWORD, new_domain, new_mailbox
from .soap import NS, codes, envelope, fault_code, parse, post
from .test_ews_resolve import connect


@pytest.fixture
def org(server_store):
    """A manager, one of her reports with directory attributes, and a token naming them."""
    token = "d" + uuid.uuid4().hex[:8]
    domain = new_domain(server_store)
    boss = new_mailbox(server_store, domain, f"{token}.boss", f"{token.capitalize()} Boss")
    worker = new_mailbox(server_store, domain, f"{token}.worker", f"{token.capitalize()} Worker")
    server_store.directory.set_attributes(worker.address, {
        "GivenName": "Wanda", "Surname": "Worker", "CompanyName": "Contoso", "Department": "Sales",
        "JobTitle": "Account manager", "OfficeLocation": "B-204", "Street": "1 Main St", "City": "Springfield",
        "PostalCode": "12345", "CountryOrRegion": "US", "Notes": "Call mornings"},
        {"BusinessPhone": "+1 555 0100", "MobilePhone": "+1 555 0199"}, manager=boss.address)
    return token, domain, boss, worker


def raw(server, address, body, version="Exchange2016"):
    return parse(post(server.ews_url, envelope(body, version=version), address, PASSWORD))


def resolve_full(address):
    return ('<m:ResolveNames ReturnFullContactData="true">'
            f"<m:UnresolvedEntry>{address}</m:UnresolvedEntry></m:ResolveNames>")


def test_directory_attributes_in_full_contact_data(server, org):
    _, _, boss, worker = org
    account = connect(server, boss.address)
    [(mailbox, contact)] = account.protocol.resolve_names([worker.address], return_full_contact_data=True)
    assert mailbox.mailbox_type == "Mailbox"
    assert (contact.given_name, contact.surname, contact.company_name) == ("Wanda", "Worker", "Contoso")
    assert (contact.department, contact.job_title, contact.office) == ("Sales", "Account manager", "B-204")
    assert contact.manager == boss.display_name
    assert {(p.label, p.phone_number) for p in contact.phone_numbers} == {
        ("BusinessPhone", "+1 555 0100"), ("MobilePhone", "+1 555 0199")}
    [address] = contact.physical_addresses
    assert (address.label, address.street, address.city, address.zipcode, address.country) == (
        "Business", "1 Main St", "Springfield", "12345", "US")
    assert contact.manager_mailbox.email_address == boss.address  # Exchange2010_SP2 and later
    assert contact.notes == "Call mornings"
    [(_, manager)] = account.protocol.resolve_names([boss.address], return_full_contact_data=True)
    assert [m.email_address for m in manager.direct_reports] == [worker.address]


def test_directory_only_fields_follow_the_version(server, org):
    _, _, boss, worker = org
    old = raw(server, boss.address, resolve_full(worker.address), version="Exchange2010_SP1")
    contact = old.find(".//t:Contact", NS)
    assert contact.findtext("t:Department", namespaces=NS) == "Sales"
    assert contact.find("t:ManagerMailbox", NS) is None and contact.find("t:Notes", NS) is None
    assert contact.find("t:Alias", NS) is None
    new = raw(server, boss.address, resolve_full(worker.address), version="Exchange2010_SP2")
    contact = new.find(".//t:Contact", NS)
    assert contact.findtext("t:ManagerMailbox/t:Mailbox/t:EmailAddress", namespaces=NS) == boss.address
    assert contact.findtext("t:Alias", namespaces=NS) == worker.address.split("@")[0]


def test_attributes_change_and_go(server, server_store, org):
    _, _, boss, worker = org
    server_store.directory.set_attributes(worker.address, {"Department": ""}, {"MobilePhone": ""}, manager="")
    account = connect(server, boss.address)
    [(_, contact)] = account.protocol.resolve_names([worker.address], return_full_contact_data=True)
    assert contact.department is None and contact.manager is None and contact.manager_mailbox is None
    assert [p.label for p in contact.phone_numbers] == ["BusinessPhone"]
    assert contact.job_title == "Account manager"  # untouched


def test_public_groups_resolve_and_expand(server, server_store, org):
    token, domain, boss, worker = org
    groups = server_store.groups
    outer = groups.add(f"all{token}@{domain}", f"All {token}")
    inner = groups.add(f"sales{token}@{domain}", f"Sales {token}")
    groups.add_member(outer.address, inner.address)
    groups.add_member(outer.address, boss.address)
    groups.add_member(outer.address, f"partner{token}@elsewhere.example")
    groups.add_member(inner.address, worker.address)
    account = connect(server, boss.address)
    [found] = account.protocol.resolve_names([outer.address])
    assert (found.email_address, found.name, found.mailbox_type) == (outer.address, f"All {token}", "PublicDL")
    names = [(f.name, f.mailbox_type) for f in account.protocol.resolve_names([token])]
    assert names == [(f"All {token}", "PublicDL"), (boss.display_name, "Mailbox"),  # by display name
                     (worker.display_name, "Mailbox"), (f"Sales {token}", "PublicDL")]
    members = account.protocol.expand_dl(outer.address)
    assert [(m.email_address, m.mailbox_type) for m in members] == [
        (boss.address, "Mailbox"), (f"partner{token}@elsewhere.example", "OneOff"), (inner.address, "PublicDL")]
    assert [m.email_address for m in account.protocol.expand_dl(inner.address)] == [worker.address]
    with pytest.raises(ErrorNameResolutionNoResults):
        account.protocol.expand_dl(worker.address)  # a mailbox, not a group


def test_room_lists_and_rooms(server, server_store, org):
    token, domain, boss, worker = org
    directory, groups = server_store.directory, server_store.groups
    big = directory.add_mailbox(f"big{token}@{domain}", None, f"Big room {token}", kind="room")
    small = directory.add_mailbox(f"small{token}@{domain}", None, f"Another room {token}", kind="room")
    projector = directory.add_mailbox(f"beamer{token}@{domain}", None, f"Projector {token}", kind="equipment")
    building = groups.add(f"building{token}@{domain}", f"Building {token}", room_list=True)
    groups.add(f"plain{token}@{domain}", f"Plain {token}")
    for member in (big, small, projector, worker):
        groups.add_member(building.address, member.address)
    account = connect(server, boss.address)
    lists = [r for r in account.protocol.get_roomlists() if token in r.email_address]
    assert [(r.email_address, r.name, r.mailbox_type) for r in lists] == [
        (building.address, f"Building {token}", "PublicDL")]
    rooms = list(account.protocol.get_rooms(building.address))
    assert [(r.email_address, r.name) for r in rooms] == [(small.address, small.display_name),
                                                          (big.address, big.display_name)]
    [found] = account.protocol.resolve_names([big.address])
    assert found.mailbox_type == "Mailbox"
    assert server_store.directory.mailbox_by_address(big.address).kind == "room"
    for address in (f"plain{token}@{domain}", f"nothing{token}@{domain}"):
        root = raw(server, boss.address, f'<m:GetRooms><m:RoomList><t:EmailAddress>{address}</t:EmailAddress>'
                                         '</m:RoomList></m:GetRooms>')
        assert codes(root) == ["ErrorNameResolutionNoResults"]


def test_room_operations_need_exchange_2010(server, org):
    _, _, boss, _ = org
    for body in ("<m:GetRoomLists/>", "<m:GetRooms><m:RoomList><t:EmailAddress>x@example.com</t:EmailAddress>"
                                      "</m:RoomList></m:GetRooms>"):
        old = raw(server, boss.address, body, version="Exchange2007_SP1")
        assert fault_code(old) == "ErrorInvalidSchemaVersionForMailboxVersion"
        assert codes(raw(server, boss.address, body, version="Exchange2010")) in (["NoError"],
                                                                                 ["ErrorNameResolutionNoResults"])
