"""User configuration objects (GetUserConfiguration, CreateUserConfiguration,
UpdateUserConfiguration, DeleteUserConfiguration) through exchangelib's Folder methods and raw
SOAP, on both back ends: typed dictionaries, XmlData and BinaryData kept as written, the objects
hidden among the folder's associated items, and bad input refused with nothing stored."""

from __future__ import annotations

import base64

import pytest
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorItemNotFound, ErrorItemSave

from .conftest import PASSWORD, make_account, new_mailbox
from .soap import NS, codes, envelope, parse, post

WHEN = EWSDateTime(2026, 11, 22, 9, 30, tzinfo=EWSTimeZone("UTC"))
XML = b'<?xml version="1.0"?><Settings><View>Compact</View></Settings>'


def test_a_configuration_is_created_read_updated_and_deleted(account):
    inbox = account.inbox
    with pytest.raises(ErrorItemNotFound):
        inbox.get_user_configuration(name="Mailroom.Test")
    dictionary = {"Theme": "dark", "Columns": 7, "Compact": True, "Since": WHEN, "Blob": b"\x00\x01\xff",
                  "Level": b"\x05"}
    inbox.create_user_configuration(name="Mailroom.Test", dictionary=dictionary, xml_data=XML,
                                    binary_data=b"\x89PNG")
    config = inbox.get_user_configuration(name="Mailroom.Test")
    assert config.user_configuration_name.name == "Mailroom.Test"
    assert config.dictionary == dictionary
    assert (config.xml_data, config.binary_data) == (XML, b"\x89PNG")
    assert config.id

    only_id = inbox.get_user_configuration(name="Mailroom.Test", properties="Id")
    assert only_id.id == config.id and only_id.dictionary is None and only_id.xml_data is None
    with pytest.raises(ErrorItemSave):
        inbox.create_user_configuration(name="Mailroom.Test", dictionary={"Other": "value"})

    inbox.update_user_configuration(name="Mailroom.Test", dictionary={"Theme": "light"})
    updated = inbox.get_user_configuration(name="Mailroom.Test")
    assert updated.dictionary == {"Theme": "light"}
    assert (updated.xml_data, updated.binary_data) == (XML, b"\x89PNG")  # not named: kept

    inbox.delete_user_configuration(name="Mailroom.Test")
    with pytest.raises(ErrorItemNotFound):
        inbox.get_user_configuration(name="Mailroom.Test")
    with pytest.raises(ErrorItemNotFound):
        inbox.delete_user_configuration(name="Mailroom.Test")


def test_configurations_are_per_folder_and_not_among_its_items(account):
    account.calendar.create_user_configuration(name="WorkHours", xml_data=XML)
    account.inbox.create_user_configuration(name="WorkHours", binary_data=b"inbox")
    assert account.calendar.get_user_configuration(name="WorkHours").xml_data == XML
    assert account.inbox.get_user_configuration(name="WorkHours").binary_data == b"inbox"
    account.inbox.refresh()
    assert account.inbox.total_count == 0 and list(account.inbox.all()) == []
    with pytest.raises(ErrorItemNotFound):
        account.drafts.get_user_configuration(name="WorkHours")


def _create(name: str, dictionary: str, folder: str = '<t:DistinguishedFolderId Id="inbox"/>') -> bytes:
    return envelope(f'<m:CreateUserConfiguration><m:UserConfiguration><t:UserConfigurationName Name="{name}">'
                    f"{folder}</t:UserConfigurationName><t:Dictionary>{dictionary}</t:Dictionary>"
                    "</m:UserConfiguration></m:CreateUserConfiguration>")


def _entry(key_type: str, key: str, value: str) -> str:
    return (f"<t:DictionaryEntry><t:DictionaryKey><t:Type>{key_type}</t:Type><t:Value>{key}</t:Value>"
            f"</t:DictionaryKey>{value}</t:DictionaryEntry>")


def _value(value_type: str, *values: str) -> str:
    return (f"<t:DictionaryValue><t:Type>{value_type}</t:Type>"
            + "".join(f"<t:Value>{v}</t:Value>" for v in values) + "</t:DictionaryValue>")


def _get(name: str) -> bytes:
    return envelope(f'<m:GetUserConfiguration><m:UserConfigurationName Name="{name}">'
                    '<t:DistinguishedFolderId Id="inbox"/></m:UserConfigurationName>'
                    "<m:UserConfigurationProperties>All</m:UserConfigurationProperties></m:GetUserConfiguration>")


