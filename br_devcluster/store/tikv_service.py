"""tikvpb.Tikv as the store serves it: gRPC takes one servicer per service, so the raw, the
transactional and the coprocessor handlers are composed here (the mixins first: their methods
must win over the generated servicer's UNIMPLEMENTED stubs that RawService inherits)."""
from __future__ import annotations

from br_devcluster.store.coprocessor_service import CoprocessorMethods
from br_devcluster.store.raw_service import RawService
from br_devcluster.store.txn_service import TxnMethods


class TikvService(TxnMethods, CoprocessorMethods, RawService):
    """Raw KV (API V1), transactional KV and the checksum coprocessor over one store state."""
