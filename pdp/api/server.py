"""Running the app under gunicorn, in process: what ``pdp serve`` does once the
environment is prepared (see :mod:`pdp.cli.serve`).

:class:`PdpApplication` is a ``gunicorn.app.base.BaseApplication`` that takes its
configuration from :mod:`pdp.api.gunicorn_conf`, then from the options given, and
builds the app with :func:`pdp.api.create_app` in each worker.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from gunicorn.app.base import BaseApplication

from pdp.config import Settings

CONFIG_MODULE = "pdp.api.gunicorn_conf"


class PdpApplication(BaseApplication):
    def __init__(self, settings: Settings, options: Mapping[str, Any] | None = None):
        self.settings = settings
        self.options = dict(options or {})
        super().__init__(prog="pdp serve")

    def load_config(self) -> None:
        module = importlib.import_module(CONFIG_MODULE)
        for name, value in vars(module).items():
            if name in self.cfg.settings and value is not None:
                self.cfg.set(name, value)
        for name, value in self.options.items():
            if value is not None:
                self.cfg.set(name, value)

    def load(self):
        from pdp.api import create_app

        return create_app(self.settings)


def run(settings: Settings, **options: Any) -> None:
    """Serve until gunicorn stops (SIGTERM/SIGINT: graceful; exits the process)."""
    PdpApplication(settings, options).run()
