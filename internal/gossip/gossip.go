// Package gossip is the memberlist setup both programs share: the
// --cluster.* network flags and their validation, the transport, the
// advertised address, joining the configured peers again after a
// partition, and named broadcasts. What the members say to each other is
// the caller's (exporter/cluster, coordinator/peers).
package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/hashicorp/memberlist"
)

// Options are the network side of a member, as the --cluster.* flags set
// them (Alertmanager's names).
type Options struct {
	// ListenAddress is the host:port gossip binds to (TCP and UDP).
	ListenAddress string
	// AdvertiseAddress is the host:port the other members reach this one
	// at; empty: the listen address when it names a host, else this
	// host's private IP with the listen port.
	AdvertiseAddress string
	// Peers are host:port addresses of members to join; a name that
	// resolves to several addresses joins each.
	Peers []string
	// The intervals of memberlist.
	GossipInterval    time.Duration
	PushPullInterval  time.Duration
	ProbeInterval     time.Duration
	ProbeTimeout      time.Duration
	TCPTimeout        time.Duration
	ReconnectInterval time.Duration
}

// DefaultOptions returns memberlist's LAN intervals, and a reconnect
// every 10s.
func DefaultOptions() Options {
	lan := memberlist.DefaultLANConfig()
	return Options{
		GossipInterval:    lan.GossipInterval,
		PushPullInterval:  lan.PushPullInterval,
		ProbeInterval:     lan.ProbeInterval,
		ProbeTimeout:      lan.ProbeTimeout,
		TCPTimeout:        lan.TCPTimeout,
		ReconnectInterval: 10 * time.Second,
	}
}

// AddFlags registers the --cluster.* network flags on app, defaulting to
// o's values. members says who gossips ("this location's exporters"),
// off what an empty listen address means.
func AddFlags(app *kingpin.Application, o *Options, members, off string) {
	app.Flag("cluster.listen-address", "Listen address (host:port, TCP and UDP) for the gossip cluster of "+members+". Empty: "+off).StringVar(&o.ListenAddress)
	app.Flag("cluster.advertise-address", "Address (host:port) the other members reach this one at. Empty: the listen address, or this host's private IP when it binds every address.").StringVar(&o.AdvertiseAddress)
	app.Flag("cluster.peer", "Initial peer (host:port) of the cluster; repeatable; a name that resolves to several addresses joins each.").StringsVar(&o.Peers)
	app.Flag("cluster.gossip-interval", "Interval between gossip messages.").Default(o.GossipInterval.String()).DurationVar(&o.GossipInterval)
	app.Flag("cluster.pushpull-interval", "Interval between full state syncs with a random member.").Default(o.PushPullInterval.String()).DurationVar(&o.PushPullInterval)
	app.Flag("cluster.probe-interval", "Interval between failure-detection probes of a random member.").Default(o.ProbeInterval.String()).DurationVar(&o.ProbeInterval)
	app.Flag("cluster.probe-timeout", "Time to wait for a probe's acknowledgement before the member is suspected.").Default(o.ProbeTimeout.String()).DurationVar(&o.ProbeTimeout)
	app.Flag("cluster.tcp-timeout", "Timeout of the TCP connections of state syncs and large messages.").Default(o.TCPTimeout.String()).DurationVar(&o.TCPTimeout)
	app.Flag("cluster.reconnect-interval", "Interval between attempts to join the --cluster.peer members that are not in the cluster.").Default(o.ReconnectInterval.String()).DurationVar(&o.ReconnectInterval)
}

// Validate checks the addresses and intervals of a member that listens.
func (o *Options) Validate() error {
	if o.ListenAddress == "" {
		return nil
	}
	addrs := append([]string{o.ListenAddress}, o.Peers...)
	if o.AdvertiseAddress != "" {
		addrs = append(addrs, o.AdvertiseAddress)
	}
	for _, a := range addrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return fmt.Errorf("cluster address %q is not host:port", a)
		}
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"gossip-interval", o.GossipInterval}, {"pushpull-interval", o.PushPullInterval}, {"probe-interval", o.ProbeInterval},
		{"probe-timeout", o.ProbeTimeout}, {"tcp-timeout", o.TCPTimeout}, {"reconnect-interval", o.ReconnectInterval},
	} {
		if d.d <= 0 {
			return fmt.Errorf("--cluster.%s must be positive, got %s", d.name, d.d)
		}
	}
	return nil
}

