"""ExportItems (Exchange 2010 SP1): each item as an opaque Data blob that UploadItems restores;
here it is the item's content snapshot (properties, body, extended properties, attachments, MIME)."""

import base64

from lxml import etree

from mailroom.content import snapshot
from mailroom.store.model import NewItem

from ..items import item_id_attrs
from ..service import Operation, expected_change, require
from ..xml import m, sub


class ExportItems(Operation):
    name = "ExportItems"
    min_version = "Exchange2010_SP1"

    def execute(self, request: etree._Element) -> etree._Element:
        root, messages = self.response()

        def one(id_el: etree._Element, msg: etree._Element) -> None:
            mailbox, item = self.item_from(id_el, mime=True)
            expected_change(id_el.get("ChangeKey"))
            data = snapshot.dump(NewItem(props=item.props, body=item.body, mime=item.mime, extended=item.extended,
                                         attachments=self.ctx.store.items.attachments(mailbox, item.id)))
            sub(msg, m("ItemId"), **item_id_attrs(mailbox, item))
            sub(msg, m("Data"), base64.b64encode(data).decode("ascii"))

        self.each(messages, list(require(request, m("ItemIds"))), one)
        return root
