"""pdp — a policy decision point with its own ABAC policy language.

The entry points of the engine::

    from pdp import compile_policies, load_policy_dir
    policy_set = load_policy_dir("policies/")
    decision = policy_set.decide({"subject": {...}, "action": "read",
                                  "resource": {"type": "document", "id": "d1"}})
"""

from __future__ import annotations

__all__ = ["compile_policies", "load_policy_dir", "PolicySet", "Decision", "PdpError", "PolicyError"]

_LAZY = {
    "compile_policies": "pdp.engine.compiler",
    "load_policy_dir": "pdp.engine.compiler",
    "PolicySet": "pdp.engine.policyset",
    "Decision": "pdp.engine.policyset",
    "PdpError": "pdp.errors",
    "PolicyError": "pdp.errors",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pdp' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
