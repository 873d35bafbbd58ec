package applog

import (
	"slices"
	"strings"
	"testing"
)

// gunicornNoModule is the journal of gunicorn 20.1 started on an app module
// that does not exist, as journalctl -o short-precise prints it: the
// traceback is longer than the excerpt a report shows.
var gunicornNoModule = `Nov 30 13:30:01.000001 host systemd[1]: Starting site-shop.service - shop...
Nov 30 13:30:01.200000 host sitectl[42]: [2026-11-30 13:30:01 +0000] [42] [INFO] Starting gunicorn 20.1.0
Nov 30 13:30:01.300000 host sitectl[43]: [2026-11-30 13:30:01 +0000] [43] [ERROR] Exception in worker process
Nov 30 13:30:01.300001 host sitectl[43]: Traceback (most recent call last):
Nov 30 13:30:01.300002 host sitectl[43]:   File "/usr/lib/python3/dist-packages/gunicorn/arbiter.py", line 589, in spawn_worker
Nov 30 13:30:01.300003 host sitectl[43]:     worker.init_process()
Nov 30 13:30:01.300004 host sitectl[43]:   File "<frozen importlib._bootstrap>", line 1140, in _find_and_load_unlocked
Nov 30 13:30:01.300005 host sitectl[43]: ModuleNotFoundError: No module named 'nosuch'
Nov 30 13:30:01.300006 host sitectl[43]: [2026-11-30 13:30:01 +0000] [43] [INFO] Worker exiting (pid: 43)
Nov 30 13:30:01.400000 host sitectl[42]: [2026-11-30 13:30:01 +0000] [42] [INFO] Shutting down: Master
Nov 30 13:30:01.400001 host sitectl[42]: [2026-11-30 13:30:01 +0000] [42] [INFO] Reason: Worker failed to boot.
Nov 30 13:30:01.500000 host systemd[1]: site-shop.service: Main process exited, code=exited, status=3/NOTIMPLEMENTED
Nov 30 13:30:01.500001 host systemd[1]: site-shop.service: Failed with result 'exit-code'.`

// gunicornHalt is gunicornNoModule where the worker failed while the master
// was still starting workers: its SIGCHLD handler raised HaltServer there,
// and the master died with a traceback of its own after the worker's
// (seen in CI, 1 December 2026).
var gunicornHalt = strings.Replace(gunicornNoModule, "Nov 30 13:30:01.400000 host sitectl[42]: [2026-11-30 13:30:01 +0000] [42] [INFO] Shutting down: Master", `Nov 30 13:30:01.350000 host sitectl[42]: Traceback (most recent call last):
Nov 30 13:30:01.350001 host sitectl[42]:   File "/usr/lib/python3/dist-packages/gunicorn/arbiter.py", line 242, in handle_chld
Nov 30 13:30:01.350002 host sitectl[42]:     self.reap_workers()
Nov 30 13:30:01.350003 host sitectl[42]:   File "/usr/lib/python3/dist-packages/gunicorn/arbiter.py", line 525, in reap_workers
Nov 30 13:30:01.350004 host sitectl[42]:     raise HaltServer(reason, self.WORKER_BOOT_ERROR)
Nov 30 13:30:01.350005 host sitectl[42]: gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>
Nov 30 13:30:01.400000 host sitectl[42]: [2026-11-30 13:30:01 +0000] [42] [INFO] Shutting down: Master`, 1)

