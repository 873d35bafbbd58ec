package maintenance

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPageStaticAndHealth(t *testing.T) {
	dir := t.TempDir()
	static := filepath.Join(dir, "static")
	os.MkdirAll(filepath.Join(static, "css"), 0o755)
	os.WriteFile(filepath.Join(static, "css", "site.css"), []byte("body{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("secret"), 0o644)
	os.Symlink(filepath.Join(dir, "secret.txt"), filepath.Join(static, "link.txt"))
	h, err := newHandler(Config{Page: []byte("<h1>back soon</h1>"), StaticDir: static, RetryAfter: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, "http://x/", nil)
		req.URL.Path = target // unescaped, as a hostile client may send it
		h.ServeHTTP(rec, req)
		return rec
	}
	page := func(rec *httptest.ResponseRecorder, what string) {
		t.Helper()
		if rec.Code != 503 || rec.Header().Get("Retry-After") != "300" || rec.Body.String() != "<h1>back soon</h1>" {
			t.Errorf("%s: got %d Retry-After=%q body %q; want the page with 503", what, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	page(do("GET", "/"), "root")
	page(do("GET", "/orders/42"), "any path")
	page(do("POST", "/css/site.css"), "a POST to a static path")
	page(do("GET", "/css/"), "a directory (never listed)")
	page(do("GET", "/../secret.txt"), "a traversal")
	page(do("GET", "/css/../../secret.txt"), "a traversal inside")
	page(do("GET", "/link.txt"), "a symlink out of the static directory")
	if rec := do("GET", "/css/site.css"); rec.Code != 200 || rec.Body.String() != "body{}" || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
		t.Errorf("static file: %d %q %q", rec.Code, rec.Body, rec.Header().Get("Content-Type"))
	}
	if rec := do("GET", HealthPath); rec.Code != 200 {
		t.Errorf("health: %d", rec.Code)
	}
	if rec := do("HEAD", "/"); rec.Code != 503 || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d with %d bytes", rec.Code, rec.Body.Len())
	}
}

func TestDefaultPage(t *testing.T) {
	h, err := newHandler(Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "120" || !strings.Contains(rec.Body.String(), "Down for maintenance") {
		t.Fatalf("default: %d %v %q", rec.Code, rec.Header(), rec.Body)
	}
}

func TestMissingStaticDirIsAnError(t *testing.T) {
	if _, err := newHandler(Config{StaticDir: "/nonexistent/dir"}); err == nil {
		t.Fatal("a missing static directory must be reported at start")
	}
}
