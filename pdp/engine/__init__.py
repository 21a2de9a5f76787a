"""The engine: policies compiled to Python, indexed, and decided.

Pure: imports nothing from Flask, SQLAlchemy, marshmallow or pyjwt; only
:mod:`pdp.errors` and :mod:`pdp.lang` from the rest of pdp.
"""
