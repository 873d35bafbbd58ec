//go:build integration

package warm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A pyServer is Debian's gunicorn or uWSGI serving the WSGI test app
// (test/apps/wsgi) on a TCP port of the host, started by the test.
type pyServer struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// gunicorn starts gunicorn 20.1 with the given extra arguments.
func gunicorn(t *testing.T, args ...string) *pyServer {
	port := freePort(t)
	app, _ := filepath.Abs("../apps/wsgi")
	argv := append([]string{"--bind", fmt.Sprintf("127.0.0.1:%d", port), "--chdir", app, "--workers", "2"}, args...)
	return startPy(t, port, "/usr/bin/gunicorn", append(argv, "app:application")...)
}

// uwsgi starts uWSGI 2.0.21 (master, 2 workers); socketOpt is
// --http-socket or --http11-socket.
func uwsgi(t *testing.T, socketOpt string, args ...string) *pyServer {
	port := freePort(t)
	app, _ := filepath.Abs("../apps/wsgi/app.py")
	argv := append([]string{"--master", "--plugin", "python3", socketOpt, fmt.Sprintf("127.0.0.1:%d", port), "--wsgi-file", app, "--processes", "2", "--die-on-term"}, args...)
	return startPy(t, port, "/usr/bin/uwsgi", argv...)
}

func startPy(t *testing.T, port int, path string, args ...string) *pyServer {
	t.Helper()
	s := &pyServer{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), out: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(path, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(s.url + "/")
		if err == nil {
			resp.Body.Close()
			if len(s.workers()) > 0 {
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("%s exited: %s", path, s.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer: %v\n%s", path, err, s.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends the server's process group.
func (s *pyServer) stop() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT)
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

func (s *pyServer) master() int { return s.cmd.Process.Pid }

// workers are the master's children.
func (s *pyServer) workers() []int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", s.master(), s.master()))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

type wsgiReply struct {
	PID  int `json:"pid"`
	PPID int `json:"ppid"`
}

func parseReply(body string) (wsgiReply, error) {
	var r wsgiReply
	err := json.Unmarshal([]byte(body), &r)
	return r, err
}
