package stateservice

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sitectl/sitectl/internal/site"
	"github.com/sitectl/sitectl/internal/status"
)

// patience bounds every wait of these tests; nothing here waits for a
// time to pass, only for events.
const patience = 60 * time.Second

// fakeBackend records what the service asked of it.
type fakeBackend struct {
	mu      sync.Mutex
	sites   map[string]*site.Site
	changes []string
	// block, when set, holds a change until it is closed; hungUp gets
	// the change's context once it ended.
	block    chan struct{}
	started  chan struct{}
	finished chan string
	progress int // progress lines each change sends
	// interruptible: a change blocked (block) ends early when it is
	// interrupted, and fails with the interruption's cause.
	interruptible bool
	// hungUp and interrupted say, for each change that finished, whether
	// its caller had hung up and whether it had interrupted it.
	hungUp, interrupted []bool
	// ctx is the context of the change that started last.
	ctx context.Context
}

func newFakeBackend() *fakeBackend {
	mk := func(name string, d ...site.Deployer) *site.Site { return &site.Site{Name: name, Deployers: d} }
	return &fakeBackend{sites: map[string]*site.Site{
		"shop":  mk("shop", site.Deployer{Kind: site.DeployerGroup, Name: "shop-team"}),
		"blog":  mk("blog", site.Deployer{Kind: site.DeployerUser, Name: "1001"}),
		"admin": mk("admin"),
	}, finished: make(chan string, 16), started: make(chan struct{}, 16)}
}

func (b *fakeBackend) LoadSite(name string) (*site.Site, error) {
	if name == "broken" {
		return nil, errors.New("broken.toml:3:1: API_TOKEN=\"s3cret\" is not a key")
	}
	s, ok := b.sites[name]
	if !ok {
		return nil, fmt.Errorf("site %s does not exist: %w", name, fs.ErrNotExist)
	}
	return s, nil
}

func (b *fakeBackend) Sites() ([]*site.Site, error) {
	return []*site.Site{b.sites["admin"], b.sites["blog"], b.sites["shop"]}, nil
}

func (b *fakeBackend) Change(ctx, interrupt context.Context, req Request, s *site.Site, c Caller, progress func(string), still func() (*site.Site, error)) (any, error) {
	// As root's sitectl: a mode the site lacks is refused before the
	// site's lock; once it is held, the grant is asked again.
	if req.Mode == "nosuch" {
		return nil, fmt.Errorf("site %s has no mode nosuch: %w", s.Name, fs.ErrNotExist)
	}
	if _, err := still(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	b.started <- struct{}{}
	for i := 0; i < b.progress; i++ {
		progress(fmt.Sprintf("line %d %s", i, strings.Repeat("x", 100)))
	}
	var err error
	if b.block != nil {
		if b.interruptible {
			select {
			case <-b.block:
			case <-interrupt.Done():
				progress("rolling back")
				err = fmt.Errorf("rolled back: %w", context.Cause(interrupt))
			}
		} else {
			<-b.block
		}
	}
	what := fmt.Sprintf("%s %s %s by %d", req.Verb, s.Name, req.Mode, c.UID)
	b.mu.Lock()
	b.changes = append(b.changes, what)
	b.hungUp = append(b.hungUp, ctx.Err() != nil)
	b.interrupted = append(b.interrupted, interrupt.Err() != nil)
	b.mu.Unlock()
	b.finished <- what
	return map[string]string{"site": s.Name, "to": req.Mode}, err
}

// seen are hungUp and interrupted, once n changes finished.
func (b *fakeBackend) seen(n int) (hungUp, interrupted []bool) {
	for range n {
		<-b.finished
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]bool{}, b.hungUp...), append([]bool{}, b.interrupted...)
}

func (b *fakeBackend) Status(ctx context.Context, verb string, names, missing []string) (any, error) {
	if len(missing) > 0 {
		return map[string][]string{"sites": names, "missing": missing}, nil
	}
	return names, nil
}

func (b *fakeBackend) History(s *site.Site, last int) (any, error) {
	return []string{"history of " + s.Name}, nil
}

func (b *fakeBackend) Logs(ctx context.Context, s *site.Site, req Request) (any, error) {
	return &Logs{Text: fmt.Sprintf("journal of %s, last %d, since %d, output %q\n", s.Name, req.Last, req.Since, req.Output)}, nil
}

func (b *fakeBackend) Describe(err error) Final {
	code := 1
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrSiteUnusable):
		code = 2
	case errors.Is(err, fs.ErrNotExist):
		code = 3
	case errors.Is(err, ErrNotGranted):
		code = 6
	case errors.Is(err, ErrBusy):
		code = 7
	}
	return Final{Code: code, Error: err.Error()}
}

