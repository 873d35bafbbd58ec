package site

// KeyDoc documents one key of a site file. The manual page sitectl.toml(5)
// is generated from Keys, and a test checks that Keys and the parser's key
// tables name the same keys: a key the parser learns must be documented
// here, in the same change.
type KeyDoc struct {
	// Table is where the key goes: "" for the top level, or one of the
	// tables of Tables ("listen", "modes.NAME", "probe", "hardening").
	Table string
	// Key is the key's name.
	Key string
	// Type is what the value is, for a reader ("duration", "path", ...).
	Type string
	// Default is what a file without the key gets; "required" for a key
	// every file must have.
	Default string
	// Doc says what the key does, in plain sentences.
	Doc string
}

// Tables are the tables of a site file other than the top level, in the
// order the manual describes them, with how each is written.
var Tables = []struct{ Name, Syntax, Doc string }{
	{"listen", "[[listen]]", "One table per listener. Each has either address (TCP) or path (a unix socket). " +
		"Listeners of the first name go into site-NAME.socket; listeners of any other name into " +
		"site-NAME@OTHER.socket, because systemd names sockets per socket unit. Two sites cannot " +
		"claim overlapping listeners: the same address, or the same port where one side is a wildcard."},
	{"modes.NAME", "[modes.NAME]", "A named run mode: an environment for the app, always with " +
		"SITE_MODE=NAME, or sitectl's own maintenance page instead of the app. Mode names use lowercase " +
		"letters, digits and hyphens. Every site has the modes normal (the app, no extra variables) " +
		"and maintenance (the built-in page) unless the file defines them otherwise."},
	{"probe", "[probe]", "The HTTP check that tells that a site serves after a change: sitectl mode, " +
		"restart and reload send GET path through the site's first listener until the answer has the " +
		"expected status. Without this table a change counts as done once systemd says the service runs, " +
		"the process that serves started with the mode's environment, and it is not stopped (SIGSTOP, a debugger) " +
		"with every process of its session."},
	{"hardening", "[hardening]", "The few exceptions a site may ask for from the sandbox its service " +
		"runs in. Without this table the app gets the full default sandbox."},
	{"egress", "[egress]", "Restricts where the app may connect to. With this table the site's service gets " +
		"IPAddressDeny=any and IPAddressAllow= with the addresses of allow: every other outbound connection " +
		"(TCP, UDP, DNS included) fails. Without it the app may connect anywhere. Inbound connections on the " +
		"site's listeners, sitectl's probe and the maintenance page are not affected: systemd applies a " +
		"service's IP rules to the sockets its processes open, not to those the socket units pass in."},
}

