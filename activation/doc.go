// Package activation lets a sitectl web application take its listening
// sockets from systemd and report its lifecycle back to systemd, so that
// the socket unit, not the application, owns the site's ports. Restarting or
// upgrading the service then never closes the port: connections that arrive
// while the application is down wait in the kernel's accept queue.
//
// Socket activation: systemd opens every socket listed in a .socket unit and
// starts the matching .service with those sockets as inherited file
// descriptors, numbered consecutively from 3 (SD_LISTEN_FDS_START). It
// describes them with three environment variables: LISTEN_FDS is how many
// descriptors were passed, LISTEN_PID is the process ID they are meant for
// (a child that inherited the variables must ignore them), and
// LISTEN_FDNAMES is a colon-separated list with one name per descriptor,
// taken from FileDescriptorName= in the socket unit. [Files] is the low-level
// reader of this protocol; [Listeners], [Listener], [Require] and
// [ListenersOrBind] turn the descriptors into net.Listener values grouped by
// name.
//
// Service notification: when a service runs with Type=notify, systemd sets
// NOTIFY_SOCKET to the path of a datagram unix socket (a leading "@" means a
// socket in the abstract namespace) and waits for the service to send
// newline-separated KEY=VALUE assignments on it, such as READY=1 once it is
// serving, STOPPING=1 when it begins to shut down, RELOADING=1 together with
// MONOTONIC_USEC= when it reloads, STATUS= for a human-readable status line
// and WATCHDOG=1 as a keep-alive when WatchdogSec= is configured (announced
// through WATCHDOG_USEC and WATCHDOG_PID). [Notify] and its helpers send
// these messages; [Serve] runs an http.Server on the activated listeners and
// sends READY=1 and STOPPING=1 at the right moments while draining in-flight
// requests on shutdown.
// [SwitchKeepAlives] lets the process that started this one turn HTTP
// keep-alive off and on again with a signal, for a generation kept warm
// while another one serves.
//
// Nothing in this package binds a port on its own: a process that was not
// socket-activated gets an error from [Listeners] that says so, unless the
// program explicitly opts in to binding addresses itself with
// [ListenersOrBind], which is meant for local development.
package activation
