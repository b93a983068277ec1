package endpoint

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		prober, target string
		err            string // substring; empty: accepted
	}{
		{"http", "https://example.com/health", ""},
		{"http", "example.com:8080", ""},
		{"http", "http://", "has no host"},
		{"http", "https://example.com:99999/", "invalid port"},
		{"http_steps", "https://example.com/", ""},
		{"tcp", "db.example:5432", ""},
		{"tcp", "db.example", "not host:port"},
		{"tcp", "https://db.example/", "not host:port"},
		{"dns", "8.8.8.8", ""},
		{"dns", "[::1]:5353", ""},
		{"dns", "a b", "not a DNS server"},
		{"grpc", "svc.example:443", ""},
		{"grpc", "svc.example/x", "not host[:port]"},
		{"icmp", "192.0.2.1", ""},
		{"icmp", "host.example:22", "without a port"},
		{"unix", "/run/app.sock", ""},
		{"websocket", "wss://ws.example/feed", ""},
		{"websocket", "https://ws.example/", "not a ws:// or wss:// URL"},
		{"http", " ", "target must be set"},
		{"ftp", "ftp://x", `unknown prober "ftp"`},
	} {
		err := Check(tc.prober, tc.target)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Check(%q, %q) = %v, want nil", tc.prober, tc.target, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Check(%q, %q) = %v, want an error containing %q", tc.prober, tc.target, err, tc.err)
		}
	}
}
