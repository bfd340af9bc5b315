"""The folder tree every new mailbox gets: Exchange's distinguished folders.

Names and classes follow Exchange 2016. Every value of the schema's
DistinguishedFolderIdNameType that a primary mailbox can have is created, so a client asking
for any of them finds it; archive and public folder roots are not part of a primary mailbox and
are answered with ErrorFolderNotFound.
"""

from __future__ import annotations

# (distinguished id, display name, folder class, parent distinguished id, hidden)
DEFAULT_FOLDERS: tuple[tuple[str, str, str | None, str | None, bool], ...] = (
    ("root", "Root", None, None, False),
    ("msgfolderroot", "Top of Information Store", "IPF.Note", "root", False),
    ("inbox", "Inbox", "IPF.Note", "msgfolderroot", False),
    ("drafts", "Drafts", "IPF.Note", "msgfolderroot", False),
    ("sentitems", "Sent Items", "IPF.Note", "msgfolderroot", False),
    ("deleteditems", "Deleted Items", "IPF.Note", "msgfolderroot", False),
    ("outbox", "Outbox", "IPF.Note", "msgfolderroot", False),
    ("junkemail", "Junk Email", "IPF.Note", "msgfolderroot", False),
    ("archive", "Archive", "IPF.Note", "msgfolderroot", False),
    ("calendar", "Calendar", "IPF.Appointment", "msgfolderroot", False),
    ("contacts", "Contacts", "IPF.Contact", "msgfolderroot", False),
    ("tasks", "Tasks", "IPF.Task", "msgfolderroot", False),
    ("notes", "Notes", "IPF.StickyNote", "msgfolderroot", False),
    ("journal", "Journal", "IPF.Journal", "msgfolderroot", False),
    ("conversationhistory", "Conversation History", "IPF.Note", "msgfolderroot", False),
    ("syncissues", "Sync Issues", "IPF.Note", "msgfolderroot", False),
    ("conflicts", "Conflicts", "IPF.Note", "syncissues", False),
    ("localfailures", "Local Failures", "IPF.Note", "syncissues", False),
    ("serverfailures", "Server Failures", "IPF.Note", "syncissues", False),
    ("recipientcache", "Recipient Cache", "IPF.Contact.RecipientCache", "contacts", True),
    ("quickcontacts", "Quick Contacts", "IPF.Contact.MOC.QuickContacts", "contacts", True),
    ("imcontactlist", "IM Contact List", "IPF.Contact.MOC.ImContactList", "contacts", True),
    ("personmetadata", "PersonMetadata", "IPF.Contact", "contacts", True),
    ("externalcontacts", "ExternalContacts", "IPF.Contact", "contacts", True),
    ("peopleconnect", "PeopleConnect", "IPF.Contact", "contacts", True),
    ("searchfolders", "Finder", None, "root", False),
    ("voicemail", "Voice Mail", "IPF.Note.Microsoft.Voicemail", "searchfolders", True),
    ("todosearch", "To-Do Search", "IPF.Task", "searchfolders", False),
    ("mycontacts", "MyContacts", "IPF.Note", "searchfolders", False),
    ("favorites", "Favorites", "IPF.Note", "searchfolders", False),
    ("allcategorizeditems", "AllCategorizedItems", "IPF.Note", "searchfolders", False),
    ("alltaggeditems", "AllTaggedItems", "IPF.Note", "searchfolders", False),
    ("important", "Important", "IPF.Note", "searchfolders", False),
    ("starred", "Starred", "IPF.Note", "searchfolders", False),
    ("recoverableitemsroot", "Recoverable Items", None, "root", False),
    ("recoverableitemsdeletions", "Deletions", None, "recoverableitemsroot", False),
    ("recoverableitemsversions", "Versions", None, "recoverableitemsroot", False),
    ("recoverableitemspurges", "Purges", None, "recoverableitemsroot", False),
    ("recoverableitemsdiscoveryholds", "DiscoveryHolds", None, "recoverableitemsroot", False),
    ("adminauditlogs", "AdminAuditLogs", None, "root", False),
    ("directory", "Directory", None, "root", False),
    ("scheduled", "Scheduled", "IPF.Note", "msgfolderroot", False),
    ("orionnotes", "Orion Notes", "IPF.Note", "msgfolderroot", True),
    ("tagitems", "TagItems", None, "root", True),
    ("teamspaceactivity", "TeamspaceActivity", None, "root", True),
    ("teamspacemessaging", "TeamspaceMessaging", None, "root", True),
    ("teamspaceworkitems", "TeamspaceWorkItems", None, "root", True),
    ("teamchat", "TeamChat", None, "root", True),
    ("teamchathistory", "TeamChatHistory", None, "root", True),
    ("yammerroot", "Yammer Root", None, "root", True),
    ("yammerdata", "YammerData", None, "yammerroot", True),
    ("yammerinbound", "Inbound", None, "yammerroot", True),
    ("yammeroutbound", "Outbound", None, "yammerroot", True),
    ("yammerfeeds", "Feeds", None, "yammerroot", True),
    ("kaizaladata", "KaizalaData", None, "root", True),
    ("messageingestion", "MessageIngestion", None, "root", True),
    ("mecontact", "MeContact", "IPF.Contact", "root", True),
)

# Distinguished ids that never name a folder in a primary mailbox (archive mailbox, public
# folders, OneDrive); GetFolder answers them per item with ErrorFolderNotFound.
ABSENT_DISTINGUISHED = frozenset({
    "publicfoldersroot", "archiveroot", "archivemsgfolderroot", "archivedeleteditems", "archiveinbox",
    "archiverecoverableitemsroot", "archiverecoverableitemsdeletions", "archiverecoverableitemsversions",
    "archiverecoverableitemspurges", "archiverecoverableitemsdiscoveryholds", "onedriveroot",
    "onedriverecylebin", "onedrivesystem", "onedrivevolume",
})
