// Package maintenance is sitectl's built-in maintenance server. A site in a
// mode with serve = "maintenance" runs it on the site's own held sockets
// instead of the app: every request gets the maintenance page with status
// 503 and Retry-After, except files that exist in the static directory (for
// the page's stylesheet and images) and the health path, which answers 200
// so that sitectl can verify the mode came up. It needs nothing from the app.
package maintenance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sitectl/sitectl/activation"
	"github.com/sitectl/sitectl/internal/site"
)

// HealthPath answers 200 while the maintenance server runs.
const HealthPath = "/.sitectl/health"

// defaultPage is served when a mode configures no page of its own.
const defaultPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Down for maintenance</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:15vh auto;padding:0 1rem;color:#222}</style>
</head>
<body><h1>Down for maintenance</h1>
<p>This site is being updated and will be back shortly. Please try again in a few minutes.</p>
</body>
</html>
`

// maxPageSize bounds the maintenance page file (site.MaxPageSize).
const maxPageSize = site.MaxPageSize

// Timeouts and limits of the server's connections. Every client of the
// maintenance page is a stranger, and none may hold a goroutine and a
// descriptor for longer than these: one that sends its request slowly, one
// that keeps an idle keep-alive connection open, one that stops reading a
// static file. The page and its static files are small, so a minute is
// plenty for any of them; the headers of a browser's request are a few
// kilobytes, cookies and all.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Config of the server. Zero values mean defaults.
type Config struct {
	Site       string
	Page       []byte        // the page body; default defaultPage
	StaticDir  string        // optional
	RetryAfter time.Duration // default 120s

	// idleTimeout and writeTimeout replace the constants of the same
	// names when set, so that tests need not wait a minute.
	idleTimeout, writeTimeout time.Duration
}

// newHandler returns the maintenance server's handler. The static directory is
// opened as an os.Root, so no request can reach outside it, by ".." or by a
// symlink; directories are never listed.
func newHandler(cfg Config) (http.Handler, error) {
	if len(cfg.Page) == 0 {
		cfg.Page = []byte(defaultPage)
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 120 * time.Second
	}
	h := &handler{cfg: cfg, retryAfter: strconv.Itoa(int(cfg.RetryAfter.Seconds()))}
	if cfg.StaticDir != "" {
		root, err := os.OpenRoot(cfg.StaticDir)
		if err != nil {
			return nil, fmt.Errorf("cannot open the static directory: %w", err)
		}
		h.static = root
	}
	return h, nil
}

// LoadPage reads a page file, or returns the default page for "". It
// refuses anything that is not a regular file (a named pipe would hang the
// start of maintenance forever, a device such as /dev/zero would never end)
// and a file larger than maxPageSize. The file is opened with O_NONBLOCK,
// so that not even the open of a named pipe blocks, and checked with fstat
// on the open file, so that a file swapped in after a check cannot get
// past; at most maxPageSize+1 bytes are read, so that a file that grows (or
// lies about its size, as files under /proc do) cannot either.
//
// It does not use site.ReadFile, which reads the same way: its errors tell
// the operator that "a site file" must be a regular file of at most 64 KiB,
// which would send them looking for the wrong file.
func LoadPage(file string) ([]byte, error) {
	if file == "" {
		return []byte(defaultPage), nil
	}
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cannot read the maintenance page: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read the maintenance page: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot read the maintenance page %s: it is %s, not a regular file", file, site.FileKind(fi.Mode()))
	}
	if fi.Size() > maxPageSize {
		return nil, pageTooLarge(file, fi.Size())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPageSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the maintenance page: %w", err)
	}
	if len(b) > maxPageSize {
		return nil, pageTooLarge(file, int64(len(b)))
	}
	return b, nil
}

func pageTooLarge(file string, size int64) error {
	return fmt.Errorf("cannot use the maintenance page %s: it is %d bytes long, and a maintenance page may have at most %d bytes (1 MiB)", file, size, maxPageSize)
}

type handler struct {
	cfg        Config
	retryAfter string
	static     *os.Root
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Site-Mode", "maintenance")
	if r.URL.Path == HealthPath {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "maintenance\n")
		return
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && h.serveStatic(w, r) {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Retry-After", h.retryAfter)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(h.cfg.Page)))
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		w.Write(h.cfg.Page)
	}
}

// serveStatic serves a regular file of the static directory, if the path
// names one, and reports whether it did.
func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request) bool {
	if h.static == nil {
		return false
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" || !fs.ValidPath(name) {
		return false
	}
	// Opened with O_NONBLOCK: a named pipe in the static directory would
	// otherwise block the request's goroutine, and an OS thread, in open(2)
	// until something writes to it. Only the open file's type is checked,
	// with fstat, so nothing swapped in after a check can get past.
	f, err := h.static.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return false // missing, or outside the root: the maintenance page
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return false // directories are never listed, nor pipes or devices read
	}
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, name, fi.ModTime(), f)
	return true
}

// errNoListeners is returned when the server has nothing to serve on.
var errNoListeners = errors.New("the maintenance server got no sockets from systemd")

// Run serves the maintenance page on every socket systemd passed this
// process, until ctx ends or SIGTERM, and then drains (package activation
// sends READY=1 and STOPPING=1). logf gets a line when it starts and one
// when it stopped.
func Run(ctx context.Context, cfg Config, logf func(format string, args ...any)) error {
	h, err := newHandler(cfg)
	if err != nil {
		return err
	}
	byName, err := activation.Listeners()
	if err != nil {
		return err
	}
	var ls []net.Listener
	for _, l := range byName {
		ls = append(ls, l...)
	}
	if len(ls) == 0 {
		return errNoListeners
	}
	logf("serving the maintenance page on %d sockets", len(ls))
	srv := newServer(h, cfg)
	if err := activation.Serve(ctx, srv, ls, activation.ServeOptions{}); err != nil && !errors.Is(err, activation.ErrDrainTimeout) {
		return err
	}
	logf("maintenance server stopped")
	return nil
}

// newServer returns the server Run serves h with, its connections bounded
// in time and its requests' headers in size (see the constants).
func newServer(h http.Handler, cfg Config) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	if cfg.idleTimeout > 0 {
		srv.IdleTimeout = cfg.idleTimeout
	}
	if cfg.writeTimeout > 0 {
		srv.WriteTimeout = cfg.writeTimeout
	}
	return srv
}
