package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/vantageprobe/vantage/prober/result"
)

// maxHostNameLen is the longest DNS name in its text form, without the
// trailing dot (RFC 1035 section 2.3.4).
const maxHostNameLen = 253

// resolver is the name resolver every prober uses; tests may point it at an
// in-process DNS server.
var resolver = net.DefaultResolver

// resolveTarget resolves host to one IP address honouring the module's
// preferred IP protocol ("ip4", "ip6" or "" for ip6) and fallback, records the
// lookup in r.Resolve and as the "resolve" phase, and on failure marks r
// failed with dns_error. With a guard (the module's destinations), host is
// checked before it is resolved and the address after, and the address
// chosen is the first the guard allows; a denied host or address fails r
// with destination_denied.
func resolveTarget(ctx context.Context, g *destinationGuard, host, preferred string, fallback bool, r *result.Result, logger *slog.Logger) (net.IP, bool) {
	if n := len(strings.TrimSuffix(host, ".")); n > maxHostNameLen {
		// No DNS name is this long: fail without asking a resolver, with
		// the series of a failed lookup (the name is left out of them).
		r.Resolve = &result.ResolveDetails{}
		r.SetPhase("resolve", 0)
		logger.Error("Target host name too long", "bytes", n)
		r.Fail(result.ReasonInvalidTarget, "target host name is %d bytes long; a DNS name has at most %d", n, maxHostNameLen)
		return nil, false
	}
	r.Resolve = &result.ResolveDetails{Host: host}
	r.SetPhase("resolve", 0) // a literal address resolves in no time
	if err := g.checkHost(host); err != nil {
		logger.Error("Target host denied", "target", host, "err", err)
		r.Fail(result.ReasonDestinationDenied, "%v", err)
		return nil, false
	}
	want, other := 6, 4
	if preferred == "ip4" {
		want, other = 4, 6
	}
	if ip := net.ParseIP(host); ip != nil {
		// A literal address: no lookup, and the family is the address's own.
		fam := familyOf(ip)
		if fam != want && !fallback {
			r.Fail(result.ReasonInvalidTarget, "address %s is not IPv%d and ip_protocol_fallback is off", host, want)
			return nil, false
		}
		r.Resolve.IP, r.Resolve.IPProtocol = ip.String(), fam
		if err := g.checkIP(ip); err != nil {
			logger.Error("Target address denied", "target", host, "err", err)
			r.Fail(result.ReasonDestinationDenied, "%v", err)
			return nil, false
		}
		return ip, true
	}
	logger.Debug("Resolving target address", "target", host, "ip_protocol", fmt.Sprintf("ip%d", want))
	start := time.Now()
	ip, fam, err := lookup(ctx, g, host, want, other, fallback)
	end := time.Now()
	r.Resolve.Lookup = end.Sub(start)
	r.RecordPhase("resolve", start, end)
	if isDestinationDenied(err) {
		logger.Error("Target address denied", "target", host, "ip", ip.String(), "err", err)
		r.Resolve.IP, r.Resolve.IPProtocol = ip.String(), fam
		r.Fail(result.ReasonDestinationDenied, "resolving %s: %v", host, err)
		return nil, false
	}
	if err != nil {
		logger.Error("Resolution with IP protocol failed", "target", host, "err", err)
		if ctx.Err() != nil {
			r.Fail(result.ReasonTimeout, "resolving %s: %v", host, err)
		} else {
			r.Fail(result.ReasonDNSError, "resolving %s: %v", host, err)
		}
		return nil, false
	}
	r.Resolve.IP, r.Resolve.IPProtocol = ip.String(), fam
	logger.Debug("Resolved target address", "target", host, "ip", ip.String())
	return ip, true
}

// lookup resolves host and returns the first address of family want (then,
// with fallback, of family other) that g allows. When g allows none of
// them, it returns the first with g's error.
func lookup(ctx context.Context, g *destinationGuard, host string, want, other int, fallback bool) (net.IP, int, error) {
	var first net.IP
	var firstErr error
	// allowed reports whether ip is the one, keeping the first denial.
	allowed := func(ip net.IP) bool {
		err := g.checkIP(ip)
		if err != nil && firstErr == nil {
			first, firstErr = ip, err
		}
		return err == nil
	}
	if !fallback {
		ips, err := resolver.LookupIP(ctx, fmt.Sprintf("ip%d", want), host)
		if err != nil {
			return nil, 0, err
		}
		for _, ip := range ips {
			if allowed(ip) {
				return ip, want, nil
			}
		}
	} else {
		addrs, err := resolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, 0, err
		}
		for _, fam := range []int{want, other} {
			for _, a := range addrs {
				if familyOf(a.IP) == fam && allowed(a.IP) {
					return a.IP, fam, nil
				}
			}
		}
	}
	if firstErr != nil {
		return first, familyOf(first), firstErr
	}
	return nil, 0, errors.New("no addresses found")
}

func familyOf(ip net.IP) int {
	if ip.To4() != nil {
		return 4
	}
	return 6
}

// dialer returns a dialer bound to sourceIP when one is configured, which
// checks every address it connects to with g when the module has one.
func dialer(sourceIP string, g *destinationGuard) *net.Dialer {
	d := &net.Dialer{}
	if sourceIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(sourceIP)}
	}
	if g != nil {
		d.Control = g.control
	}
	return d
}

// connectReason classifies a connection error.
func connectReason(ctx context.Context, err error) result.Reason {
	var dnsErr *net.DNSError
	var ne net.Error
	switch {
	case isDestinationDenied(err):
		return result.ReasonDestinationDenied
	case errors.As(err, &dnsErr):
		return result.ReasonDNSError
	case isRefused(err):
		return result.ReasonConnectRefused
	case ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return result.ReasonConnectTimeout
	}
	return result.ReasonConnectError
}