@pytest.mark.parametrize("entry", [
    _entry("String", "n", _value("Integer32", "2147483648")),
    _entry("String", "n", _value("UnsignedInteger32", "-1")),
    _entry("String", "n", _value("Byte", "256")),
    _entry("String", "n", _value("Boolean", "yes")),
    _entry("String", "n", _value("DateTime", "yesterday")),
    _entry("String", "n", _value("ByteArray", "not base64!")),
    _entry("String", "n", _value("String", "one", "two")),
    _entry("StringArray", "n", _value("String", "v")),
    _entry("String", "n", _value("String", "v")) + _entry("String", "n", _value("String", "w")),
])
def test_a_value_its_type_cannot_hold_is_refused_and_nothing_is_stored(server, mailbox, entry):
    url, user = server.ews_url, mailbox.address
    root = parse(post(url, _create("Bad", entry), user, PASSWORD))
    assert codes(root) == ["ErrorInvalidRequest"]
    assert codes(parse(post(url, _get("Bad"), user, PASSWORD))) == ["ErrorItemNotFound"]


def test_raw_soap_keeps_arrays_nil_values_and_exact_texts(server, mailbox):
    url, user = server.ews_url, mailbox.address
    entries = (_entry("String", "list", _value("StringArray", "a", "b c", "")) +
               _entry("Integer64", "-9223372036854775808", '<t:DictionaryValue xsi:nil="true" '
                      'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>') +
               _entry("DateTime", "2026-11-22T10:30:00+01:00", _value("UnsignedInteger64", "+18446744073709551615")) +
               _entry("String", "flag", _value("Boolean", "1")))
    assert codes(parse(post(url, _create("Arrays", entries), user, PASSWORD))) == ["NoError"]
    root = parse(post(url, _get("Arrays"), user, PASSWORD))
    assert codes(root) == ["NoError"]
    found = [(e.findtext("t:DictionaryKey/t:Value", namespaces=NS),
              [v.text or "" for v in e.iterfind("t:DictionaryValue/t:Value", NS)],
              e.find("t:DictionaryValue", NS).get("{http://www.w3.org/2001/XMLSchema-instance}nil"))
             for e in root.iterfind(".//t:DictionaryEntry", NS)]
    assert found == [("list", ["a", "b c", ""], None), ("-9223372036854775808", [], "true"),
                     ("2026-11-22T09:30:00Z", ["18446744073709551615"], None), ("flag", ["true"], None)]
    assert root.find(".//m:UserConfiguration/t:UserConfigurationName/t:FolderId", NS) is not None

    emptied = envelope('<m:UpdateUserConfiguration><m:UserConfiguration><t:UserConfigurationName Name="Arrays">'
                       '<t:DistinguishedFolderId Id="inbox"/></t:UserConfigurationName><t:Dictionary/>'
                       "</m:UserConfiguration></m:UpdateUserConfiguration>")
    assert codes(parse(post(url, emptied, user, PASSWORD))) == ["NoError"]
    root = parse(post(url, _get("Arrays"), user, PASSWORD))
    dictionary = root.find(".//m:UserConfiguration/t:Dictionary", NS)
    assert dictionary is not None and len(dictionary) == 0


def test_another_mailbox_is_refused_and_an_address_list_is_no_folder(server, server_store, mailbox, account):
    bob = new_mailbox(server_store, mailbox.address.split("@", 1)[1], "bob")
    make_account(server, bob.address).inbox.create_user_configuration(name="Private", binary_data=b"bob's")
    others = (f'<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>{bob.address}</t:EmailAddress>'
              "</t:Mailbox></t:DistinguishedFolderId>")
    get = envelope(f'<m:GetUserConfiguration><m:UserConfigurationName Name="Private">{others}'
                   "</m:UserConfigurationName><m:UserConfigurationProperties>BinaryData"
                   "</m:UserConfigurationProperties></m:GetUserConfiguration>")
    root = parse(post(server.ews_url, get, mailbox.address, PASSWORD))
    assert codes(root) == ["ErrorAccessDenied"] and b"bob's" not in base64.b64decode(
        root.findtext(".//t:BinaryData", default="", namespaces=NS))
    create = _create("Mine", "", folder=others)
    assert codes(parse(post(server.ews_url, create, mailbox.address, PASSWORD))) == ["ErrorAccessDenied"]
    listed = _create("Listed", "", folder='<t:AddressListId Id="00000000-0000-0000-0000-000000000000"/>')
    assert codes(parse(post(server.ews_url, listed, mailbox.address, PASSWORD))) == ["ErrorInvalidRequest"]
