"""Fixtures of the console's page tests: a Flask test client signed in to the
console with a given key (``signed_in(client, key) -> csrf_token``).

The app, store and key fixtures are those of :mod:`tests.api.conftest` (on each
backend)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from pdp.api import services
from pdp.api.console.session import COOKIE_PATH, SESSION_COOKIE
from pdp.service import sessions
from tests.api.conftest import make_key

_SIGNIN_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(client: FlaskClient, key: str) -> str:
    """Sign ``client`` in to the console with ``key`` (through the real form);
    the session's CSRF token, for the forms of the pages."""
    form = client.get("/console/sign-in")
    assert form.status_code == 200, form.status_code
    match = _SIGNIN_TOKEN.search(form.get_data(as_text=True))
    assert match, "no csrf_token on the sign-in form"
    response = client.post("/console/sign-in", data={"key": key, "csrf_token": match.group(1)})
    assert response.status_code == 303, (response.status_code,
                                         response.get_data(as_text=True)[:500])
    cookie = client.get_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    assert cookie is not None, "no session cookie after signing in"
    session = sessions.current(services(client.application).db, cookie.value)
    assert session is not None
    return session.csrf_token


@pytest.fixture
def signed_in() -> Callable[[FlaskClient, str], str]:
    """``signed_in(client, key)`` signs ``client`` in and returns the CSRF token."""
    return sign_in


# --------------------------------------------------------------------------- reading pages

class Node:
    """An element of a parsed page (stdlib :mod:`html.parser`, enough for tests)."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None = None):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def get(self, name: str, default=None):
        return self.attrs.get(name, default)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def select(self, tag: str | None = None, *, id: str | None = None,
               cls: str | None = None, **attrs) -> list[Node]:
        """Descendants with this tag, id, class and attribute values."""
        return [n for n in self.iter()
                if (tag is None or n.tag == tag) and (id is None or n.get("id") == id)
                and (cls is None or cls in n.classes)
                and all(n.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def one(self, tag: str | None = None, **kw) -> Node:
        found = self.select(tag, **kw)
        assert len(found) == 1, (tag, kw, len(found))
        return found[0]

    def find(self, tag: str | None = None, **kw) -> Node | None:
        found = self.select(tag, **kw)
        return found[0] if found else None


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
         "source", "track", "wbr"}


def parse_html(text: str) -> Node:
    from html.parser import HTMLParser

    root = Node("#document", {})

    class Builder(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.current = root

        def handle_starttag(self, tag, attrs):
            node = Node(tag, dict(attrs), self.current)
            self.current.children.append(node)
            if tag not in _VOID:
                self.current = node

        def handle_startendtag(self, tag, attrs):
            self.current.children.append(Node(tag, dict(attrs), self.current))

        def handle_endtag(self, tag):
            node = self.current
            while node is not root and node.tag != tag:
                node = node.parent
            if node is not root:
                self.current = node.parent

        def handle_data(self, data):
            self.current.children.append(data)

    builder = Builder()
    builder.feed(text)
    builder.close()
    return root


@pytest.fixture
def client(app):
    """A browser without a session (the Flask test client keeps cookies)."""
    return app.test_client()


@pytest.fixture
def auditor_key(store) -> str:
    """A key with the ``auditor`` role, named ``auditor-1``."""
    return make_key(store, "auditor-1", "auditor")

