package webserver

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequireToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token, err := NewTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	refused := prometheus.NewCounter(prometheus.CounterOpts{Name: "refused_total", Help: "h"})
	h := RequireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		token, refused, slog.New(slog.DiscardHandler))
	call := func(auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/check", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := call("Bearer s3cret"); rec.Code != http.StatusNoContent {
		t.Errorf("the right token: %d %s", rec.Code, rec.Body)
	}
	for auth, want := range map[string]string{
		"":                  `no bearer token: want an \"Authorization: Bearer TOKEN\" header`,
		"Basic czNjcmV0":    `no bearer token: want an \"Authorization: Bearer TOKEN\" header`,
		"Bearer s3cret-not": "wrong bearer token",
		"Bearer ":           "wrong bearer token",
	} {
		rec := call(auth)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), want) || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %d %s, want 401 with %q", auth, rec.Code, rec.Body, want)
		}
	}
	if v := testutil.ToFloat64(refused); v != 4 {
		t.Errorf("refused = %v, want 4", v)
	}
	// A token file that disappears refuses everything.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	token.mu.Lock()
	token.readAt = token.readAt.Add(-tokenReread)
	token.mu.Unlock()
	if rec := call("Bearer s3cret"); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "reading the token file") {
		t.Errorf("after the token file vanished: %d %s, want 503", rec.Code, rec.Body)
	}
	if _, err := NewTokenFile(path); err == nil {
		t.Error("NewTokenFile accepted a missing file")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTokenFile(empty); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v", err)
	}
}
