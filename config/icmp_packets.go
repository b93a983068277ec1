package config

import (
	"time"

	"github.com/vantageprobe/vantage/internal/yamldoc"
)

// Bounds of the multi-packet icmp options.
const (
	// MaxICMPPackets bounds the echo requests of one probe, and so the
	// round-trip times it keeps.
	MaxICMPPackets = 1000
	// MinPacketInterval is the shortest wait between two echo requests,
	// as ping's unprivileged minimum is not far from it.
	MinPacketInterval = 10 * time.Millisecond
	// DefaultPacketInterval is the wait between two echo requests when
	// packet_interval is not set, as smokeping_prober's and ping's.
	DefaultPacketInterval = time.Second
)

// Interval is the wait between two echo requests of a probe.
func (p ICMPProbe) Interval() time.Duration {
	if p.PacketInterval > 0 {
		return p.PacketInterval
	}
	return DefaultPacketInterval
}

// validatePackets checks packets and packet_interval; the module's timeout,
// when set, must leave time to send every packet.
func (p *ICMPProbe) validatePackets(path []any, timeout time.Duration) error {
	if p.Packets < 0 || p.Packets > MaxICMPPackets {
		return yamldoc.Fail(yamldoc.At(path, "packets"), "packets must be between 1 and %d, got %d", MaxICMPPackets, p.Packets)
	}
	if p.PacketInterval != 0 {
		if p.Packets <= 1 {
			return yamldoc.Fail(yamldoc.At(path, "packet_interval"), "packet_interval needs packets greater than 1")
		}
		if p.PacketInterval < MinPacketInterval {
			return yamldoc.Fail(yamldoc.At(path, "packet_interval"), "packet_interval must be at least %s, got %s", MinPacketInterval, p.PacketInterval)
		}
	}
	if send := time.Duration(p.Packets-1) * p.Interval(); p.Packets > 1 && timeout > 0 && send >= timeout {
		key := "packet_interval"
		if p.PacketInterval == 0 {
			key = "packets"
		}
		return yamldoc.Fail(yamldoc.At(path, key), "%d packets %s apart take %s to send, not less than the module's timeout of %s",
			p.Packets, p.Interval(), send, timeout)
	}
	return nil
}
