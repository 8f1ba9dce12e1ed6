"""tikvpb.Tikv as the store serves it: gRPC takes one servicer per service, so the raw and the
transactional handlers are composed here (TxnMethods first: its Kv* methods must win over the
generated servicer's UNIMPLEMENTED stubs that RawService inherits)."""
from __future__ import annotations

from br_devcluster.store.raw_service import RawService
from br_devcluster.store.txn_service import TxnMethods


class TikvService(TxnMethods, RawService):
    """Raw KV (API V1) and transactional KV over one store state."""