// Config builds memberlist's LAN configuration for o: the transport bound
// to the listen address, the advertised address, the intervals and the
// logger. The member's name is its advertised host:port unless the
// caller sets another. On error nothing is left listening; the caller
// must shut the returned transport down if memberlist.Create fails.
func Config(o Options, logger *slog.Logger) (*memberlist.Config, memberlist.Transport, error) {
	bindHost, bindPort, err := splitHostPort("--cluster.listen-address", o.ListenAddress)
	if err != nil {
		return nil, nil, err
	}
	advHost, advPort, err := advertise(o.AdvertiseAddress, bindHost, bindPort)
	if err != nil {
		return nil, nil, err
	}
	mlLogger := slog.NewLogLogger(logger.With("component", "memberlist").Handler(), slog.LevelDebug)
	t, err := newTransport(bindHost, bindPort, mlLogger)
	if err != nil {
		return nil, nil, fmt.Errorf("--cluster.listen-address %s: %w", o.ListenAddress, err)
	}
	cfg := memberlist.DefaultLANConfig()
	cfg.Transport = t
	cfg.BindAddr, cfg.BindPort = bindHost, t.GetAutoBindPort()
	if advPort == 0 {
		advPort = cfg.BindPort
	}
	cfg.AdvertiseAddr, cfg.AdvertisePort = advHost, advPort
	cfg.Name = net.JoinHostPort(advHost, strconv.Itoa(advPort))
	cfg.GossipInterval, cfg.PushPullInterval = o.GossipInterval, o.PushPullInterval
	cfg.ProbeInterval, cfg.ProbeTimeout, cfg.TCPTimeout = o.ProbeInterval, o.ProbeTimeout, o.TCPTimeout
	cfg.Logger = mlLogger
	return cfg, t, nil
}

// Join joins the configured peers that are not members on the roster,
// resolving their names again each time; self is this member's address.
func Join(ml *memberlist.Memberlist, roster *Roster, peers []string, self string, logger *slog.Logger) {
	if len(peers) == 0 {
		return
	}
	live := roster.addresses()
	var addrs []string
	for _, p := range resolvePeers(peers, logger) {
		if !live[p] && p != self {
			addrs = append(addrs, p)
		}
	}
	if len(addrs) == 0 {
		return
	}
	n, err := ml.Join(addrs)
	if err != nil {
		logger.Warn("Joining cluster peers failed", "peers", addrs, "joined", n, "err", err)
		return
	}
	logger.Info("Joined cluster peers", "peers", addrs, "joined", n)
}

// resolvePeers turns host:port peers into address:port ones; a name that
// resolves to several addresses gives each.
func resolvePeers(peers []string, logger *slog.Logger) []string {
	var out []string
	for _, p := range peers {
		host, port, err := net.SplitHostPort(p)
		if err != nil {
			continue // validated by the options
		}
		if net.ParseIP(host) != nil {
			out = append(out, p)
			continue
		}
		ips, err := net.LookupHost(host)
		if err != nil {
			logger.Warn("Resolving a cluster peer failed", "peer", p, "err", err)
			continue
		}
		for _, ip := range ips {
			out = append(out, net.JoinHostPort(ip, port))
		}
	}
	return out
}

// Broadcast is one queued message; a newer one of the same name replaces
// it in memberlist's TransmitLimitedQueue.
type Broadcast struct {
	Key string
	Msg []byte
}

// Name implements memberlist.NamedBroadcast.
func (b *Broadcast) Name() string { return b.Key }

// Message implements memberlist.Broadcast.
func (b *Broadcast) Message() []byte { return b.Msg }

// Finished implements memberlist.Broadcast.
func (b *Broadcast) Finished() {}

// Invalidates implements memberlist.Broadcast.
func (b *Broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*Broadcast)
	return ok && o.Key == b.Key
}

func splitHostPort(flag, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%s %q: invalid port", flag, addr)
	}
	return host, p, nil
}

// advertise decides the address the other members reach this one at.
func advertise(addr, bindHost string, bindPort int) (string, int, error) {
	if addr != "" {
		host, port, err := splitHostPort("--cluster.advertise-address", addr)
		if err != nil {
			return "", 0, err
		}
		if net.ParseIP(host) == nil {
			ips, err := net.LookupHost(host)
			if err != nil || len(ips) == 0 {
				return "", 0, fmt.Errorf("--cluster.advertise-address %q does not resolve: %v", addr, err)
			}
			host = ips[0]
		}
		return host, port, nil
	}
	if ip := net.ParseIP(bindHost); ip != nil && !ip.IsUnspecified() {
		return bindHost, bindPort, nil
	}
	ip, err := privateIP()
	if err != nil {
		return "", 0, fmt.Errorf("--cluster.listen-address %s binds every address: set --cluster.advertise-address (%w)", net.JoinHostPort(bindHost, strconv.Itoa(bindPort)), err)
	}
	return ip, bindPort, nil
}

// privateIP is the first private IPv4 address of this host's interfaces.
func privateIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsPrivate() {
			return n.IP.String(), nil
		}
	}
	host, _ := os.Hostname()
	return "", errors.New("no private IPv4 address on " + host)
}

// Leave announces that this member leaves (waiting at most timeout) and
// stops memberlist.
func Leave(ml *memberlist.Memberlist, timeout time.Duration, logger *slog.Logger) {
	if err := ml.Leave(timeout); err != nil {
		logger.Warn("Leaving the cluster failed", "err", err)
	}
	if err := ml.Shutdown(); err != nil {
		logger.Warn("Stopping the cluster member failed", "err", err)
	}
}
