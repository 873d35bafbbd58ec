package flow

import (
	"context"
	"fmt"

	"github.com/sitectl/sitectl/internal/probe"
	"github.com/sitectl/sitectl/internal/site"
)

// verify checks site s in mode m through its first listener with the
// mode's probe (see probe.For), retrying until the probe timeout: servers
// such as gunicorn announce readiness before their workers have loaded the
// app. A mode without a probe passes.
func verify(ctx context.Context, s *site.Site, m site.Mode) error {
	p := probe.For(s, m)
	if p == nil {
		return nil
	}
	if len(s.Listeners) == 0 {
		return fmt.Errorf("site %s has no listener to verify through", s.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	if err := probe.Get(ctx, probe.ListenerTarget(s.Listeners[0]), p); err != nil {
		return fmt.Errorf("verification failed for %s: %w", p.Timeout, err)
	}
	return nil
}
