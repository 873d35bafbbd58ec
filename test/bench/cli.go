package main

import (
	"context"
	"fmt"
	"time"
)

// cliSite is the site the CLI overhead is measured on: the Go app with a
// probe, as in scenario 3, and settle_time = "1ms", so that what is
// measured is sitectl's own cost. cliSettledSite is the same site with the
// default settle_time: what watching a new process settle adds (issue 11).
const (
	cliSite        = "cli"
	cliSettledSite = "cli-settled"
)

// CLIOverhead compares `sitectl restart SITE` with `systemctl restart
// site-SITE.service` on the same unit, run alternately inside the sandbox.
type CLIOverhead struct {
	Site      string        `json:"site"`
	Runs      int           `json:"runs"`
	Sitectl   DurationStats `json:"sitectl_restart"`
	Systemctl DurationStats `json:"systemctl_restart"`
	// Settled is sitectl restart of cliSettledSite, with the default
	// settle_time.
	Settled     DurationStats `json:"sitectl_restart_settled"`
	SettledSite string        `json:"settled_site"`
	// Ratio is median(sitectl) / median(systemctl).
	Ratio float64 `json:"ratio"`
}

func runCLIOverhead(ctx context.Context, h *host, runs int, log func(string, ...any)) (*CLIOverhead, error) {
	files := map[string]string{}
	var ports []int
	for _, site := range []struct{ name, extra string }{{cliSite, "settle_time = \"1ms\"\n" + modeExtra}, {cliSettledSite, modeExtra}} {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		files["/etc/sitectl/sites/"+site.name+".toml"] = apps[0].SiteFile(port, site.extra)
		ports = append(ports, port)
	}
	if err := h.writeFiles(ctx, files); err != nil {
		return nil, err
	}
	for _, argv := range [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "start", "site-" + cliSite + ".socket", "site-" + cliSettledSite + ".socket"}} {
		if out, err := h.run(ctx, argv...); err != nil {
			return nil, fmt.Errorf("%w: %s", err, out)
		}
	}
	for _, port := range ports {
		if err := waitServing(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port), time.Minute); err != nil {
			return nil, err
		}
	}
	log("CLI overhead: %d × sitectl restart %s, systemctl restart site-%s.service and sitectl restart %s, alternating", runs, cliSite, cliSite, cliSettledSite)
	// One untimed round first: the first sitectl run creates the site's state.
	spec := func(n int) TimeSpec {
		return TimeSpec{Runs: n, Commands: []TimedCmd{
			{Argv: []string{"sitectl", "restart", cliSite}},
			{Argv: []string{"systemctl", "restart", "site-" + cliSite + ".service"}},
			{Argv: []string{"sitectl", "restart", cliSettledSite}},
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
		Sitectl: tr.Stats(0, true), Systemctl: tr.Stats(1, true), Settled: tr.Stats(2, true), SettledSite: cliSettledSite}
	c.Ratio = Ratio(c.Sitectl.Median, c.Systemctl.Median)
	log("  sitectl restart median %.1f ms, systemctl restart median %.1f ms: ratio %.2f; with the default settle_time %.1f ms",
		c.Sitectl.Median.MS(), c.Systemctl.Median.MS(), c.Ratio, c.Settled.Median.MS())
	return c, nil
}
