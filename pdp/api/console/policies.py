"""``/console/policies``: policy sets and versions (placeholder until built)."""

from __future__ import annotations

from flask import render_template

from pdp.api.console.session import bp, page


@bp.get("/policies")
@page()
def policy_sets():
    return render_template("console/policies.html", nav="policies")