// Callers of the tests, one socket each: the server tells them apart by
// the socket a connection came in on.
var (
	root   = Caller{UID: 0, GID: 0}
	dana   = Caller{UID: 1001, GID: 1001}                      // named in blog's deployers
	sam    = Caller{UID: 1002, GID: 1002, Groups: []int{3000}} // in shop-team
	eve    = Caller{UID: 1003, GID: 1003, Groups: []int{3001}} // in another team
	lookup = func(d site.Deployer) (int, bool) {
		switch d.Name {
		case "shop-team":
			return 3000, true
		case "1001":
			return 1001, true
		}
		return 0, false
	}
)

type testService struct {
	t       *testing.T
	dir     string
	srv     *Server
	backend *fakeBackend
	cancel  context.CancelFunc
	done    chan error
}

func startService(t *testing.T, tune func(*Server)) *testService {
	dir := t.TempDir()
	ts := &testService{t: t, dir: dir, backend: newFakeBackend(), done: make(chan error, 1)}
	callers := map[string]Caller{}
	for name, c := range map[string]Caller{"root": root, "dana": dana, "sam": sam, "eve": eve} {
		callers[filepath.Join(dir, name)] = c
	}
	ts.srv = &Server{Backend: ts.backend, Lookup: lookup, RequestTimeout: patience, WriteTimeout: patience,
		Creds: func(c net.Conn) (Caller, error) { return callers[c.LocalAddr().String()], nil }}
	if tune != nil {
		tune(ts.srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	var wg sync.WaitGroup
	for path := range callers {
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ts.srv.Serve(ctx, ln); err != nil {
				t.Errorf("Serve: %v", err)
			}
		}()
	}
	go func() { wg.Wait(); ts.done <- nil }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		case <-time.After(patience):
			t.Errorf("the service did not stop")
		}
	})
	return ts
}

func (ts *testService) call(who string, req Request) (*Final, []string, error) {
	var lines []string
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	f, err := Call(ctx, filepath.Join(ts.dir, who), req, func(l string) { lines = append(lines, l) }, nil)
	return f, lines, err
}

