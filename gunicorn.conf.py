# gunicorn reads ./gunicorn.conf.py by default: running `gunicorn pdp.api.wsgi:app`
# from the project root gets pdp's configuration. It lives in the package
# (pdp/api/gunicorn_conf.py) so that an installed pdp has it too: `pdp serve`, or
# `gunicorn -c python:pdp.api.gunicorn_conf pdp.api.wsgi:app` from anywhere.
import pdp.api.gunicorn_conf as _pdp

globals().update({name: value for name, value in vars(_pdp).items()
                  if not name.startswith("_")})
