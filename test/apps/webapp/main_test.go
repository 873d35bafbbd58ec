package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	t.Setenv("SITE", "shop")
	t.Setenv("SITE_MODE", "green")
	t.Setenv("SITE_GENERATION", "12")
	t.Setenv("WEBAPP_EXPOSE_ENV", "EXTRA_VAR")
	t.Setenv("EXTRA_VAR", "x")
	t.Setenv("NOT_SELECTED", "y")
	h := newHandler(4242)

	get := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec
	}

	rec := get("/")
	if rec.Code != 200 || rec.Header().Get("X-Site-Mode") != "green" || rec.Header().Get("X-Pid") != "4242" {
		t.Fatalf("GET / = %d %v", rec.Code, rec.Header())
	}
	var body rootResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET / body %q: %v", rec.Body, err)
	}
	if body.Site != "shop" || body.Mode != "green" || body.PID != 4242 || body.Generation != "12" {
		t.Errorf("GET / = %+v", body)
	}
	if body.Env["SITE_MODE"] != "green" || body.Env["EXTRA_VAR"] != "x" || body.Env["NOT_SELECTED"] != "" {
		t.Errorf("GET / env = %v", body.Env)
	}

	for _, tc := range []struct {
		target string
		code   int
		body   string
	}{
		{"/env?name=SITE_GENERATION", 200, "12"},
		{"/env?name=UNSET_FOR_SURE", 404, "UNSET_FOR_SURE is not set"},
		{"/env", 400, "missing"},
		{"/sleep?d=1ms", 200, "slept 1ms"},
		{"/sleep?d=soon", 400, "want ?d="},
		{"/health", 200, "ok"},
		{"/nope", 404, ""},
	} {
		rec := get(tc.target)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) {
			t.Errorf("GET %s = %d %q, want %d containing %q", tc.target, rec.Code, rec.Body, tc.code, tc.body)
		}
		if rec.Header().Get("X-Pid") != "4242" {
			t.Errorf("GET %s: no X-Pid header", tc.target)
		}
	}
}
