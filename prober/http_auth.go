package prober

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// secretRefresh is how long a credentials file's content is reused before
// it is read again, so rotated tokens are picked up without reading the file
// on every probe.
const secretRefresh = time.Minute

// secretReader returns the reader of a secret given inline or as a file, or
// nil when neither is set. A file is read now, so an unreadable file fails
// the module's preparation with a clear error.
func secretReader(inline promconfig.Secret, file, ref string) (promconfig.SecretReader, error) {
	switch {
	case ref != "":
		return nil, errSecretRef
	case file != "":
		s := &fileSecret{path: file}
		if _, err := s.Fetch(context.Background()); err != nil {
			return nil, err
		}
		return s, nil
	case inline != "":
		return promconfig.NewInlineSecret(string(inline)), nil
	}
	return nil, nil
}

// fileSecret is a secret read from a file and cached for secretRefresh.
type fileSecret struct {
	path string

	mu     sync.Mutex
	value  string
	readAt time.Time
}

func (s *fileSecret) Fetch(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.readAt.IsZero() && time.Since(s.readAt) < secretRefresh {
		return s.value, nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return "", fmt.Errorf("reading secret file: %w", err)
	}
	s.value, s.readAt = strings.TrimSpace(string(b)), time.Now()
	return s.value, nil
}

func (s *fileSecret) Description() string { return "file " + s.path }
func (s *fileSecret) Immutable() bool     { return false }

// headersRoundTripper adds the http_headers values to every request of an
// HTTP/3 module, as prometheus/common's does (whose sensitive-header
// stripping on redirects to other hosts is not exported), with header files
// cached like other secrets.
type headersRoundTripper struct {
	headers []configuredHeader
	next    http.RoundTripper
}

type configuredHeader struct {
	name   string
	values []promconfig.SecretReader
}

func newHeadersRoundTripper(cfg *promconfig.Headers, next http.RoundTripper) (http.RoundTripper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rt := &headersRoundTripper{next: next}
	for name, h := range cfg.Headers {
		ch := configuredHeader{name: http.CanonicalHeaderKey(name)}
		for _, v := range h.Values {
			ch.values = append(ch.values, promconfig.NewInlineSecret(v))
		}
		for _, v := range h.Secrets {
			ch.values = append(ch.values, promconfig.NewInlineSecret(string(v)))
		}
		for _, f := range h.Files {
			s, err := secretReader("", f, "")
			if err != nil {
				return nil, fmt.Errorf("header %q: %w", name, err)
			}
			ch.values = append(ch.values, s)
		}
		rt.headers = append(rt.headers, ch)
	}
	return rt, nil
}

// sensitiveHeaders are not sent on a redirect to another host (net/http's
// list).
var sensitiveHeaders = map[string]bool{
	"Authorization": true, "Www-Authenticate": true, "Cookie": true, "Cookie2": true,
	"Proxy-Authorization": true, "Proxy-Authenticate": true,
}

func (rt *headersRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	crossHost := isCrossHostRedirect(req)
	req = req.Clone(req.Context())
	for _, h := range rt.headers {
		if crossHost && sensitiveHeaders[h.name] {
			continue
		}
		for _, s := range h.values {
			v, err := s.Fetch(req.Context())
			if err != nil {
				return nil, fmt.Errorf("header %q: %w", h.name, err)
			}
			req.Header.Add(h.name, v)
		}
	}
	return rt.next.RoundTrip(req)
}

// isCrossHostRedirect reports whether req follows a redirect chain that left
// the first request's host (or its subdomains) at some hop.
func isCrossHostRedirect(req *http.Request) bool {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	origin := strings.ToLower(first.URL.Hostname())
	for r := req; r.Response != nil && r.Response.Request != nil; r = r.Response.Request {
		h := strings.ToLower(r.URL.Hostname())
		if h != origin && !strings.HasSuffix(h, "."+origin) {
			return true
		}
	}
	return false
}