// gunicornChain is gunicornNoModule where the master, stopping the other
// worker, found it already gone (ProcessLookupError) and, while it handled
// that, its SIGCHLD handler raised HaltServer again: Python prints the three
// as one chain (seen in CI, 7 December 2026).
var gunicornChain = strings.Replace(gunicornNoModule, "Nov 30 13:30:01.400000 host sitectl[42]: [2026-11-30 13:30:01 +0000] [42] [INFO] Shutting down: Master", `Nov 30 13:30:01.340000 host sitectl[42]: Traceback (most recent call last):
Nov 30 13:30:01.340001 host sitectl[42]:   File "/usr/lib/python3/dist-packages/gunicorn/arbiter.py", line 525, in reap_workers
Nov 30 13:30:01.340002 host sitectl[42]:     raise HaltServer(reason, self.WORKER_BOOT_ERROR)
Nov 30 13:30:01.340003 host sitectl[42]: gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>
Nov 30 13:30:01.340004 host sitectl[42]: 
Nov 30 13:30:01.340005 host sitectl[42]: During handling of the above exception, another exception occurred:
Nov 30 13:30:01.340006 host sitectl[42]: 
Nov 30 13:30:01.350000 host sitectl[42]: Traceback (most recent call last):
Nov 30 13:30:01.350001 host sitectl[42]:   File "/usr/lib/python3/dist-packages/gunicorn/arbiter.py", line 642, in kill_worker
Nov 30 13:30:01.350002 host sitectl[42]:     os.kill(pid, sig)
Nov 30 13:30:01.350003 host sitectl[42]: ProcessLookupError: [Errno 3] No such process
Nov 30 13:30:01.350004 host sitectl[42]: 
Nov 30 13:30:01.350005 host sitectl[42]: During handling of the above exception, another exception occurred:
Nov 30 13:30:01.350006 host sitectl[42]: 
Nov 30 13:30:01.350007 host sitectl[42]: Traceback (most recent call last):
Nov 30 13:30:01.350008 host sitectl[42]:   File "/usr/lib/python3/dist-packages/gunicorn/arbiter.py", line 525, in reap_workers
Nov 30 13:30:01.350009 host sitectl[42]:     raise HaltServer(reason, self.WORKER_BOOT_ERROR)
Nov 30 13:30:01.350010 host sitectl[42]: gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>
Nov 30 13:30:01.400000 host sitectl[42]: [2026-11-30 13:30:01 +0000] [42] [INFO] Shutting down: Master`, 1)

// appChain is an app's own chain: the exception it raised from another is
// its error.
var appChain = `Nov 30 13:30:01.000001 host systemd[1]: Starting site-api.service - api...
Nov 30 13:30:01.100000 host site-api[9]: Traceback (most recent call last):
Nov 30 13:30:01.100001 host site-api[9]:   File "/srv/app.py", line 3, in <module>
Nov 30 13:30:01.100002 host site-api[9]: KeyError: 'DATABASE_URL'
Nov 30 13:30:01.100003 host site-api[9]: The above exception was the direct cause of the following exception:
Nov 30 13:30:01.100004 host site-api[9]: Traceback (most recent call last):
Nov 30 13:30:01.100005 host site-api[9]:   File "/srv/app.py", line 5, in <module>
Nov 30 13:30:01.100006 host site-api[9]: RuntimeError: DATABASE_URL is not set
Nov 30 13:30:01.500000 host systemd[1]: site-api.service: Failed with result 'exit-code'.`

