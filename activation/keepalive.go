package activation

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// The notification fields of [SwitchKeepAlives]. systemd ignores
// assignments it does not know; sd_notify(3) reserves the X_ prefix for
// them.
const (
	// KeepAliveSignalField carries the number of the signal that switches
	// keep-alive; it is sent once, when the switch is installed.
	KeepAliveSignalField = "X_SITECTL_KEEPALIVE_SIGNAL"
	// KeepAliveField is "1" while keep-alive is on, "0" while it is off;
	// it is sent when the switch is installed and after every switch.
	KeepAliveField = "X_SITECTL_KEEPALIVE"
)

// SwitchKeepAlives lets the process that started this one turn srv's HTTP
// keep-alive off, and on again, without stopping srv: each arrival of sig
// flips it, starting from on. While it is off, idle connections are closed
// at once and busy ones after their response, so a client's pooled
// connection no longer reaches this process; new connections are still
// accepted and served, one request each. (HTTP/2 connections are not
// closed: net/http cannot close them without shutting down.)
//
// sitectl's launcher uses it to keep a previous generation of a site warm
// for an instant rollback (docs/warm-rollback.md): that generation gets no
// new connections, and must not keep serving old keep-alive ones either.
// The launcher sends sig only to a process that announced it: so that it
// knows, SwitchKeepAlives sends KeepAliveSignalField=<signal number> and
// KeepAliveField=1 through [Notify], and KeepAliveField=0 or 1 after every
// switch, which is how the launcher learns that a switch took effect (it
// sends the next signal only then, so that two are never pending at once).
// Without NOTIFY_SOCKET nothing is sent, and the switch still works.
//
// Call it before [Serve], with a signal the program does not otherwise use
// (SIGUSR2, say); SIGTERM, SIGINT, SIGKILL and SIGSTOP are refused. Once Serve drains srv, keep-alive stays off: a switch
// then reports KeepAliveField=0. The returned stop ends the switch; keep-alive stays as
// it is. The error is that of the first notification; the switch is not
// installed then.
func SwitchKeepAlives(srv *http.Server, sig syscall.Signal) (stop func(), err error) {
	if srv == nil {
		return nil, fmt.Errorf("activation: SwitchKeepAlives needs an *http.Server")
	}
	switch sig {
	case syscall.SIGKILL, syscall.SIGSTOP:
		return nil, fmt.Errorf("activation: SwitchKeepAlives cannot use %v: it cannot be caught, and the launcher would send it to this process to switch keep-alive; use one the program does not otherwise use, such as SIGUSR2", sig)
	case syscall.SIGTERM, syscall.SIGINT:
		return nil, fmt.Errorf("activation: SwitchKeepAlives cannot use %v: it stops the program (Serve drains on it); use one the program does not otherwise use, such as SIGUSR2", sig)
	}
	if sig <= 0 || sig >= 65 {
		return nil, fmt.Errorf("activation: SwitchKeepAlives cannot use signal %d: not a signal number", int(sig))
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	if _, err := Notify(fmt.Sprintf("%s=%d\n%s=1", KeepAliveSignalField, int(sig), KeepAliveField)); err != nil {
		signal.Stop(ch)
		return nil, err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		on := true
		for {
			select {
			case <-ch:
				on = !on
				state := "0"
				if setKeepAlives(srv, on) {
					state = "1"
				}
				Notify(KeepAliveField + "=" + state) // nothing to do if it fails
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			wg.Wait()
		})
	}, nil
}
