package cli

import (
	"fmt"
	"io"
	"testing"

	"github.com/sitectl/sitectl/internal/status"
)

// BenchmarkWriteSitesJSON is list --json's printing of 10,000 sites as
// test/scaleshapes makes them: go test -bench WriteSitesJSON ./internal/cli
func BenchmarkWriteSitesJSON(b *testing.B) {
	ss := make([]status.Site, 10000)
	for i := range ss {
		name := fmt.Sprintf("s-%05d", i)
		ss[i] = status.Site{Site: name, File: "/etc/sitectl/sites/" + name + ".toml", SiteFile: status.FileState{State: "ok", Errors: []status.FileError{}},
			State: "idle", Running: true, Mode: "normal", Unit: "site-" + name + ".service", LoadState: "loaded", ActiveState: "inactive", SubState: "dead", Result: "success",
			Socket: "listening", Listen: []string{fmt.Sprintf("127.0.0.1:%d", 10000+i)}, Sockets: []status.Socket{{Unit: "site-" + name + ".socket", State: "listening", ActiveState: "active", SubState: "listening"}}}
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := writeSitesJSON(io.Discard, ss); err != nil {
			b.Fatal(err)
		}
	}
}
