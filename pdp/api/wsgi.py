"""The WSGI entry point for servers: ``gunicorn pdp.api.wsgi:app``.

The app is built from the environment (:meth:`pdp.config.Settings.from_env`)
when the module is imported, that is in each worker. It does not apply the
migrations: run ``pdp db upgrade`` first, or use ``pdp serve``, which does.
"""

from pdp.api import create_app

app = create_app()
