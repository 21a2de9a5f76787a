"""How work grows with input size, measured by counting calls instead of seconds.

A test that says "this takes linear time" must not depend on how busy the machine
is. cProfile counts every Python function call and every call of a built-in
(``str.find``, ``set.add``, ``dict.get`` …) exactly, the same on every run, so
comparing the count at size n with the count at size 2n separates linear work
(ratio about 2) from quadratic work (ratio about 4) deterministically.
"""

from __future__ import annotations

import cProfile
import pstats
from typing import Any, Callable


def calls(operation: Callable[[], Any]) -> tuple[int, Any]:
    """The number of calls ``operation()`` makes, and what it returned."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        result = operation()
    finally:
        profile.disable()
    return pstats.Stats(profile).total_calls, result


def calls_to(operation: Callable[[], Any], name: str) -> int:
    """How many times ``operation()`` calls the function or built-in named ``name``
    (as cProfile names it: ``"find"`` matches ``<method 'find' of 'str' objects>``)."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        operation()
    finally:
        profile.disable()
    total = 0
    for (_, _, function), (_, ncalls, *_rest) in pstats.Stats(profile).stats.items():
        if function == name or function == f"<method '{name}' of 'str' objects>":
            total += ncalls
    return total


def assert_linear(prepare: Callable[[int], Callable[[], Any]], n: int, *, slack: float = 2.3) -> None:
    """``prepare(size)`` builds the input and returns the operation to measure;
    the operation at size 2n may make at most ``slack`` times the calls of size n."""
    small, _ = calls(prepare(n))
    large, _ = calls(prepare(2 * n))
    assert large <= slack * small, (
        f"{small} calls at size {n}, {large} at size {2 * n}: "
        f"grows {large / small:.2f}× for 2× the input, not linearly")
