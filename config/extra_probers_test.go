package config

import "testing"

// TestLoadInvalidExtraProbers asserts the messages of the rules of the
// probers and options blackbox_exporter does not have: multi-packet icmp,
// the TCP retry of truncated DNS answers, and http_steps.
func TestLoadInvalidExtraProbers(t *testing.T) {
	for file, want := range map[string]string{
		"icmp-packets-too-many":        `:5: modules.icmp.icmp.packets: packets must be between 1 and 1000, got 5000`,
		"icmp-packet-interval-single":  `:5: modules.icmp.icmp.packet_interval: packet_interval needs packets greater than 1`,
		"icmp-packet-interval-short":   `:6: modules.icmp.icmp.packet_interval: packet_interval must be at least 10ms, got 1ms`,
		"icmp-packets-timeout":         `:6: modules.icmp.icmp.packets: 5 packets 1s apart take 4s to send, not less than the module's timeout of 3s`,
		"icmp-packet-interval-timeout": `:7: modules.icmp.icmp.packet_interval: 11 packets 500ms apart take 5s to send, not less than the module's timeout of 5s`,
		"dns-retry-truncated-tcp":      `:7: modules.dns_tcp.dns.retry_truncated_over_tcp: retry_truncated_over_tcp applies to transport_protocol: udp only`,
	} {
		t.Run(file, func(t *testing.T) {
			path := "testdata/invalid-" + file + ".yml"
			_, err := LoadFile(path)
			if err == nil {
				t.Fatalf("%s loaded without error", path)
			}
			if got, want := err.Error(), path+want; got != want {
				t.Errorf("wrong error\n got: %s\nwant: %s", got, want)
			}
		})
	}
}
