# sitectl's config file for gunicorn, written by sitectl-generator on every
# daemon-reload: do not edit. A site with server = "gunicorn" and
# worker_exit = "fast" (the default) runs gunicorn with this file in
# GUNICORN_CMD_ARGS (-c). A config file on gunicorn's own command line wins,
# and this one is then not read.
#
# 1. It loads what gunicorn would have loaded without it: gunicorn.conf.py in
#    the working directory, if there is one, as gunicorn itself would.
# 2. Unless that file sets worker_exit, it sets one that ends a worker which
#    stops cleanly (exit status 0, no other thread running) without Python's
#    teardown of the interpreter: the atexit handlers run (logging flushes
#    its handlers there), standard output and error are flushed, then
#    os._exit(0). The teardown frees every object the worker holds, writing
#    to memory it shares with its master, page by page: 0.2-0.3 s of CPU per
#    worker, taken from the generation that serves while the old one drains.
#    A worker that fails, or ends with threads still running, ends as usual.
import os as _sitectl_os


def _sitectl_load_default_config():
    path = _sitectl_os.path.join(_sitectl_os.path.abspath(_sitectl_os.getcwd()), "gunicorn.conf.py")
    if not _sitectl_os.path.exists(path):
        return
    namespace = globals()
    namespace["__file__"] = path
    with open(path, "rb") as f:
        source = f.read()
    exec(compile(source, path, "exec"), namespace)


def _sitectl_fast_worker_exit(server, worker):
    import atexit
    import sys
    import threading

    ending = sys.exc_info()[1]
    if not isinstance(ending, SystemExit) or ending.code not in (0, None):
        return
    if threading.active_count() > 1:
        return
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        _sitectl_os._exit(0)


_sitectl_load_default_config()
if "worker_exit" not in globals():
    worker_exit = _sitectl_fast_worker_exit
