# sitectl's config file for gunicorn, written by sitectl prepare (as root,
# before each start of a gunicorn site's service): do not edit. A site with
# server = "gunicorn" and fast_exit = true (the default) runs gunicorn with
# this file in GUNICORN_CMD_ARGS (-c). A config file on gunicorn's own
# command line wins, and this one is then not read.
#
# 1. It loads what gunicorn would have loaded without it: gunicorn.conf.py in
#    the working directory, if there is one, as gunicorn itself would.
# 2. Unless that file sets them, it sets the hooks worker_exit (in each
#    worker) and on_exit (in the master), which end a process that stops
#    cleanly (exit status 0, no thread left that Python would wait for)
#    without Python's teardown of the interpreter: the atexit handlers run
#    (logging flushes its handlers there), standard output and error are
#    flushed, then os._exit(0). The teardown frees every object one by one,
#    writing to memory the master and its workers share: 0.1-0.3 s of CPU
#    per process, taken from the generation that serves while the old one
#    drains. A process that fails, or has a thread that is not a daemon
#    still running, ends as usual.
import os as _sitectl_os


def _sitectl_load_default_config():
    path = _sitectl_os.path.join(_sitectl_os.path.abspath(_sitectl_os.getcwd()), "gunicorn.conf.py")
    if not _sitectl_os.path.exists(path):
        return
    namespace = globals()
    ours = namespace.get("__file__")
    namespace["__file__"] = path
    try:
        with open(path, "rb") as f:
            source = f.read()
        exec(compile(source, path, "exec"), namespace)
    except Exception:
        # gunicorn names the file it was given, which is this one.
        import sys

        print("Failed to read config file: %s (loaded by %s, as gunicorn loads it)" % (path, ours), file=sys.stderr)
        raise


def _sitectl_exit_now():
    import atexit
    import sys

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        _sitectl_os._exit(0)


def _sitectl_alone():
    # A thread Python would wait for at exit (not a daemon) must be left
    # to end: the usual exit waits for it. Daemon threads end with the
    # process either way.
    import threading

    main = threading.main_thread()
    return threading.current_thread() is main and all(t.daemon for t in threading.enumerate() if t is not main)


def _sitectl_fast_worker_exit(server, worker):
    # Called in the worker's finally clause, while the SystemExit that
    # ends it is on its way out: its code is the worker's exit status.
    import sys

    ending = sys.exc_info()[1]
    if isinstance(ending, SystemExit) and ending.code in (0, None) and _sitectl_alone():
        _sitectl_exit_now()


def _sitectl_fast_master_exit(server):
    # Called by the master's halt(reason, exit_status) right before
    # sys.exit(exit_status): only a halt with status 0 ends early.
    import sys

    halt = sys._getframe(1)
    if halt.f_code.co_name == "halt" and halt.f_locals.get("exit_status") == 0 and _sitectl_alone():
        _sitectl_exit_now()


_sitectl_load_default_config()
if "worker_exit" not in globals():
    worker_exit = _sitectl_fast_worker_exit
if "on_exit" not in globals():
    on_exit = _sitectl_fast_master_exit
