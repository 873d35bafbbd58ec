package sdnotify_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sitectl/sitectl/activation"
	"github.com/sitectl/sitectl/internal/sdnotify"
)

// What package activation sends arrives whole, from the pid that sent it.
func TestActivationToSocket(t *testing.T) {
	s, err := sdnotify.Listen(filepath.Join(t.TempDir(), "notify.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msgs := make(chan sdnotify.Message, 4)
	go s.Read(msgs)
	t.Setenv("NOTIFY_SOCKET", s.Path)
	if sent, err := activation.Reloading(); !sent || err != nil {
		t.Fatalf("Reloading: %v %v", sent, err)
	}
	if sent, err := activation.Status("starting\nsecond line"); !sent || err != nil {
		t.Fatalf("Status: %v %v", sent, err)
	}
	for _, check := range []func(sdnotify.Message) bool{
		func(m sdnotify.Message) bool {
			usec, err := strconv.ParseInt(m.Fields["MONOTONIC_USEC"], 10, 64)
			now, _ := sdnotify.MonotonicUsec()
			return m.Fields["RELOADING"] == "1" && err == nil && usec > 0 && usec <= now
		},
		func(m sdnotify.Message) bool { return m.Fields["STATUS"] == "starting second line" },
	} {
		select {
		case m := <-msgs:
			if m.PID != os.Getpid() || !check(m) {
				t.Errorf("received %+v from pid %d (this is %d)", m.Fields, m.PID, os.Getpid())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("nothing received")
		}
	}
}

func TestReloadingMessage(t *testing.T) {
	m, err := sdnotify.Reloading()
	if err != nil || !strings.HasPrefix(m, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("%q %v", m, err)
	}
}
