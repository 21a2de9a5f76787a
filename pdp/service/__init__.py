"""Use cases that own transactions: publishing and activating policies, keys,
and the live view of active policy versions a replica decides with.

* :mod:`pdp.service.policies` — publish, activate, list, show, diff;
* :mod:`pdp.service.keys` — API keys and caller authentication;
* :mod:`pdp.service.active` — :class:`ActivePolicies`, the per-replica snapshot.
* :mod:`pdp.service.decisions` — :class:`DecisionService`: deciding (one request or a
  batch), token verification, caller rules, and handing each outcome to the log.
"""
