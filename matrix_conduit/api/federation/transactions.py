"""`PUT /_matrix/federation/v1/send/{txnId}`: other servers push PDUs and EDUs.

Spec: `content/server-server-api.md` § Transactions,
`data/api/server-server/transactions.yaml`. The handler only reads the body;
what is queued, answered and handled is `service/federation/transactions.py`.
"""

from __future__ import annotations

from ...errors import invalid_param
from ..request import json_object, services
from .auth import origin, signed_blueprint

blueprint = signed_blueprint("federation_transactions", __name__)


@blueprint.put("/_matrix/federation/v1/send/<txn_id>")
async def send_transaction(txn_id: str) -> dict:
    body = await json_object()
    sender = origin()
    claimed = body.get("origin")
    if claimed is not None and claimed != sender:
        raise invalid_param(f"The transaction's origin {claimed!r} is not its signer {sender}.")
    return await services().inbound.transactions.receive(sender, txn_id, body)
