package coordinator

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/confirm"
)

// A location may be several exporters sharing its targets (a cluster):
// its urls, or one url whose host name resolves to several addresses.
// The coordinator reaches the location through any live member: a check
// goes to the next member when one cannot tell, and the location is
// healthy while at least one member is.

// memberResolveTTL is how long a location's resolved member addresses are
// used before the name is resolved again.
const memberResolveTTL = 10 * time.Second

// members resolves the locations' member URLs and keeps what the status
// polls saw of each member.
type members struct {
	resolver *net.Resolver

	mu       sync.Mutex
	resolved map[string]resolvedURLs // configured url → its members
	seen     map[string][]MemberView // location → its members at the latest poll
}

type resolvedURLs struct {
	urls    []string
	expires time.Time
}

// MemberView is one member of a location as the latest status poll saw it.
type MemberView struct {
	URL     string `json:"url"`
	Healthy bool   `json:"healthy"`
	Error   string `json:"error,omitempty"`
	// Name is the member's name in its cluster, and Members the live
	// members it sees (itself included); empty for a lone exporter.
	Name    string   `json:"name,omitempty"`
	Members []string `json:"members,omitempty"`
}

func newMembers() *members {
	return &members{resolver: net.DefaultResolver, resolved: map[string]resolvedURLs{}, seen: map[string][]MemberView{}}
}

// urls returns the base URLs of a location's members: urls as
// configured; one url whose host is a name resolving to several
// addresses gives one URL per address (the same port and path). A name
// that does not resolve stays as it is: the request then says why.
func (m *members) urls(ctx context.Context, configured []string) []string {
	if len(configured) != 1 {
		return configured
	}
	raw := configured[0]
	m.mu.Lock()
	r, ok := m.resolved[raw]
	m.mu.Unlock()
	if ok && time.Now().Before(r.expires) {
		return r.urls
	}
	out := configured
	if u, err := url.Parse(raw); err == nil && net.ParseIP(u.Hostname()) == nil {
		if addrs, err := m.resolver.LookupHost(ctx, u.Hostname()); err == nil && len(addrs) > 1 {
			slices.Sort(addrs)
			out = make([]string, len(addrs))
			for i, a := range addrs {
				mu := *u
				mu.Host = net.JoinHostPort(a, u.Port())
				if u.Port() == "" {
					mu.Host = a
					if net.ParseIP(a).To4() == nil {
						mu.Host = "[" + a + "]"
					}
				}
				out[i] = mu.String()
			}
		}
	}
	m.mu.Lock()
	m.resolved[raw] = resolvedURLs{urls: out, expires: time.Now().Add(memberResolveTTL)}
	m.mu.Unlock()
	return out
}

// checkMembers asks a location's members in turn until one can tell: a
// location counts as unknown only when none could.
func (v *verifier) checkMembers(ctx context.Context, name string, urls []string, key confirm.Key, timeout time.Duration) checkAnswer {
	var a checkAnswer
	for _, u := range urls {
		a = v.check(ctx, name, u, key, timeout)
		if a.Result != confirm.OutcomeUnknown || ctx.Err() != nil {
			return a
		}
	}
	return a
}

// pollMembers reads the status of every member of a location: the
// location's contact is a healthy member's, else a reachable one's, else
// the members' errors together.
func (c *Coordinator) pollMembers(ctx context.Context, location string, configured []string, timeout time.Duration) contact {
	urls := c.members.urls(ctx, configured)
	contacts := make([]contact, len(urls))
	views := make([]MemberView, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			ct, st := c.pollLocation(ctx, u, timeout)
			contacts[i] = ct
			views[i] = MemberView{URL: u, Healthy: ct.healthy(), Error: ct.err}
			if st != nil {
				views[i].Name, views[i].Members = st.Member, st.Members
			}
			if ct.reachable && !ct.healthy() {
				views[i].Error = api.ErrCanaryFailing.Error()
			}
		})
	}
	wg.Wait()
	c.members.mu.Lock()
	c.members.seen[location] = views
	c.members.mu.Unlock()
	best := -1
	var errs []error
	for i, ct := range contacts {
		switch {
		case ct.healthy():
			return ct
		case ct.reachable && best < 0:
			best = i
		case !ct.reachable:
			errs = append(errs, errors.New(urls[i]+": "+ct.err))
		}
	}
	if best >= 0 {
		return contacts[best]
	}
	if len(urls) == 1 {
		return contacts[0]
	}
	return contact{err: errors.Join(errs...).Error()}
}

// healthy: the member answered and its canary, when it sent one, passes.
func (ct *contact) healthy() bool {
	return ct.reachable && (ct.canaryOK == nil || *ct.canaryOK)
}

// locationView is a location's health with the members seen.
type locationView struct {
	LocationView
	Members []MemberView `json:"members,omitempty"`
}

// withMembers adds the members the latest status polls saw.
func (m *members) withMembers(views []LocationView) []locationView {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]locationView, len(views))
	for i, v := range views {
		out[i] = locationView{LocationView: v, Members: m.seen[v.Name]}
	}
	return out
}
