"""A small WSGI app for sitectl's tests and examples.

It answers with the site's mode (from SITE_MODE, which sitectl sets) and its
pid, so a test can tell which mode and which process served a request. In
SITE_MODE=read-only it refuses writes with 503, as the app-side contract
for modes describes.
"""
import json
import os
import time
from urllib.parse import parse_qs

# A mode can make the app fail to load, the way a bad release does. gunicorn
# has already sent READY=1 by then (its workers import the app later), so
# only a probe through the listener notices.
if os.environ.get("WSGI_FAIL_IMPORT") == "1":
    raise RuntimeError("WSGI_FAIL_IMPORT=1: failing to load, as asked")


# WSGI_MARK_EXIT=1 makes each process that imported the app say on standard
# error how it ends: "atexit of PID" from an atexit handler, "teardown of
# PID" when Python's teardown of the interpreter frees the app's objects
# (which sitectl's fast_exit for gunicorn skips).
if os.environ.get("WSGI_MARK_EXIT") == "1":
    import atexit

    atexit.register(lambda: os.write(2, b"atexit of %d\n" % os.getpid()))

    class _Teardown:
        # What it calls is bound now: the teardown clears modules first.
        def __del__(self, write=os.write, getpid=os.getpid):
            write(2, b"teardown of %d\n" % getpid())

    _TEARDOWN = _Teardown()


def burn_cpu(seconds):
    """Spend this much CPU time, as importing a framework or rendering a
    page does (CPU time, not wall time: a busy machine makes it longer)."""
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        for i in range(1000):
            x += i * i


# The benchmark makes the app realistic: a cold start imports for a while
# (WSGI_IMPORT_CPU_SECONDS of CPU) and every request costs some CPU
# (WSGI_REQUEST_CPU_MS). Both default to nothing.
burn_cpu(float(os.environ.get("WSGI_IMPORT_CPU_SECONDS", "0") or 0))
REQUEST_CPU = float(os.environ.get("WSGI_REQUEST_CPU_MS", "0") or 0) / 1000


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    mode = os.environ.get("SITE_MODE", "")
    if path == "/sleep":
        time.sleep(float(query.get("s", ["1"])[0]))
    if path == "/env":
        name = query.get("name", [""])[0]
        return respond(start_response, "200 OK", mode, os.environ.get(name, ""))
    if REQUEST_CPU > 0:
        burn_cpu(REQUEST_CPU)
    if mode == "read-only" and environ.get("REQUEST_METHOD") not in ("GET", "HEAD", "OPTIONS"):
        return respond(start_response, "503 Service Unavailable", mode,
                       json.dumps({"error": "read-only mode: writes are refused"}))
    body = json.dumps({
        "site": os.environ.get("SITE", ""),
        "mode": mode,
        "generation": os.environ.get("SITE_GENERATION", ""),
        "release": os.environ.get("RELEASE", ""),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "server": environ.get("SERVER_SOFTWARE", ""),
    })
    return respond(start_response, "200 OK", mode, body)


def respond(start_response, status, mode, body):
    data = body.encode()
    start_response(status, [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(data))),
        ("X-Site-Mode", mode),
        ("X-Site-Generation", os.environ.get("SITE_GENERATION", "")),
    ])
    return [data]
