"""ResolveNames and ExpandDL through exchangelib and raw SOAP, on both back ends. The directory is
shared by every test of a run, so each test names its people with a token of its own."""

import uuid

import pytest
from exchangelib import Contact, DistributionList, Mailbox
from exchangelib.errors import ErrorNameResolutionNoResults
from exchangelib.folders import Contacts as ContactsFolder
from exchangelib.indexed_properties import EmailAddress
from exchangelib.properties import DLMailbox, ItemId, Member

from .conftest import PASSWORD, make_account, new_domain, new_mailbox
from .soap import NS, codes, envelope, parse, post


@pytest.fixture
def people(server_store):
    """Two mailboxes sharing a display-name prefix (one with an alias) and one unrelated."""
    token = "z" + uuid.uuid4().hex[:8]
    domain = new_domain(server_store)
    first = new_mailbox(server_store, domain, f"{token}.one", f"{token.capitalize()} Ramirez")
    second = new_mailbox(server_store, domain, f"{token}.two", f"{token.capitalize()} Okafor{token}")
    other = new_mailbox(server_store, domain, f"q{token}", "Quentin Other")
    server_store.directory.add_alias(second.address, f"boss{token}@{domain}")
    return token, domain, first, second, other


def connect(server, address):
    account = make_account(server, address)
    assert account.version.build.major_version == 15  # settles the version the protocol speaks
    return account


def raw(server, address, body):
    return parse(post(server.ews_url, envelope(body), address, PASSWORD))


def expand_by_id(item_id):
    return f'<m:ExpandDL><m:Mailbox><t:ItemId Id="{item_id}"/></m:Mailbox></m:ExpandDL>'


def resolve(account, name, **kwargs):
    return account.protocol.resolve_names([name], **kwargs)


def test_exact_address_and_alias_resolve_to_one_mailbox(server, people):
    token, domain, first, second, _ = people
    account = connect(server, first.address)
    [found] = resolve(account, first.address.upper())
    assert (found.email_address, found.name, found.mailbox_type) == (first.address, first.display_name, "Mailbox")
    [found] = resolve(account, f"SMTP:boss{token}@{domain}")
    assert found.email_address == second.address
    assert isinstance(resolve(account, f"SMTP:nobody{token}@{domain}")[0], ErrorNameResolutionNoResults)


def test_prefix_of_a_display_name_word_or_local_part(server, people):
    token, domain, first, second, other = people
    account = connect(server, first.address)
    [found] = resolve(account, f"okafor{token}")  # a later word of the display name
    assert found.email_address == second.address
    [found] = resolve(account, f"q{token[:6]}")
    assert found.email_address == other.address
    [found] = resolve(account, f"boss{token}")  # the start of an alias
    assert found.email_address == second.address


def test_several_matches_are_a_warning_with_all_of_them(server, people):
    token, _, first, second, _ = people
    account = connect(server, first.address)
    found = resolve(account, token)
    assert [f.email_address for f in found] == [second.address, first.address]  # by display name
    root = raw(server, first.address, "<m:ResolveNames ReturnFullContactData=\"false\">"
                                      f"<m:UnresolvedEntry>{token}</m:UnresolvedEntry></m:ResolveNames>")
    msg = root.find(".//m:ResolveNamesResponseMessage", NS)
    assert msg.get("ResponseClass") == "Warning"
    assert codes(root) == ["ErrorNameResolutionMultipleResults"]
    resolution_set = msg.find("m:ResolutionSet", NS)
    assert (resolution_set.get("TotalItemsInView"), resolution_set.get("IncludesLastItemInRange")) == ("2", "true")


def test_no_match_is_an_error(server, people):
    token, _, first, _, _ = people
    account = connect(server, first.address)
    assert isinstance(resolve(account, f"nothing{token}")[0], ErrorNameResolutionNoResults)
    assert isinstance(resolve(account, "%")[0], ErrorNameResolutionNoResults)  # no wildcards
    assert isinstance(resolve(account, "_")[0], ErrorNameResolutionNoResults)
    root = raw(server, first.address, '<m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>'
                                      f'nothing{token}</m:UnresolvedEntry></m:ResolveNames>')
    assert root.find(".//m:ResolveNamesResponseMessage", NS).get("ResponseClass") == "Error"
    assert codes(root) == ["ErrorNameResolutionNoResults"]


def test_full_contact_data_of_a_directory_entry(server, people):
    token, domain, first, second, _ = people
    account = connect(server, first.address)
    [(mailbox, contact)] = resolve(account, second.address, return_full_contact_data=True)
    assert mailbox.email_address == second.address
    assert contact.display_name == second.display_name
    assert sorted(e.email for e in contact.email_addresses) == [f"SMTP:{second.address}", f"smtp:boss{token}@{domain}"]


