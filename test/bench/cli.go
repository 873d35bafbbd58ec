package main

import (
	"context"
	"fmt"
	"time"
)

// cliSite is the site the CLI overhead is measured on: the Go app with a
// probe, as in scenario 3.
const cliSite = "cli"

// CLIOverhead compares `sitectl restart SITE` with `systemctl restart
// site-SITE.service` on the same unit, run alternately inside the sandbox.
type CLIOverhead struct {
	Site      string        `json:"site"`
	Runs      int           `json:"runs"`
	Sitectl   DurationStats `json:"sitectl_restart"`
	Systemctl DurationStats `json:"systemctl_restart"`
	// Ratio is median(sitectl) / median(systemctl).
	Ratio float64 `json:"ratio"`
}

func runCLIOverhead(ctx context.Context, h *host, runs int, log func(string, ...any)) (*CLIOverhead, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := h.writeFiles(ctx, map[string]string{"/etc/sitectl/sites/" + cliSite + ".toml": apps[0].SiteFile(port, modeExtra)}); err != nil {
		return nil, err
	}
	for _, argv := range [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "start", "site-" + cliSite + ".socket"}} {
		if out, err := h.run(ctx, argv...); err != nil {
			return nil, fmt.Errorf("%w: %s", err, out)
		}
	}
	if err := waitServing(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port), time.Minute); err != nil {
		return nil, err
	}
	log("CLI overhead: %d × sitectl restart %s and systemctl restart site-%s.service, alternating", runs, cliSite, cliSite)
	// One untimed round first: the first sitectl run creates the site's state.
	spec := func(n int) TimeSpec {
		return TimeSpec{Runs: n, Commands: []TimedCmd{
			{Argv: []string{"sitectl", "restart", cliSite}},
			{Argv: []string{"systemctl", "restart", "site-" + cliSite + ".service"}},
		}}
	}
	if _, err := h.timeit(ctx, spec(1)); err != nil {
		return nil, err
	}
	tr, err := h.timeit(ctx, spec(runs))
	if err != nil {
		return nil, err
	}
	c := &CLIOverhead{Site: cliSite, Runs: runs,
		Sitectl: tr.Stats(0, true), Systemctl: tr.Stats(1, true)}
	c.Ratio = Ratio(c.Sitectl.Median, c.Systemctl.Median)
	log("  sitectl restart median %.1f ms, systemctl restart median %.1f ms: ratio %.2f", c.Sitectl.Median.MS(), c.Systemctl.Median.MS(), c.Ratio)
	return c, nil
}