// Keys documents every key of a site file, in the order of the manual.
var Keys = []KeyDoc{
	{"", keyDescription, "string", "\"Site NAME\"",
		"One line of text that systemctl status shows as the description of the site's units."},
	{"", keyExec, "array of strings", "required",
		"The app's command line. The program is an absolute path. The app takes its listening sockets " +
			"from systemd (LISTEN_FDS) instead of binding them itself."},
	{"", keyWorkdir, "path", "none",
		"The app's working directory. A release symlink (/srv/shop/current) is fine: it is resolved at each start."},
	{"", keyUser, "user name", "a dynamic user",
		"The account the app runs as. root is refused. Without user, systemd allocates a dynamic user for the site (DynamicUser=)."},
	{"", keyGroup, "group name", "the user's group",
		"The app's group. Needs user."},
	{"", keyEnvironment, "table of strings", "none",
		"Variables for the app in every mode, e.g. environment = { DJANGO_SETTINGS_MODULE = \"shop.settings\" }. " +
			"SITE, SITE_MODE, SITE_DRAIN_TIMEOUT, SITE_GENERATION, LISTEN_*, SITECTL_*, NOTIFY_SOCKET, WATCHDOG_*, MAINPID, INVOCATION_ID, RUNTIME_DIRECTORY, CREDENTIALS_DIRECTORY, SERVICE_RESULT, EXIT_CODE and EXIT_STATUS are set by sitectl or systemd and refused here."},
	{"", keyListen, "array of tables", "required",
		"The site's listeners, at least one: see [[listen]] below."},
	{"", keyBacklog, "integer 1 to 65535", "systemd's default (SOMAXCONN)",
		"The listen backlog of every listener (Backlog=): how many connections may wait while the app restarts."},
	{"", keyServer, "gunicorn, uwsgi or generic", "generic",
		"The preset for the app server: its stop signal, its readiness and the variables that make it drain " +
			"gracefully (gunicorn: GUNICORN_CMD_ARGS=--graceful-timeout; uwsgi: a graceful SIGTERM and " +
			"UWSGI_WORKER_RELOAD_MERCY; every preset: SITE_DRAIN_TIMEOUT)."},
	{"", keyReadiness, "notify or none", "notify for gunicorn and uwsgi, none for generic",
		"notify: the app sends READY=1 when it serves (Type=notify). none: the app counts as started once it runs (Type=exec)."},
	{"", keyHandoff, "restart or overlap", "restart",
		"How the site moves to a new generation of its app (a reload, a mode switch, a release). restart stops " +
			"the app and starts it again while the socket units hold the listeners. overlap starts the new " +
			"generation beside the serving one on the same sockets, waits until it is ready (and passes the probe), " +
			"and only then lets the old one drain."},
	{"", keyKeepPrevious, "duration, at most 24h", "0 (off)",
		"With handoff = \"overlap\" and TCP listeners only: after a handover the previous generation keeps running " +
			"this long, warm but given no new connections (its socket unit holds each address twice, ReusePort=yes, " +
			"and the launcher steers new connections to one of the two). sitectl rollback within that time flips " +
			"back to it without starting a process; afterwards it is drained as without the key. Adding or removing " +
			"the key takes effect once the site's socket unit is restarted. See docs/warm-rollback.md."},
	{"", keyStartPriority, "idle or normal", "idle",
		"With handoff = \"overlap\": the CPU priority of a reload's new generation until it is ready. idle starts " +
			"it in an autogroup at nice 19 (where the kernel groups tasks by session), under SCHED_BATCH at nice 19 " +
			"with a 0.1 ms scheduler slice (under SCHED_IDLE where its cgroup has the cpu controller), so that its " +
			"cold start (importing the app) uses only CPU time that neither the " +
			"serving generation nor other sites want; once it is ready, root's side of the reload (ExecReload=+) " +
			"promotes every process of it to normal priority, and a promotion that fails fails the reload. A " +
			"generation still starting after 5s is promoted anyway, so that a busy host delays a reload by at " +
			"most that much. normal starts it like the site's other processes. The first generation " +
			"(the service's start) and a reload by SIGHUP start at normal priority. See docs/overlap.md."},
	{"", keyFastExit, "boolean", "true for gunicorn",
		"With server = \"gunicorn\" only: end gunicorn's master and workers, once they have stopped cleanly (exit " +
			"status 0, no thread left that Python would wait for: daemon threads do not count), right after their atexit handlers (logging flushes there) and a flush " +
			"of standard output and error, without Python's teardown of the interpreter. That teardown frees every " +
			"object one by one and costs 0.1-0.3 s of CPU per process, taken from the generation that serves while " +
			"the old one drains. Buffered files the app never flushed or closed are not flushed then. false leaves " +
			"the exit to gunicorn. It works through a config file named in GUNICORN_CMD_ARGS that also loads " +
			"gunicorn.conf.py from the working directory, as gunicorn would; a config file on gunicorn's command " +
			"line, GUNICORN_CMD_ARGS in the site's environment, or a worker_exit or on_exit hook of your own " +
			"takes precedence (for the process that hook is for); sitectl check warns of the first two. See docs/overlap.md."},
	{"", keyDrainTimeout, "duration", "30s",
		"How long the requests in flight may take to finish after SIGTERM."},
	{"", keyStopTimeout, "duration", "5s",
		"The grace after the drain before systemd's SIGKILL (TimeoutStopSec= is drain_timeout plus stop_timeout)."},
	{"", keyStartTimeout, "duration", "60s",
		"How long the app may take to start (TimeoutStartSec=)."},
	{"", keySettleTime, "duration", "1s",
		"How long the processes that serve a change (the main process, or an overlap site's new generation) must " +
			"have been running, counted from their own start, before sitectl mode, restart and reload say it is done. " +
			"Until then sitectl keeps watching them, and then probes once more; if the main process or the generation " +
			"exits, systemd restarts the service, or the probe fails, the change is rolled back. An app that took " +
			"longer than this to become ready is still watched for half of it after it was ready; READY=1 alone is not health."},
	{"", keyModes, "table of tables", "normal and maintenance",
		"The site's run modes: see [modes.NAME] below."},
	{"", keyDefaultMode, "mode name", "normal",
		"The mode a site starts in when no mode is recorded for it yet."},
	{"", keyReloadTrigger, "path", "none",
		"Touching this file reloads the site: a path unit (site-NAME-reload.path) runs sitectl touched, which " +
			"reloads again if the file was touched during the reload. The site's socket starts the path unit and " +
			"takes it down with it, so the trigger is armed whenever the site is in service."},
	{"", keyCleanup, "array of arrays of strings", "none",
		"Commands run after the app stopped (sitectl cleanup, ExecStopPost=), e.g. to release locks. Each is a " +
			"command line with an absolute program. They get SITE, SITE_MODE, SERVICE_RESULT, EXIT_CODE and " +
			"EXIT_STATUS; one that fails or hangs is logged and never holds up the stop. They run in the app's sandbox, as its user: " +
			"sitectl check warns of a program that is missing, not executable or hidden from the app (/home, say)."},
	{"", keyCleanupTimeout, "duration", "10s",
		"How long the processes the app left behind get after SIGTERM, and how long each cleanup command may run. " +
			"systemd gives the whole cleanup drain_timeout plus stop_timeout: where these waits would not fit in that, they are shortened, so that every cleanup command runs."},
	{"", keyProbe, "table", "none",
		"The check that a site serves: see [probe] below."},
	{"", keyHardening, "table", "the full sandbox",
		"Exceptions from the sandbox: see [hardening] below."},
	{"", keyCredentials, "table of paths", "none",
		"Secrets for the app, e.g. credentials = { db_password = \"/etc/credstore/shop/db_password\" }: " +
			"systemd reads each file as root when the service starts (LoadCredential=) and hands it to the app " +
			"as $CREDENTIALS_DIRECTORY/NAME, readable by the site's user alone and by no other site. This is " +
			"the way to pass secrets: the environment of a mode is not. Keep the files readable by root " +
			"alone, outside /etc/sitectl and the app's own directories. Every directory on the way to a file " +
			"must be root's alone (writable by no one else): one another user may change is a mistake, since " +
			"that user could put a symlink to any file of root's there (a site that started with such a credential before sitectl checked it keeps running from its last good copy until the file is fixed). A name uses letters, digits, _, . and -. " +
			"Upstream systemd 252.0 to 253.x without the fix for systemd issue 27275 make credentials readable " +
			"only by a sandboxed service's first command, which is sitectl's ExecStartPre=, and deny the app " +
			"them; Debian 12's systemd 252 has the fix, as do 254 and later."},
	{"", keyEgress, "table", "none: any address",
		"Where the app may connect to: see [egress] below."},
	{"", keyDeployers, "array of strings", "none: root alone",
		"Who may change this site without root, e.g. deployers = [\"group:shop-team\", \"user:dana\"]: " +
			"sitectl mode, restart, reload, rollback, status, list and history run by a member of a listed group " +
			"or a listed user (user:NAME or group:NAME, a name or a numeric id) go through sitectl's state " +
			"service, which checks this list and runs the change as root. The caller must also be in the group " +
			"sitectl-deploy, which may open the service's socket. Group membership is the caller's groups as " +
			"the kernel reports them for the connection. See docs/deployers.md."},

	{"listen", keyListenAddress, "IP:port", "none",
		"A TCP listener: \"127.0.0.1:8080\", \"[::1]:8080\"; \"[::]:8080\" listens on IPv4 and IPv6."},
	{"listen", keyListenPath, "path", "none",
		"A unix socket, at most 107 bytes long. Every directory on the way to it must be root's alone " +
			"(writable by no one else), since systemd binds it as root: /run/NAME/, say, which systemd creates. " +
			"The socket file stays after the socket unit stops, and is bound over at the next start."},
	{"listen", keyListenName, "name", "http",
		"The listener's FileDescriptorName=, which the app uses to tell its sockets apart: lowercase letters, " +
			"digits, _ and -, starting with a letter, at most 32 characters."},
	{"listen", keyListenOwner, "user name", "root",
		"Owner of a unix socket (SocketUser=)."},
	{"listen", keyListenGroup, "group name", "root",
		"Group of a unix socket (SocketGroup=), e.g. the front-end proxy's group www-data."},
	{"listen", keyListenMode, "octal string", "\"0660\"",
		"Permissions of a unix socket (SocketMode=). Unix listeners of one name share owner, group and mode."},

	{"modes.NAME", keyModeEnvironment, "table of strings", "none",
		"Variables for the app in this mode, on top of the top-level environment."},
	{"modes.NAME", keyModeServe, "app or maintenance", "app",
		"app runs the site's app. maintenance runs sitectl's maintenance server on the site's sockets instead: " +
			"every request gets the page with status 503 and Retry-After, and /.sitectl/health answers 200."},
	{"modes.NAME", keyModePage, "path", "a built-in page",
		"The HTML page a maintenance mode serves. Only with serve = \"maintenance\"."},
	{"modes.NAME", keyModeStaticDir, "path", "none",
		"A directory whose files a maintenance mode serves as they are, for the page's stylesheet and images; " +
			"never a listing, never anything outside it. Only with serve = \"maintenance\"."},
	{"modes.NAME", keyModeRetryAfter, "duration", "2m",
		"The Retry-After of a maintenance mode's answers, in whole seconds (a part of a second counts as one). Only with serve = \"maintenance\"."},

	{"probe", "path", "URL path", "\"/\"",
		"What to ask, starting with /, without spaces."},
	{"probe", "status", "integer 100 to 599", "200",
		"The status that counts as serving."},
	{"probe", "timeout", "duration", "5s",
		"How long sitectl asks before it calls the change failed."},

	{"egress", "allow", "array of strings", "[] (nothing)",
		"The addresses the app may connect to: IP addresses (\"192.0.2.10\", \"2001:db8::5\"), prefixes " +
			"(\"10.0.0.0/8\") and systemd's names localhost, link-local and multicast. A name server " +
			"the app resolves names with must be listed too."},

	{"hardening", "allow_write_execute", "boolean", "false",
		"true turns MemoryDenyWriteExecute= off, for apps with a JIT."},
	{"hardening", "writable_paths", "array of paths", "none",
		"The only places the app may write besides its private /tmp (ReadWritePaths=); the rest of the file " +
			"system is read-only to it."},
}