def test_contacts_of_the_caller_only(server, people):
    token, domain, first, second, _ = people
    mine, theirs = connect(server, first.address), connect(server, second.address)
    contact = Contact(folder=mine.contacts, display_name=f"Wilhelmina {token}x", given_name="Wilhelmina",
                      email_addresses=[EmailAddress(label="EmailAddress1", email=f"willa{token}@elsewhere.example")])
    contact.save()
    Contact(folder=theirs.contacts, display_name=f"Wilbur {token}x",
            email_addresses=[EmailAddress(label="EmailAddress1", email=f"wilbur{token}@elsewhere.example")]).save()
    [found] = resolve(mine, f"{token}x")
    assert (found.email_address, found.mailbox_type, found.item_id.id) == (
        f"willa{token}@elsewhere.example", "Contact", contact.id)
    [(found, full)] = resolve(mine, f"willa{token}", return_full_contact_data=True)
    assert full.given_name == "Wilhelmina"
    assert [e.email for e in full.email_addresses] == [f"willa{token}@elsewhere.example"]
    [found] = resolve(mine, f"willa{token}@elsewhere.example")  # an exact contact address
    assert found.mailbox_type == "Contact"
    assert isinstance(resolve(mine, f"{token}x", search_scope="ActiveDirectory")[0], ErrorNameResolutionNoResults)
    assert isinstance(resolve(theirs, f"willa{token}")[0], ErrorNameResolutionNoResults)
    [found] = resolve(theirs, f"{token}x", search_scope="Contacts")
    assert found.email_address == f"wilbur{token}@elsewhere.example"


def test_scope_order_puts_contacts_first_when_asked(server, people):
    token, _, first, _, _ = people
    account = connect(server, first.address)
    Contact(folder=account.contacts, display_name=f"{token.capitalize()} Contact",
            email_addresses=[EmailAddress(label="EmailAddress1", email=f"c{token}@elsewhere.example")]).save()
    kinds = [f.mailbox_type for f in resolve(account, token)]
    assert kinds == ["Mailbox", "Mailbox", "Contact"]
    kinds = [f.mailbox_type for f in resolve(account, token, search_scope="ContactsActiveDirectory")]
    assert kinds == ["Contact", "Mailbox", "Mailbox"]


def test_private_list_resolves_and_expands(server, people):
    token, _, first, second, other = people
    account = connect(server, first.address)
    dl = DistributionList(folder=account.contacts, display_name=f"Team {token}", members=[
        Member(mailbox=Mailbox(email_address=second.address, name=second.display_name)),
        Member(mailbox=Mailbox(email_address=other.address))])
    dl.save()
    [found] = resolve(account, f"team {token}")
    assert (found.name, found.mailbox_type, found.item_id.id) == (f"Team {token}", "PrivateDL", dl.id)
    members = account.protocol.expand_dl(DLMailbox(item_id=ItemId(dl.id, dl.changekey), mailbox_type="PrivateDL"))
    assert [(m.email_address, m.name) for m in members] == [
        (second.address, second.display_name), (other.address, None)]


def test_expand_dl_of_an_address_or_a_non_list(server, people):
    token, domain, first, second, _ = people
    account = connect(server, first.address)
    with pytest.raises(ErrorNameResolutionNoResults):
        account.protocol.expand_dl(f"group{token}@{domain}")
    with pytest.raises(ErrorNameResolutionNoResults):
        account.protocol.expand_dl(second.address)
    contact = Contact(folder=account.contacts, display_name="Not a list")
    contact.save()
    assert codes(raw(server, first.address, expand_by_id(contact.id))) == ["ErrorNameResolutionNoResults"]
    assert codes(raw(server, first.address, expand_by_id("garbage"))) == ["ErrorInvalidIdMalformed"]


def test_another_users_list_is_not_expanded(server, people):
    token, _, first, second, _ = people
    owner = connect(server, second.address)
    dl = DistributionList(folder=owner.contacts, display_name=f"Private {token}",
                          members=[Member(mailbox=Mailbox(email_address=first.address))])
    dl.save()
    assert codes(raw(server, first.address, expand_by_id(dl.id))) == ["ErrorAccessDenied"]


def test_parent_folder_ids_choose_the_contact_folders(server, people):
    token, _, first, _, _ = people
    account = connect(server, first.address)
    friends = ContactsFolder(parent=account.contacts, name=f"Friends {token}")
    friends.save()
    Contact(folder=friends, display_name=f"Hidden {token}y", given_name="Hidden",
            email_addresses=[EmailAddress(label="EmailAddress1", email=f"hidden{token}@elsewhere.example")]).save()
    assert isinstance(resolve(account, f"{token}y")[0], ErrorNameResolutionNoResults)
    [(found, full)] = resolve(account, f"{token}y", parent_folders=[friends], return_full_contact_data=True,
                              shape="IdOnly")
    assert found.email_address == f"hidden{token}@elsewhere.example"
    assert full.id == found.item_id.id and full.given_name is None  # IdOnly: the id and nothing else
