package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// New boots a sandbox for a test. Options.Name defaults to the test's name
// and Options.Log to t.Log. A boot failure is fatal (t.Fatalf with the full
// reason), never a skip: a test that needs a sandbox and cannot get one has
// not passed. The sandbox is closed by t.Cleanup; if the test failed, the
// last 100 journal lines are logged first.
func New(t testing.TB, opts Options) *Sandbox {
	t.Helper()
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	if opts.Log == nil {
		opts.Log = tLogWriter{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Boot(ctx, opts)
	if err != nil {
		t.Fatalf("booting systemd sandbox: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			jctx, jcancel := context.WithTimeout(context.Background(), 15*time.Second)
			t.Logf("journal of sandbox %s (last 100 lines):\n%s", s.Name(), s.Journal(jctx, "-n", "100"))
			jcancel()
		}
		if err := s.Close(); err != nil {
			t.Errorf("closing sandbox: %v", err)
		}
	})
	return s
}

type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var signalsOnce sync.Once

// HandleSignals makes SIGINT and SIGTERM close every open sandbox before the
// process exits with status 130. A second signal during that exits at once
// (Pdeathsig still takes the sandboxes down; ReapStale removes the rest
// later). Call it from TestMain or a main function; calling it again has no
// effect.
func HandleSignals() {
	signalsOnce.Do(func() {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			sig := <-ch
			fmt.Fprintf(os.Stderr, "sandbox: %v received, shutting down sandboxes (again to exit at once)\n", sig)
			go func() {
				<-ch
				os.Exit(130)
			}()
			if err := CloseAll(); err != nil {
				fmt.Fprintf(os.Stderr, "sandbox: %v\n", err)
			}
			os.Exit(130)
		}()
	})
}
