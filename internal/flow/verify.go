package flow

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/sitectl/sitectl/internal/maintenance"
	"github.com/sitectl/sitectl/internal/site"
)

// verify sends an HTTP GET through the site's first listener and expects the
// site's probe status, retrying until the probe timeout: servers such as
// gunicorn announce readiness before their workers have loaded the app. In a
// maintenance mode it asks the maintenance server's health path instead.
func verify(ctx context.Context, s *site.Site, m site.Mode) error {
	path, want, timeout := "/", http.StatusOK, site.DefaultProbeTimeout
	if s.Probe != nil {
		path, want, timeout = s.Probe.Path, s.Probe.Status, s.Probe.Timeout
	}
	if m.Serve == site.ServeMaintenance {
		path, want = maintenance.HealthPath, http.StatusOK
	}
	if len(s.Listeners) == 0 {
		return fmt.Errorf("site %s has no listener to verify through", s.Name)
	}
	l := s.Listeners[0]
	tr := &http.Transport{DisableKeepAlives: true}
	host := l.Address
	if l.Kind == site.Unix {
		host = "localhost"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", l.Path)
		}
	} else if ap := netip.MustParseAddrPort(l.Address); ap.Addr().IsUnspecified() {
		// A wildcard listener is reached on loopback of its family.
		lo := netip.MustParseAddr("127.0.0.1")
		if ap.Addr().Is6() {
			lo = netip.IPv6Loopback()
		}
		host = netip.AddrPortFrom(lo, ap.Port()).String()
	}
	url := "http://" + host + path
	client := &http.Client{Transport: tr, Timeout: timeout}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "sitectl-verify")
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Sprintf("status %d, want %d", resp.StatusCode, want)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("verification GET %s failed for %s: %s", url, timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
