"""The policy language: grammar, parser, syntax tree, checker and formatter.

Pure: imports nothing from Flask, SQLAlchemy, marshmallow or pyjwt, and nothing
from the rest of pdp but :mod:`pdp.errors`.
"""
