"""``/console/decisions``: the decision log (placeholder until built)."""

from __future__ import annotations

from flask import render_template

from pdp.api.console.session import bp, page


@bp.get("/decisions")
@page("auditor")
def decisions():
    return render_template("console/decisions.html", nav="decisions")
