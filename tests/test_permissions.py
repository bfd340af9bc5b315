"""Folder permission levels and rights (no server): every level reads back as itself, custom rights
round-trip, and "Owned" edit/delete rights cover only the caller's own items."""

import pytest

from mailroom.access.permissions import (
    CALENDAR_LEVELS,
    LEVELS,
    Access,
    CustomRights,
    ItemScope,
    ReadAccess,
    Right,
    allows,
    level_of,
    level_rights,
)


@pytest.mark.parametrize("calendar", [False, True])
def test_each_level_reads_back_as_itself(calendar):
    for level in CALENDAR_LEVELS if calendar else LEVELS:
        rights = level_rights(level, calendar)
        assert level_of(rights, calendar) == level
        assert CustomRights.of(rights, calendar).rights(calendar) == rights


def test_custom_rights():
    author_like = CustomRights(can_create_items=True, is_folder_visible=True, edit_items=ItemScope.OWNED,
                               delete_items=ItemScope.OWNED, read_items=ReadAccess.FULL_DETAILS)
    assert level_of(author_like.rights(False), False) == "Author"
    odd = CustomRights(can_create_items=True, read_items=ReadAccess.FULL_DETAILS)
    assert level_of(odd.rights(False), False) == "Custom"
    assert CustomRights(read_items=ReadAccess.TIME_ONLY).rights(True) == Right.FREEBUSY_SIMPLE
    with pytest.raises(KeyError):
        level_rights("FreeBusyTimeOnly", calendar=False)


def test_owned_rights_cover_own_items_only():
    author = level_rights("Author", False)
    assert allows(author, Access.EDIT, own_item=True) and not allows(author, Access.EDIT, own_item=False)
    assert allows(author, Access.DELETE, own_item=True) and not allows(author, Access.DELETE)
    editor = level_rights("Editor", False)
    assert allows(editor, Access.EDIT) and allows(editor, Access.DELETE)
    assert not allows(editor, Access.OWN_FOLDER) and not allows(editor, Access.CREATE_SUBFOLDER)
    assert not allows(level_rights("Reviewer", False), Access.CREATE)
    assert not allows(Right.NONE, Access.SEE_FOLDER)
