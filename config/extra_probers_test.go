package config

import "testing"

// TestLoadInvalidExtraProbers asserts the messages of the rules of the
// probers and options blackbox_exporter does not have: multi-packet icmp,
// the TCP retry of truncated DNS answers, and http_steps.
func TestLoadInvalidExtraProbers(t *testing.T) {
	for file, want := range map[string]string{
		"dns-retry-truncated-tcp": `:7: modules.dns_tcp.dns.retry_truncated_over_tcp: retry_truncated_over_tcp applies to transport_protocol: udp only`,
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