// waitAdmitted waits until the service holds n connections: the order in
// which connections are admitted is the scheduler's.
func (ts *testService) waitAdmitted(n int) {
	ts.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		ts.srv.mu.Lock()
		total := ts.srv.total
		ts.srv.mu.Unlock()
		if total == n {
			return
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("the service holds %d connections, want %d", total, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (ts *testService) dial(who string) net.Conn {
	c, err := net.Dial("unix", filepath.Join(ts.dir, who))
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { c.Close() })
	return c
}

// Grants decide in one place: root may do everything, a user named in a
// site's deployers and a member of a group named there may deploy it, and
// nobody else; status and list show the caller only what it may deploy.
func TestGrants(t *testing.T) {
	ts := startService(t, nil)
	for _, c := range []struct {
		who  string
		req  Request
		code int
	}{
		{"root", Request{Verb: VerbMode, Site: "admin", Mode: "maintenance"}, 0},
		{"dana", Request{Verb: VerbMode, Site: "blog", Mode: "maintenance"}, 0},
		{"sam", Request{Verb: VerbRestart, Site: "shop"}, 0},
		{"eve", Request{Verb: VerbRestart, Site: "shop"}, 6},
		{"dana", Request{Verb: VerbRestart, Site: "shop"}, 6},
		{"sam", Request{Verb: VerbRollback, Site: "blog"}, 6},
		{"sam", Request{Verb: VerbReload, Site: "admin"}, 6},
		{"eve", Request{Verb: VerbHistory, Site: "blog"}, 6},
		{"eve", Request{Verb: VerbStatus, Sites: []string{"shop"}}, 6},
		{"sam", Request{Verb: VerbHistory, Site: "shop"}, 0},
		{"eve", Request{Verb: VerbLogs, Site: "blog"}, 6},
		{"sam", Request{Verb: VerbLogs, Site: "blog", Last: 10}, 6},
		{"sam", Request{Verb: VerbLogs, Site: "admin"}, 6},
		{"sam", Request{Verb: VerbLogs, Site: "shop", Last: 10, Since: 1700000000, Output: "cat"}, 0},
		{"sam", Request{Verb: VerbLogs, Site: "nosuch"}, 3},
		{"sam", Request{Verb: VerbLogs, Site: "broken"}, 2},
		{"sam", Request{Verb: VerbRestart, Site: "nosuch"}, 3},
		// Only root learns what is wrong with a site file.
		{"sam", Request{Verb: VerbRestart, Site: "broken"}, 2},
		{"root", Request{Verb: VerbRestart, Site: "broken"}, 1},
	} {
		f, _, err := ts.call(c.who, c.req)
		if err != nil {
			t.Fatalf("%s %+v: %v", c.who, c.req, err)
		}
		if f.Code != c.code {
			t.Errorf("%s %+v: exit %d (%s), want %d", c.who, c.req, f.Code, f.Error, c.code)
		}
		if c.who == "sam" && strings.Contains(f.Error, "s3cret") {
			t.Errorf("sam learnt what is in a site file: %s", f.Error)
		}
	}
	// logs passes its options on to the backend, for a granted site.
	if f, _, err := ts.call("sam", Request{Verb: VerbLogs, Site: "shop", Last: 10, Since: 1700000000, Output: "cat"}); err != nil ||
		!strings.Contains(string(f.Result), `journal of shop, last 10, since 1700000000, output \"cat\"`) {
		t.Errorf("sam logs shop: %+v %v", f, err)
	}
	if got, want := strings.Join(ts.backend.changes, "; "), "mode admin maintenance by 0; mode blog maintenance by 1001; restart shop  by 1002"; got != want {
		t.Errorf("changes: %s, want %s", got, want)
	}
	for who, want := range map[string]string{"root": `["admin","blog","shop"]`, "sam": `["shop"]`, "dana": `["blog"]`, "eve": `[]`} {
		for _, verb := range []string{VerbStatus, VerbList} {
			f, _, err := ts.call(who, Request{Verb: verb})
			if err != nil || f.Code != 0 || string(f.Result) != want {
				t.Errorf("%s %s: %+v %v, want %s", who, verb, f, err, want)
			}
		}
	}
}

// The requests of the protocol that let a deployer record a result and a
// reason (begin, set-mode, finish, prepare) are refused whole, as is
// anything that is not one request of this protocol.
func TestOldAndBadRequestsAreRefused(t *testing.T) {
	ts := startService(t, nil)
	for _, line := range []string{
		`{"op":"begin","site":"blog","to":"maintenance"}`,
		`{"op":"finish","site":"blog","result":"ok","reason":"\n2026-01-01 normal maintenance ok 0 by root\u001b[2J"}`,
		`{"op":"set-mode","site":"blog","mode":"maintenance"}`,
		`{"op":"prepare","site":"blog"}`,
		`{"verb":"mode","site":"blog","mode":"maintenance","result":"ok"}`,
		`{"verb":"mode","site":"blog","mode":"maintenance","reason":"forged"}`,
		`{"verb":"mode","site":"blog","mode":"maintenance"} {"verb":"restart","site":"blog"}`,
		`{"verb":"mode","site":"../blog","mode":"maintenance"}`,
		`{"verb":"mode","site":"blog","mode":"Maint\u001b"}`,
		`{"verb":"mode","site":"blog","mode":"maintenance","timeout_ms":-1}`,
		`{"verb":"mode","site":"blog","mode":"maintenance","timeout_ms":1}`,
		`{"verb":"restart","site":"blog","mode":"x"}`,
		`{"verb":"list","sites":["blog"]}`,
		`{"verb":"status","sites":["blog","shop","blog"]}`,
		`{"verb":"history","site":"blog","last":-3}`,
		`{"verb":"history","site":"blog","since":5}`,
		`{"verb":"restart","site":"blog","output":"cat"}`,
		`{"verb":"status","output":"cat"}`,
		`{"verb":"logs","site":"blog","last":10001}`,
		`{"verb":"logs","site":"blog","last":-1}`,
		`{"verb":"logs","site":"blog","since":-1}`,
		`{"verb":"logs","site":"../blog"}`,
		`{"verb":"logs","site":"blog","mode":"x"}`,
		`{"verb":"logs","site":"blog","timeout_ms":60000}`,
		`{"verb":"logs","sites":["blog"]}`,
		`{"verb":"logs","site":"blog","output":"` + strings.Repeat("x", 33) + `"}`,
		`{"verb":"finish","site":"blog"}`,
		`{}`,
		`not json`,
		`{"verb":"restart","site":"blog"` + strings.Repeat(" ", MaxRequest) + `}`,
	} {
		c := ts.dial("dana")
		io.WriteString(c, line+"\n")
		f := readFinal(t, c)
		if f.Code != 2 || !strings.Contains(f.Error, "bad request") {
			t.Errorf("%.80q: %+v, want exit 2, bad request", line, f)
		}
	}
	if len(ts.backend.changes) > 0 {
		t.Errorf("a refused request changed something: %v", ts.backend.changes)
	}
}

func readFinal(t *testing.T, c net.Conn) Final {
	t.Helper()
	c.SetDeadline(time.Now().Add(patience))
	f, err := readAnswer(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no final answer: %v", err)
	}
	return *f
}

// One caller holding as many idle connections as it may does not stop
// another caller; its next connection is refused at once with "busy"; the
// idle ones are closed once the request deadline passed.
func TestIdleConnectionsAreBoundedPerUID(t *testing.T) {
	ts := startService(t, func(s *Server) { s.PerUID, s.Total, s.RequestTimeout = 8, 20, 3*time.Second })
	var idle []net.Conn
	for range 8 {
		idle = append(idle, ts.dial("eve"))
	}
	ts.waitAdmitted(8)
	// The 9th to 40th of eve's: each refused at once.
	for range 32 {
		c := ts.dial("eve")
		if f := readFinal(t, c); f.Code != 7 || !strings.Contains(f.Error, "busy") {
			t.Fatalf("eve's connection beyond the limit: %+v", f)
		}
	}
	f, _, err := ts.call("dana", Request{Verb: VerbMode, Site: "blog", Mode: "maintenance"})
	if err != nil || f.Code != 0 {
		t.Fatalf("dana's switch next to eve's idle connections: %+v %v", f, err)
	}
	// eve's idle connections are closed (with an answer) after the deadline.
	for _, c := range idle {
		if f := readFinal(t, c); f.Code != 2 || !strings.Contains(f.Error, "no request within 3s") {
			t.Errorf("an idle connection: %+v", f)
		}
	}
	if f, _, err := ts.call("eve", Request{Verb: VerbList}); err != nil || f.Code != 0 {
		t.Errorf("eve after her idle connections were closed: %+v %v", f, err)
	}
}

// The limit of all connections together holds too.
func TestTotalLimit(t *testing.T) {
	ts := startService(t, func(s *Server) { s.PerUID, s.Total = 8, 3 })
	for _, who := range []string{"eve", "sam", "dana"} {
		ts.dial(who)
	}
	ts.waitAdmitted(3)
	if f := readFinal(t, ts.dial("root")); f.Code != 7 {
		t.Errorf("a connection beyond the total: %+v", f)
	}
}

// A caller that hangs up does not stop a change that has started: it runs
// to its end and is recorded. One that does not read its answer does not
// stop it either.
func TestChangeOutlivesItsCaller(t *testing.T) {
	ts := startService(t, func(s *Server) { s.WriteTimeout = 200 * time.Millisecond })
	ts.backend.block = make(chan struct{})
	c := ts.dial("dana")
	io.WriteString(c, `{"verb":"mode","site":"blog","mode":"maintenance"}`+"\n")
	<-ts.backend.started
	c.Close()
	close(ts.backend.block)
	select {
	case what := <-ts.backend.finished:
		if what != "mode blog maintenance by 1001" {
			t.Errorf("finished %q", what)
		}
	case <-time.After(patience):
		t.Fatal("the change did not finish after its caller left")
	}
	// A caller that never reads: progress lines fill the socket's buffer,
	// the writes time out, and the change still ends.
	ts.backend.block = nil
	ts.backend.progress = 5000
	c = ts.dial("dana")
	io.WriteString(c, `{"verb":"restart","site":"blog"}`+"\n")
	select {
	case <-ts.backend.finished:
	case <-time.After(patience):
		t.Fatal("a caller that does not read held up the change")
	}
}

// A caller's Interrupt, sent after its request, interrupts the change,
// with the signal as the cause; the caller gets the progress lines and
// the final answer of the interrupted change. A caller that sends the
// Interrupt in the same write as its request interrupts it too.
func TestInterruptReachesTheChange(t *testing.T) {
	ts := startService(t, nil)
	ts.backend.block = make(chan struct{})
	defer close(ts.backend.block)
	ts.backend.interruptible = true
	sigs := make(chan string, 1)
	type result struct {
		f     *Final
		lines []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var lines []string
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		f, err := Call(ctx, filepath.Join(ts.dir, "dana"), Request{Verb: VerbMode, Site: "blog", Mode: "maintenance"}, func(l string) { lines = append(lines, l) }, sigs)
		done <- result{f, lines, err}
	}()
	<-ts.backend.started
	sigs <- "SIGINT"
	var r result
	select {
	case r = <-done:
	case <-time.After(patience):
		t.Fatal("the interrupted change did not end")
	}
	if r.err != nil || r.f.Code != 1 || r.f.Error != "rolled back: the caller's sitectl was interrupted by SIGINT" || strings.Join(r.lines, "|") != "rolling back" {
		t.Errorf("the interrupted change's answer: %+v, %q, %v", r.f, r.lines, r.err)
	}
	if hungUp, interrupted := ts.backend.seen(1); hungUp[0] || !interrupted[0] {
		t.Errorf("the change saw hung up %v, interrupted %v; want interrupted only", hungUp[0], interrupted[0])
	}

	c := ts.dial("dana")
	io.WriteString(c, `{"verb":"restart","site":"blog"}`+"\n"+`{"interrupt":"SIGTERM"}`+"\n")
	if f := readFinal(t, c); f.Error != "rolled back: the caller's sitectl was interrupted by SIGTERM" {
		t.Errorf("an Interrupt in the request's write: %+v", f)
	}
}

// Only an Interrupt of SIGINT or SIGTERM interrupts a change: other lines
// after the request are dropped, and a caller that hangs up, or sends
// more than MaxRequest bytes, leaves the change to run to its end, as
// before there were Interrupts.
func TestOnlyAnInterruptInterrupts(t *testing.T) {
	ts := startService(t, nil)
	ts.backend.interruptible = true
	for _, after := range []string{
		`{"interrupt":"SIGKILL"}` + "\n",
		`{"interrupt":"SIGINT","site":"blog"}` + "\n",
		`{"interrupt":"SIGINT"} {"interrupt":"SIGINT"}` + "\n",
		`{"interrupt":"SIGINT"}`, // no newline: not a line
		"not json\n",
		strings.Repeat("x", MaxRequest+10) + `{"interrupt":"SIGINT"}` + "\n",
		strings.Repeat(" ", MaxRequest) + "\n" + `{"interrupt":"SIGINT"}` + "\n",
	} {
		ts.backend.block = make(chan struct{})
		c := ts.dial("dana")
		io.WriteString(c, `{"verb":"restart","site":"blog"}`+"\n")
		<-ts.backend.started
		io.WriteString(c, after)
		time.Sleep(100 * time.Millisecond) // the service reads it
		close(ts.backend.block)
		if f := readFinal(t, c); f.Code != 0 {
			t.Errorf("after %.60q: %+v, want the change run to its end", after, f)
		}
		c.Close()
	}
	_, interrupted := ts.backend.seen(7)
	for i, in := range interrupted {
		if in {
			t.Errorf("change %d was interrupted", i)
		}
	}
	// A hang-up: the change runs to its end, not interrupted.
	ts.backend.block = make(chan struct{})
	c := ts.dial("dana")
	io.WriteString(c, `{"verb":"restart","site":"blog"}`+"\n")
	<-ts.backend.started
	c.Close()
	// The service sees the hang-up when it gets to read it: wait for that,
	// then let the change end.
	ts.backend.mu.Lock()
	changeCtx := ts.backend.ctx
	ts.backend.mu.Unlock()
	select {
	case <-changeCtx.Done():
	case <-time.After(patience):
		t.Fatal("the service did not see the caller hang up")
	}
	close(ts.backend.block)
	if hungUp, interrupted := ts.backend.seen(1); !hungUp[7] || interrupted[7] {
		t.Errorf("a caller that hung up: hung up %v, interrupted %v; want hung up only", hungUp[7], interrupted[7])
	}
}

// A service older than Interrupt drops what follows the request: a
// client that sends one still gets its answer.
func TestInterruptToAnOlderService(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "old"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	read := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		r.ReadString('\n')
		io.WriteString(c, `{"progress":"started"}`+"\n")
		// The hang-up reader of the older service.
		line, _ := r.ReadString('\n')
		read <- []byte(line)
		io.WriteString(c, `{"final":{"code":0}}`+"\n")
	}()
	sigs := make(chan string, 1)
	sigs <- "SIGINT"
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	f, err := Call(ctx, filepath.Join(dir, "old"), Request{Verb: VerbRestart, Site: "blog"}, nil, sigs)
	if err != nil || f.Code != 0 {
		t.Errorf("an Interrupt to an older service: %+v, %v; want its answer", f, err)
	}
	if got := string(<-read); got != `{"interrupt":"SIGINT"}`+"\n" {
		t.Errorf("the client sent %q after its request", got)
	}
}

// Answers are bounded: progress lines are cut, and there are at most
// MaxProgressLines of them.
func TestAnswersAreBounded(t *testing.T) {
	ts := startService(t, nil)
	ts.backend.progress = MaxProgressLines + 50
	f, lines, err := ts.call("dana", Request{Verb: VerbRestart, Site: "blog"})
	if err != nil || f.Code != 0 {
		t.Fatalf("%+v %v", f, err)
	}
	if len(lines) != MaxProgressLines {
		t.Errorf("%d progress lines, want %d", len(lines), MaxProgressLines)
	}
	a := &answer{conn: discardConn{}, timeout: time.Second}
	a.progress(strings.Repeat("é", MaxProgress))
}

type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error)      { return len(b), nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// What the client makes of a service that is not there, refuses it, or
// hangs up before it answers.
func TestCallErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Call(context.Background(), filepath.Join(dir, "none"), Request{Verb: VerbList}, nil, nil); !errors.Is(err, ErrUnreachable) {
		t.Errorf("no socket: %v", err)
	}
	ln, err := net.Listen("unix", filepath.Join(dir, "cut"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, `{"progress":"started"}`+"\n")
			c.Close()
		}
	}()
	if _, err := Call(context.Background(), filepath.Join(dir, "cut"), Request{Verb: VerbList}, nil, nil); !errors.Is(err, ErrCut) {
		t.Errorf("a connection closed before the answer: %v", err)
	}
}

