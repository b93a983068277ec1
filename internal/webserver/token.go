package webserver

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantageprobe/vantage/internal/jsonapi"
)

// tokenReread is how long a token read from its file is used before the
// file is read again, so a rotated token takes effect without a restart.
const tokenReread = 5 * time.Second

// TokenFile holds a bearer token read from a file.
type TokenFile struct {
	path   string
	mu     sync.Mutex
	token  []byte
	readAt time.Time
}

// NewTokenFile reads the token in path: the file's content without
// surrounding white space, which must not be empty.
func NewTokenFile(path string) (*TokenFile, error) {
	t := &TokenFile{path: path}
	if _, err := t.get(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *TokenFile) get() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != nil && time.Since(t.readAt) < tokenReread {
		return t.token, nil
	}
	data, err := os.ReadFile(t.path)
	if err != nil {
		return nil, fmt.Errorf("reading the token file: %w", err)
	}
	token := []byte(strings.TrimSpace(string(data)))
	if len(token) == 0 {
		return nil, fmt.Errorf("token file %s is empty", t.path)
	}
	t.token, t.readAt = token, time.Now()
	return token, nil
}

var (
	errNoBearer   = errors.New(`no bearer token: want an "Authorization: Bearer TOKEN" header`)
	errWrongToken = errors.New("wrong bearer token")
)

// Check reports whether r carries the token: nil when it does.
func (t *TokenFile) Check(r *http.Request) error { return t.check(r) }

// check reports whether r carries the token.
func (t *TokenFile) check(r *http.Request) error {
	want, err := t.get()
	if err != nil {
		return err
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return errNoBearer
	}
	if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
		return errWrongToken
	}
	return nil
}

// RequireToken lets through only requests that carry the token as
// "Authorization: Bearer <token>"; the others are answered 401 with a JSON
// error, counted and logged. A token that can no longer be read refuses
// every request (503), never lets one through.
func RequireToken(next http.Handler, token *TokenFile, refused prometheus.Counter, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := token.check(r)
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		refused.Inc()
		logger.Warn("Refused an unauthenticated API request", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		if !errors.Is(err, errNoBearer) && !errors.Is(err, errWrongToken) {
			jsonapi.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("cannot authenticate requests: %w", err))
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="vantage"`)
		jsonapi.WriteError(w, http.StatusUnauthorized, fmt.Errorf("unauthorized: %w", err))
	})
}

// Unreadable reports whether err, from Check, says the token itself could
// not be read, rather than that the request carries none or another.
func Unreadable(err error) bool {
	return err != nil && !errors.Is(err, errNoBearer) && !errors.Is(err, errWrongToken)
}
