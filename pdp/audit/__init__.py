"""The decision log: what is recorded, how it is written, how it is proven.

* :mod:`pdp.audit.record` — :class:`AuditRecord`, built from an answered decision,
  with claim redaction; canonical JSON;
* :mod:`pdp.audit.chain` — appending under the chain head's lock, the hash chain,
  checkpoints, :func:`~pdp.audit.chain.verify` and :func:`~pdp.audit.chain.head`;
* :mod:`pdp.audit.spill` — the framed, append-only spill file;
* :mod:`pdp.audit.writer` — :class:`AuditWriter`, the decision sink (buffer,
  batches, spill, replay; ``async`` and ``durable`` modes).

The tables are in :mod:`pdp.store.models` (``decision_log``,
``decision_log_policies``, ``audit_chain_head``). ``audit`` sits beside ``store``,
below ``service``: it knows decisions only by their attributes.
"""

from pdp.audit.chain import AppendResult, VerifyResult, append, append_checkpoint, head, verify
from pdp.audit.record import REDACTED, AuditRecord, build_record, canonical_json
from pdp.audit.writer import AuditUnavailable, AuditWriter, WriterMetrics

__all__ = ["REDACTED", "AppendResult", "AuditRecord", "AuditUnavailable", "AuditWriter",
           "VerifyResult", "WriterMetrics", "append", "append_checkpoint", "build_record",
           "canonical_json", "head", "verify"]