// FuzzDecodeRequest: whatever a client sends, the decoder returns a
// request that passes Check or an error that wraps ErrBadRequest, and
// never a request with more than the protocol holds.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"verb":"mode","site":"blog","mode":"maintenance","timeout_ms":60000}` + "\n",
		`{"verb":"status","sites":["a","b"]}` + "\n",
		`{"op":"finish","site":"blog","result":"ok","reason":"x"}` + "\n",
		`{"verb":"history","site":"blog","last":3}` + "\n",
		`{"verb":"logs","site":"blog","last":3,"since":1700000000,"output":"cat"}` + "\n",
		"\n", "{\n", `{"verb":"restart","site":"blog"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("an error that is not ErrBadRequest: %v", err)
			}
			return
		}
		if err := req.Check(); err != nil {
			t.Fatalf("decoded %+v, which Check refuses: %v", req, err)
		}
		if _, err := json.Marshal(req); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzHandle runs the whole handler of one connection on arbitrary input
// from a deployer: it always ends with exactly one final answer, never
// panics, and changes a site only for a well-formed request that the
// caller is granted.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{
		`{"verb":"mode","site":"blog","mode":"maintenance"}` + "\n",
		`{"verb":"mode","site":"shop","mode":"maintenance"}` + "\n",
		`{"verb":"status"}` + "\n",
		`{"op":"finish","site":"blog","result":"ok","reason":"x"}` + "\n",
		`{"verb":"history","site":"broken"}` + "\n",
		"\x00\xff\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := newFakeBackend()
		srv := &Server{Backend: b, Lookup: lookup, RequestTimeout: patience, WriteTimeout: patience,
			Creds: func(net.Conn) (Caller, error) { return dana, nil }}
		srv.defaults()
		server, client := net.Pipe()
		done := make(chan struct{})
		go func() { srv.handle(server); close(done) }()
		go func() {
			client.Write(data)
			if len(data) == 0 || data[len(data)-1] != '\n' {
				client.Write([]byte("\n"))
			}
		}()
		client.SetDeadline(time.Now().Add(patience))
		final, err := readAnswer(bufio.NewReader(client), nil)
		if err != nil {
			t.Fatalf("no final answer to %q: %v", data, err)
		}
		client.Close()
		<-done
		req, derr := DecodeRequest(strings.NewReader(string(data) + "\n"))
		granted := derr == nil && req.IsChange() && req.Site == "blog"
		if len(b.changes) > 0 && !granted {
			t.Fatalf("%q changed %v (final %+v)", data, b.changes, final)
		}
		if granted && final.Code != 0 {
			t.Fatalf("%q: a granted change failed: %+v", data, final)
		}
	})
}

// One uid looping on refused requests takes at most its share of the
// journal: journald drops every line of the service past its own rate
// limit, which would silence the lines of everyone else's changes. The
// requests past the share are counted in one line; another uid's change
// is logged, and so is every line of root.
func TestOneUIDCannotFloodTheJournal(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	ts := startService(t, func(s *Server) {
		s.LogBurst, s.LogInterval = 10, time.Hour
		s.Logf = func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, fmt.Sprintf(format, args...))
		}
	})
	for range 500 {
		c := ts.dial("eve")
		io.WriteString(c, "not json\n")
		readFinal(t, c)
		c.Close()
	}
	for range 20 {
		if f, _, err := ts.call("root", Request{Verb: VerbList}); err != nil || f.Code != 0 {
			t.Fatalf("root's list: %+v %v", f, err)
		}
	}
	// Refused changes are requests like any other: eve's of a site not
	// granted her, dana's of a mode her site lacks. dana uses up her own
	// share with them: her change is logged all the same, as every
	// change that took its site's lock is.
	for range 500 {
		if f, _, err := ts.call("eve", Request{Verb: VerbRestart, Site: "shop"}); err != nil || f.Code != 6 {
			t.Fatalf("eve's restart of shop: %+v %v", f, err)
		}
	}
	for range 20 {
		if f, _, err := ts.call("dana", Request{Verb: VerbMode, Site: "blog", Mode: "nosuch"}); err != nil || f.Code == 0 {
			t.Fatalf("dana's switch to a mode blog lacks: %+v %v", f, err)
		}
	}
	if f, _, err := ts.call("dana", Request{Verb: VerbMode, Site: "blog", Mode: "maintenance"}); err != nil || f.Code != 0 {
		t.Fatalf("dana's switch: %+v %v", f, err)
	}
	ts.cancel()
	<-ts.done
	ts.done <- nil // for the cleanup
	mu.Lock()
	defer mu.Unlock()
	count := func(prefix string) (n int) {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				n++
			}
		}
		return n
	}
	if n := count("uid 1003 (pid"); n != 10 {
		t.Errorf("eve's 500 refused requests left %d lines of their own, want 10", n)
	}
	if n := count("uid 1003: 990 more requests since"); n != 1 {
		t.Errorf("no line counts eve's requests not logged (%d lines, the last %q)", len(lines), lines[max(0, len(lines)-3):])
	}
	if n := count("uid 0 (pid"); n != 20 {
		t.Errorf("root's 20 requests left %d lines, want 20", n)
	}
	if n := count("uid 1001 (pid 0): mode blog maintenance: ok"); n != 1 {
		t.Errorf("dana's switch is not logged: %q", lines[len(lines)-3:])
	}
	if n := count("uid 1001 (pid 0): mode blog nosuch"); n != 10 {
		t.Errorf("dana's 20 refused switches left %d lines, want her share of 10", n)
	}
}

// manySites is a backend of n sites that all name the same deployers.
type manySites struct {
	*fakeBackend
	n int
}

func (b manySites) Sites() ([]*site.Site, error) {
	out := make([]*site.Site, b.n)
	for i := range out {
		out[i] = &site.Site{Name: fmt.Sprintf("s%05d", i), Deployers: []site.Deployer{{Kind: site.DeployerGroup, Name: "web"}, {Kind: site.DeployerUser, Name: "1001"}}}
	}
	return out, nil
}

// A listing asks the user and group databases once per name, not once
// per site: at 10,000 sites SystemLookup read /etc/passwd and /etc/group
// whole for every one, and any member of sitectl-deploy could keep root
// busy with listings that return nothing.
func TestListingLooksUpEachNameOnce(t *testing.T) {
	calls := map[site.Deployer]int{}
	srv := &Server{Backend: manySites{newFakeBackend(), 1000}, Lookup: func(d site.Deployer) (int, bool) {
		calls[d]++
		return lookup(d)
	}}
	names, _, err := srv.visible(nil, dana)
	if err != nil || len(names) != 1000 {
		t.Fatalf("dana sees %d sites (%v), want 1000", len(names), err)
	}
	if _, _, err := srv.visible(nil, eve); err != nil {
		t.Fatal(err)
	}
	for d, n := range calls {
		if n > 2 {
			t.Errorf("%s looked up %d times in two listings of 1000 sites", d, n)
		}
	}
}

// A uid's log window is the Server's, not one listener's: a Serve that
// ends while another Serve of the same Server still answers a request
// does not flush the window, or that request's line, logged after it,
// would open a new one and get past the uid's share.
func TestLogWindowsOutliveAServeOfTheirServer(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	srv := &Server{Backend: newFakeBackend(), Lookup: lookup, RequestTimeout: patience, WriteTimeout: patience,
		Creds:    func(net.Conn) (Caller, error) { return eve, nil },
		LogBurst: 1, LogInterval: time.Hour,
		Logf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, fmt.Sprintf(format, args...))
		}}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var paths [2]string
	var done [2]chan error
	for i := range 2 {
		paths[i] = filepath.Join(dir, fmt.Sprint(i))
		ln, err := net.Listen("unix", paths[i])
		if err != nil {
			t.Fatal(err)
		}
		done[i] = make(chan error, 1)
		go func() { done[i] <- srv.Serve(ctx, ln) }()
	}
	dial := func(path string) net.Conn {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// eve's share: one line logged, one dropped.
	for range 2 {
		c := dial(paths[0])
		io.WriteString(c, "not json\n")
		readFinal(t, c)
		c.Close()
	}
	// A request of hers under way on the other listener when the
	// service stops: admitted, its line not yet sent. The connections
	// before it are released first: the count is then hers alone.
	holding := func(n int) {
		for deadline := time.Now().Add(patience); ; time.Sleep(10 * time.Millisecond) {
			srv.mu.Lock()
			total := srv.total
			srv.mu.Unlock()
			if total == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the service holds %d connections, want %d", total, n)
			}
		}
	}
	holding(0)
	late := dial(paths[1])
	io.WriteString(late, "not js")
	holding(1)
	cancel()
	if err := <-done[0]; err != nil {
		t.Fatal(err)
	}
	io.WriteString(late, "on\n")
	readFinal(t, late)
	if err := <-done[1]; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "uid 1003 (pid") {
			n++
		}
	}
	if n != 1 || !strings.Contains(strings.Join(lines, "\n"), "uid 1003: 2 more requests") {
		t.Errorf("eve's 3 requests with a share of 1 line: %d lines of their own, want 1, and one that counts 2 more:\n%s", n, strings.Join(lines, "\n"))
	}
}

// A deployer's client waits for a change's answer as long as the service
// may take to give it: the lock and systemd's connection (the timeout),
// then the change (twice the timeout and a minute), and a margin.
func TestClientOutwaitsTheChange(t *testing.T) {
	req := Request{Verb: VerbRestart, Site: "blog", TimeoutMS: (10 * time.Minute).Milliseconds()}
	if got, least := answerWait(req), 30*time.Minute+time.Minute; got <= least {
		t.Errorf("a change with a timeout of 10m is waited for %v, not more than the %v the service may take", got, least)
	}
	if got := answerWait(Request{Verb: VerbStatus}); got != time.Minute {
		t.Errorf("a status is waited for %v", got)
	}
}

// listedSites is manySites whose status answers what sitectl's backend
// answers for a list: each site's status as `sitectl list --json` prints
// it, of the shape test/scaleshapes makes (the Go test app, one TCP
// listener, its socket listening).
type listedSites struct{ manySites }

func (b listedSites) Status(_ context.Context, _ string, names, missing []string) (any, error) {
	ss := make([]status.Site, len(names))
	for i, name := range names {
		ss[i] = status.Site{Site: name, File: "/etc/sitectl/sites/" + name + ".toml", SiteFile: status.FileState{State: "ok", Errors: []status.FileError{}},
			State: "idle", Running: true, Mode: "normal", Unit: "site-" + name + ".service", LoadState: "loaded", ActiveState: "inactive", SubState: "dead", Result: "success",
			Socket: "listening", Listen: []string{fmt.Sprintf("127.0.0.1:%d", 10000+i)}, Sockets: []status.Socket{{Unit: "site-" + name + ".socket", State: "listening", ActiveState: "active", SubState: "listening"}}}
	}
	return map[string]any{"sites": ss, "missing": append([]string{}, missing...)}, nil
}

// A deployer granted every site of a host of 10,000 (docs/scale.md) gets
// their list: list names no sites, so an answer too big for the bound is
// one the deployer cannot make smaller. With a bound of 8 MiB, a list of
// 10,000 sites named s-NNNNN (8.6 MB) failed with exit 1, "ask for fewer
// sites", in a booted sandbox as here.
func TestListOfTenThousandSitesFitsTheAnswer(t *testing.T) {
	ts := startService(t, func(s *Server) { s.Backend = listedSites{manySites{newFakeBackend(), 10000}} })
	f, _, err := ts.call("dana", Request{Verb: VerbList})
	if err != nil || f.Code != 0 || f.Error != "" {
		t.Fatalf("dana's list of 10,000 sites: %v, exit %d: %s", err, f.Code, f.Error)
	}
	var got struct{ Sites []status.Site }
	if err := json.Unmarshal(f.Result, &got); err != nil || len(got.Sites) != 10000 {
		t.Fatalf("dana's list of 10,000 sites has %d sites (%d bytes): %v", len(got.Sites), len(f.Result), err)
	}
	// Room for sites with longer names and paths, more listeners, a
	// last failure: four times this shape.
	if per := len(f.Result) / 10000; MaxResponse < 4*per*10000 {
		t.Errorf("MaxResponse %d leaves room for %d sites of %d bytes, want 4 times 10,000", MaxResponse, MaxResponse/per, per)
	}
}
