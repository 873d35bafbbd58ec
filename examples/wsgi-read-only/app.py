"""A WSGI app that honours sitectl's modes, for gunicorn or uWSGI.

sitectl tells an app its mode through the environment only: SITE_MODE holds
the mode's name, and the mode's own variables come with it. Nothing else is
needed: no library, no signal, no file to watch. `sitectl mode SITE
read-only` restarts the app with SITE_MODE=read-only; this app then refuses
writes with 503 and keeps serving reads.

    [modes.read-only]          # in /etc/sitectl/sites/NAME.toml
    environment = { }          # SITE_MODE=read-only is always set
"""
import json
import os

MODE = os.environ.get("SITE_MODE", "normal")
READ_ONLY = MODE == "read-only"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def application(environ, start_response):
    if READ_ONLY and environ["REQUEST_METHOD"] not in SAFE_METHODS:
        body = b"This site is read-only for a moment; please try again shortly.\n"
        start_response("503 Service Unavailable", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Retry-After", "60"),
        ])
        return [body]
    body = json.dumps({"mode": MODE, "method": environ["REQUEST_METHOD"]}).encode()
    start_response("200 OK", [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
