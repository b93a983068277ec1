// Package endpoint parses the targets of each prober kind: what a prober
// accepts is decided here once, and read both by the probers and by the
// coordinator's registry, which validates targets without linking the
// probers' libraries. Standard library only.
package endpoint

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Probers lists the prober kinds a module may use.
var Probers = []string{"http", "tcp", "dns", "icmp", "grpc", "unix", "websocket", "http_steps"}

// HTTP parses a target of the http and http_steps probers as
// blackbox_exporter does: a target without an http:// or https:// scheme
// gets http:// prepended.
func HTTP(target string) (*url.URL, error) {
	lower := strings.ToLower(target)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("could not parse target URL: %w", err)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.Hostname() == "" {
		return nil, fmt.Errorf("target URL %q has no host", target)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("target URL %q has an invalid port", target)
		}
	}
	return u, nil
}

// ValidPort accepts a port number (1-65535) or a service name ("ssh") the
// dialer will look up.
func ValidPort(port string) bool {
	const digits = "0123456789"
	if strings.Trim(port, digits) == "" {
		n, err := strconv.ParseUint(port, 10, 16)
		return err == nil && n > 0
	}
	return strings.Trim(port, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-"+digits) == ""
}

// TCP parses a target of the tcp prober: host:port.
func TCP(target string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" || !ValidPort(port) {
		return "", "", false
	}
	return host, port, true
}

// DNS parses a target of the dns prober, the server asked: host[:port];
// without a port, defaultPort (53, or 853 for DNS over TLS).
func DNS(target, defaultPort string) (host, port string, ok bool) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		// No port: a bare name or address, possibly a bracketed IPv6 one.
		host, port = strings.TrimSuffix(strings.TrimPrefix(target, "["), "]"), defaultPort
	}
	if host == "" || !ValidPort(port) || strings.ContainsAny(host, "/ ") {
		return "", "", false
	}
	return host, port, true
}

// GRPC parses a target of the grpc prober: host:port, as
// blackbox_exporter optionally prefixed by http:// or https://; without a
// port, 443 with TLS and 80 without.
func GRPC(target string, tls bool) (host, port string, ok bool) {
	target = strings.TrimPrefix(strings.TrimPrefix(target, "http://"), "https://")
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		host, port = target, "80"
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		}
		if tls {
			port = "443"
		}
	}
	if host == "" || !ValidPort(port) || strings.ContainsAny(host, "/ []") {
		return "", "", false
	}
	return host, port, true
}

// ICMPHost parses a target of the icmp prober: a host name or an IP
// address (bracketed or not), without a port.
func ICMPHost(target string) (string, bool) {
	host := target
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "" || strings.ContainsAny(host, "/ \t[]") {
		return "", false
	}
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", false // host:port or garbage
	}
	return host, true
}

// Websocket parses a target of the websocket prober: a ws:// or wss://
// URL with a host.
func Websocket(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Hostname() == "" {
		return nil, fmt.Errorf("target %q is not a ws:// or wss:// URL", target)
	}
	return u, nil
}

// Check says what is wrong with target for a module of the prober kind
// (one of Probers); nil when the prober accepts
// it. An unknown kind is an error.
func Check(prober, target string) error {
	if strings.TrimSpace(target) == "" {
		return errors.New("target must be set")
	}
	switch prober {
	case "http", "http_steps":
		_, err := HTTP(target)
		return err
	case "tcp":
		if _, _, ok := TCP(target); !ok {
			return fmt.Errorf("target %q is not host:port", target)
		}
	case "dns":
		if _, _, ok := DNS(target, "53"); !ok {
			return fmt.Errorf("target %q is not a DNS server's host[:port]", target)
		}
	case "grpc":
		if _, _, ok := GRPC(target, false); !ok {
			return fmt.Errorf("target %q is not host[:port]", target)
		}
	case "icmp":
		if _, ok := ICMPHost(target); !ok {
			return fmt.Errorf("target %q is not a host name or IP address (without a port)", target)
		}
	case "unix":
		// The path of a unix socket: any non-empty string.
	case "websocket":
		_, err := Websocket(target)
		return err
	default:
		return fmt.Errorf("unknown prober %q", prober)
	}
	return nil
}