func TestExceptionLine(t *testing.T) {
	for m, want := range map[string]bool{
		"ModuleNotFoundError: No module named 'nosuch'":                       true,
		"gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>": true,
		"app.main.<locals>.Err: x":                                            true,
		"KeyboardInterrupt":                                                   true,
		"__main__.Ошибка: x":                                                  true,
		"OSError: [Errno 98] Address already in use":                          true,
		"[2026-11-30 13:30:01 +0000] [44] [INFO] Worker exiting (pid: 44)":    false,
		"Booting worker with pid: 44":                                         false,
		"  File \"/srv/app.py\", line 3":                                      false,
		"\tat x":                                                              false,
		": no name":                                                           false,
		"1Error: x":                                                           false,
		"During handling of the above exception, another exception occurred:": false,
	} {
		if got := exceptionLine(m); got != want {
			t.Errorf("exceptionLine(%q) = %v, want %v", m, got, want)
		}
	}
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		name       string
		journal    string
		want       []string
		incomplete bool
		addrInUse  bool
	}{
		{"traceback", gunicornNoModule, []string{"ModuleNotFoundError: No module named 'nosuch'"}, false, false},
		{"the worker's traceback, not the master's HaltServer after it", gunicornHalt, []string{"ModuleNotFoundError: No module named 'nosuch'"}, false, false},
		{"the worker's traceback, not the master's chain that ends in HaltServer", gunicornChain, []string{"ModuleNotFoundError: No module named 'nosuch'"}, false, false},
		{"an app's chain: its last exception", appChain, []string{"RuntimeError: DATABASE_URL is not set"}, false, false},
		{"a chain whose last traceback is not all in the journal yet", strings.Join(strings.Split(appChain, "\n")[:7], "\n"), []string{"The above exception was the direct cause of the following exception:", "Traceback (most recent call last):", `  File "/srv/app.py", line 5, in <module>`}, true, false},
		{"a line of another process inside the traceback", strings.Replace(gunicornNoModule, "    worker.init_process()\n", "    worker.init_process()\nNov 30 13:30:01.300003 host sitectl[42]: [2026-11-30 13:30:01 +0000] [42] [INFO] Booting worker with pid: 44\n", 1),
			[]string{"ModuleNotFoundError: No module named 'nosuch'"}, false, false},
		{"HaltServer alone", strings.Join(strings.Split(gunicornHalt, "\n")[9:], "\n"), []string{"gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>"}, false, false},
		{"traceback not all in the journal yet", strings.Join(strings.Split(gunicornNoModule, "\n")[:6], "\n"),
			[]string{"Traceback (most recent call last):", `  File "/usr/lib/python3/dist-packages/gunicorn/arbiter.py", line 589, in spawn_worker`, "    worker.init_process()"}, true, false},
		{"no traceback: the last lines", `Nov 30 13:30:01.000001 host systemd[1]: Starting site-api.service - api...
Nov 30 13:30:01.100000 host api[7]: loading config
Nov 30 13:30:01.100001 host api[7]: listen tcp 127.0.0.1:8080: bind: address already in use
Nov 30 13:30:01.100002 host api[7]: exiting
Nov 30 13:30:01.100003 host api[7]: 
Nov 30 13:30:01.500000 host systemd[1]: site-api.service: Failed with result 'exit-code'.`,
			[]string{"loading config", "listen tcp 127.0.0.1:8080: bind: address already in use", "exiting"}, false, true},
		{"python bind", `Nov 30 13:30:01.100000 host sitectl[9]: Traceback (most recent call last):
Nov 30 13:30:01.100001 host sitectl[9]:   File "<string>", line 1, in <module>
Nov 30 13:30:01.100002 host sitectl[9]: OSError: [Errno 98] Address already in use`,
			[]string{"OSError: [Errno 98] Address already in use"}, false, true},
		// A restart: what the old run wrote as it drained, before
		// systemd starts the new one, is not the new one's error; nor
		// is an earlier attempt's.
		{"not the stopped run's last words", `Nov 30 13:30:00.100000 host systemd[1]: Stopping site-api.service - api...
Nov 30 13:30:00.100001 host site-api[7]: webapp: draining: received signal terminated
Nov 30 13:30:00.100002 host site-api[7]: webapp: exited
Nov 30 13:30:00.200000 host systemd[1]: Stopped site-api.service - api.
Nov 30 13:30:00.300000 host systemd[1]: Starting site-api.service - api...
Nov 30 13:30:03.300000 host systemd[1]: site-api.service: start operation timed out. Terminating.
Nov 30 13:30:03.400000 host systemd[1]: site-api.service: Failed with result 'timeout'.`, nil, false, false},
		{"a start that never began: not the stopped run's", `Nov 30 13:30:00.100000 host systemd[1]: Stopping site-api.service - api...
Nov 30 13:30:00.100001 host site-api[7]: [INFO] Worker exiting (pid: 7)
Nov 30 13:30:00.100002 host site-api[6]: [INFO] Shutting down: Master
Nov 30 13:30:00.200000 host systemd[1]: Stopped site-api.service - api.
Nov 30 13:30:00.300000 host systemd[1]: Dependency failed for site-api.service - api.`, nil, false, false},
		{"the last attempt's", `Nov 30 13:30:00.300000 host systemd[1]: Starting site-api.service - api...
Nov 30 13:30:00.400000 host site-api[8]: listen tcp 127.0.0.1:8080: bind: address already in use
Nov 30 13:30:00.500000 host systemd[1]: site-api.service: Scheduled restart job, restart counter is at 1.
Nov 30 13:30:00.600000 host systemd[1]: Starting site-api.service - api...
Nov 30 13:30:00.700000 host site-api[9]: config: no such file
Nov 30 13:30:00.800000 host systemd[1]: site-api.service: Failed with result 'exit-code'.`, []string{"config: no such file"}, false, false},
		{"only systemd", "Nov 30 13:30:01.500000 host systemd[1]: site-x.service: Failed with result 'exit-code'.", nil, false, false},
		// sitectl's own lines under the app's identifier: prepare's and
		// the launcher's notices, the cleanup after the stop.
		{"not sitectl's notices", `Nov 30 13:30:01.000001 host systemd[1]: Starting site-ms.service - Site ms...
Nov 30 13:30:01.050000 host site-ms[400]: site ms has no mode recorded: starting in its default mode normal
Nov 30 13:30:01.060000 host site-ms[401]: site ms: cannot start at idle priority: operation not permitted
Nov 30 13:30:01.159324 host site-ms[403]: webapp: started pid=403 site="ms" mode="broken" generation=""
Nov 30 13:30:01.159325 host site-ms[403]: webapp: failing at start as requested
Nov 30 13:30:01.161886 host systemd[1]: site-ms.service: Main process exited, code=exited, status=1/FAILURE
Nov 30 13:30:01.209421 host site-ms[411]: site ms: no processes were left behind
Nov 30 13:30:01.209515 host site-ms[411]: site ms: cleanup ok: 0 processes left behind, 0 still running after the timeout, 0 hooks run, 0 failed
Nov 30 13:30:01.227708 host systemd[1]: site-ms.service: Failed with result 'exit-code'.`,
			[]string{`webapp: started pid=403 site="ms" mode="broken" generation=""`, "webapp: failing at start as requested"}, false, false},
		{"a traceback cut short is not ended by the cleanup", `Nov 30 13:30:01.300001 host site-ms[43]: Traceback (most recent call last):
Nov 30 13:30:01.300002 host site-ms[43]:   File "/srv/app.py", line 3, in <module>
Nov 30 13:30:01.400000 host site-ms[44]: site ms: cleanup ok: 0 processes left behind, 0 still running after the timeout, 0 hooks run, 0 failed`,
			[]string{"Traceback (most recent call last):", `  File "/srv/app.py", line 3, in <module>`}, true, false},
		{"the launch's own error is kept, another site's notice too", `Nov 30 13:30:01.300001 host site-ms[43]: sitectl: error: site ms: cannot run /srv/app: no such file or directory
Nov 30 13:30:01.300002 host site-ms[43]: site other: hello
Nov 30 13:30:01.300003 host site-ms[43]: site msx: hello`,
			[]string{"sitectl: error: site ms: cannot run /srv/app: no such file or directory", "site other: hello", "site msx: hello"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Explain(strings.Split(tc.journal, "\n"))
			if !slices.Equal(c.Error, tc.want) || c.Incomplete != tc.incomplete || c.AddrInUse != tc.addrInUse {
				t.Errorf("Explain: %+v\nwant error %q, incomplete %v, addr in use %v", c, tc.want, tc.incomplete, tc.addrInUse)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	for l, want := range map[string]Line{
		"Nov  3 09:00:00.123456 web-1 gunicorn[12]: hello: there": {"gunicorn", "hello: there"},
		"Nov 30 13:30:01 host systemd[1]: Started x.":             {"systemd", "Started x."},
		"-- No entries --": {"", "-- No entries --"},
	} {
		if got := Split(l); got != want {
			t.Errorf("Split(%q) = %+v, want %+v", l, got, want)
		}
	}
}
