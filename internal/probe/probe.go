// Package probe is how sitectl checks that a site serves: one HTTP GET,
// retried until it answers with the expected status. A switch verifies a
// site through its own listener with it, and the launcher checks a new
// generation through a private socket only that generation serves. Which
// request a site's mode is checked with is decided here too (For).
package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/sitectl/sitectl/internal/maintenance"
	"github.com/sitectl/sitectl/internal/site"
)

// retry is the pause between two attempts.
const retry = 100 * time.Millisecond

// For is the check of site s in mode m: in a maintenance mode, a GET of
// the maintenance server's health path that answers 200 (the page itself
// answers 503), within the site's probe timeout; otherwise the site's own
// [probe]. Nil when the site has no probe and m serves the app: nothing
// but the app's readiness tells that it serves.
func For(s *site.Site, m site.Mode) *site.Probe {
	if m.Serve == site.ServeMaintenance {
		timeout := site.DefaultProbeTimeout
		if s.Probe != nil {
			timeout = s.Probe.Timeout
		}
		return &site.Probe{Path: maintenance.HealthPath, Status: http.StatusOK, Timeout: timeout}
	}
	return s.Probe
}

// Target is where a probe is sent: the Host of the request, and how to
// reach it (nil dials host over TCP).
type Target struct {
	Host string
	Dial func(ctx context.Context) (net.Conn, error)
}

// Get sends GET p.Path to t until the answer has status p.Status, and
// returns the last failure when ctx ends first. Each attempt is bounded by
// p.Timeout; the caller bounds the whole with ctx. Connections are never
// reused, so every attempt reaches the listener afresh.
//
// Every connection goes to t, whatever a redirect names: a redirect within
// the site (same host, plain HTTP) is followed, up to 10, and any other is
// the answer, compared with p.Status like any status. Following one off the
// site would let the app send root's sitectl anywhere, past the egress
// rules of its own unit, and would count another server's answer as the
// site's.
func Get(ctx context.Context, t Target, p *site.Probe) error {
	dial := t.Dial
	if dial == nil {
		dial = func(ctx context.Context) (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, "tcp", t.Host) }
	}
	// An answer's headers are bounded as its body is (maxHeaders), not by
	// net/http's 10 MiB.
	tr := &http.Transport{DisableKeepAlives: true, MaxResponseHeaderBytes: maxHeaders, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: p.Timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "http" || req.URL.Host != t.Host || len(via) >= 10 {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	url := "http://" + t.Host + p.Path
	start, last := time.Now(), ""
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "sitectl-probe")
		msg, err := attempt(client, req, p.Status)
		if err == nil {
			return nil
		}
		// An attempt cut short by ctx says less than the one before. Cut
		// short before any answer, it says that nothing answered (a
		// server that accepted and said nothing, as gunicorn while its
		// workers load the app), not that the context ended.
		switch {
		case ctx.Err() == nil:
			last = msg
		case last == "":
			last = "no answer in " + time.Since(start).Round(10*time.Millisecond).String()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("GET %s: %s", url, last)
		case <-time.After(retry):
		}
	}
}

// maxFailure bounds what an attempt says of a failure. net/http quotes in
// its error what the app answered in place of a status line or a header
// (`malformed HTTP response "..."`), up to its limit on an answer's
// headers: the app could make root's sitectl print, log and hand a
// deployer megabytes of it, more than the state service's answer may
// hold, and have its launcher's status, which holds why a reload failed,
// refused as too large.
const maxFailure = 512

// maxHeaders bounds the headers of an answer to the probe: a health
// check's answer needs few.
const maxHeaders = 64 << 10

// attempt sends one request; the string says what was wrong.
func attempt(client *http.Client, req *http.Request, want int) (string, error) {
	resp, err := client.Do(req)
	if err != nil {
		msg := cut(err.Error(), maxFailure)
		return msg, errors.New(msg)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != want {
		msg := fmt.Sprintf("status %d, want %d", resp.StatusCode, want)
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
			msg += fmt.Sprintf(" (a redirect to %.200q, which the probe follows only within the site)", loc)
		}
		return msg, fmt.Errorf("%s", msg)
	}
	return "", nil
}

// cut is s, or its first bytes up to max, whole characters, and "…".
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// ListenerTarget reaches a site through one of its own listeners; a
// wildcard TCP address is reached on the loopback address of its family,
// and a unix socket only where it is, never through a symlink
// (dialUnixSocket).
func ListenerTarget(l site.Listener) Target {
	if l.Kind == site.Unix {
		return Target{Host: "localhost", Dial: func(ctx context.Context) (net.Conn, error) {
			return dialUnixSocket(ctx, l.Path)
		}}
	}
	ap := netip.MustParseAddrPort(l.Address)
	if ap.Addr().IsUnspecified() {
		lo := netip.MustParseAddr("127.0.0.1")
		if ap.Addr().Is6() {
			lo = netip.IPv6Loopback()
		}
		ap = netip.AddrPortFrom(lo, ap.Port())
	}
	return Target{Host: ap.String()}
}
