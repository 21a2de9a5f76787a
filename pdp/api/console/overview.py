"""``/console/``: the overview (placeholder until built)."""

from __future__ import annotations

from flask import render_template

from pdp.api.console.session import bp, page


@bp.get("/")
@page()
def overview():
    return render_template("console/overview.html", nav="overview")
