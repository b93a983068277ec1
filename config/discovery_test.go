package config

import (
	"maps"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	yaml "go.yaml.in/yaml/v3"
)

// The scrape configurations of blackbox_exporter's README, each as a
// targets group: the discovery and relabel_configs blocks are pasted
// unchanged; the module, which Prometheus passes as params, is the
// group's.
const blackboxREADMEGroups = `
targets:
  - name: blackbox
    module: http_2xx
    static_configs:
      - targets:
        - http://prometheus.io    # Target to probe with http.
        - https://prometheus.io   # Target to probe with https.
        - http://example.com:8080 # Target to probe with http on port 8080.
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:9115  # The blackbox exporter's real hostname:port.
  - name: blackbox_all
    module: http_2xx
    dns_sd_configs:
      - names:
          - example.com
          - prometheus.io
        type: A
        port: 443
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
        replacement: https://$1/  # Make probe URL be like https://1.2.3.4:443/
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:9115  # The blackbox exporter's real hostname:port.
      - source_labels: [__meta_dns_name]
        target_label: __param_hostname  # Make domain name become 'Host' header for probe requests
      - source_labels: [__meta_dns_name]
        target_label: vhost  # and store it in 'vhost' label
`

func mustParseConfig(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse([]byte(targetsModules+text), "vantage.yml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBlackboxREADMERelabeling(t *testing.T) {
	c := mustParseConfig(t, blackboxREADMEGroups)
	if got := c.DiscoveryGroupNames(); len(got) != 2 || got[0] != "blackbox" || got[1] != "blackbox_all" {
		t.Fatalf("groups with discovery = %v", got)
	}

	// static_configs: the target is the listed address, the exporter's
	// address that relabeling writes into __address__ is ignored, and
	// instance (Prometheus's name of the scrape) is no label of the check.
	static, ok := c.DiscoveryConfigs()["blackbox"][0].(discovery.StaticConfig)
	if !ok {
		t.Fatalf("static_configs decoded as %T", c.DiscoveryConfigs()["blackbox"][0])
	}
	got, err := c.ResolveDiscovered("blackbox", static)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://prometheus.io", "https://prometheus.io", "http://example.com:8080"}
	if len(got) != len(want) {
		t.Fatalf("resolved %d targets, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Target != w || g.Module != "http_2xx" || g.Interval != DefaultSchedulerConfig.Interval || g.Timeout != 5*time.Second || len(g.Labels) != 0 || g.Hostname != "" {
			t.Errorf("target %d = %+v, want %s with module http_2xx, the default interval, no labels", i, g, w)
		}
	}

	// dns_sd_configs: the groups as the dns mechanism sends them for two
	// A records; the probe URL, the hostname parameter and the vhost label
	// come out of the README's relabeling.
	found := []*targetgroup.Group{
		{Source: "example.com", Targets: []model.LabelSet{{
			model.AddressLabel: "192.0.2.10:443", "__meta_dns_name": "example.com", "__meta_dns_srv_record_target": "",
		}}},
		{Source: "prometheus.io", Targets: []model.LabelSet{{
			model.AddressLabel: "192.0.2.20:443", "__meta_dns_name": "prometheus.io",
		}}},
	}
	got, err = c.ResolveDiscovered("blackbox_all", found)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("resolved %+v", got)
	}
	for i, w := range []struct{ target, host string }{{"https://192.0.2.10:443/", "example.com"}, {"https://192.0.2.20:443/", "prometheus.io"}} {
		g := got[i]
		if g.Target != w.target || g.Hostname != w.host || !maps.Equal(g.Labels, map[string]string{"vhost": w.host}) {
			t.Errorf("target %d = %+v, want %s with hostname and vhost %s", i, g, w.target, w.host)
		}
	}
}

func TestResolveDiscovered(t *testing.T) {
	c := mustParseConfig(t, `
targets:
  - name: inventory
    labels: {team: web}
    static_configs: [{targets: [placeholder]}]
    relabel_configs:
      - source_labels: [__meta_drop]
        regex: "yes"
        action: drop
`)
	group := func(ls ...model.LabelSet) []*targetgroup.Group {
		return []*targetgroup.Group{{Source: "s", Targets: ls, Labels: model.LabelSet{"env": "prod"}}}
	}
	got, err := c.ResolveDiscovered("inventory", group(
		model.LabelSet{model.AddressLabel: "a:1", ParamModuleLabel: "tcp_connect", ScrapeIntervalLabel: "7s", "team": "db", "__meta_x": "y"},
		model.LabelSet{model.AddressLabel: "b:1", ParamModuleLabel: "tcp_connect", "__meta_drop": "yes"},
		model.LabelSet{model.AddressLabel: "a:1", ParamModuleLabel: "tcp_connect", "team": "other"},
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("resolved %+v, want a:1 only (b:1 dropped by relabeling, the second a:1 a duplicate)", got)
	}
	if g := got[0]; g.Target != "a:1" || g.Module != "tcp_connect" || g.Interval != 7*time.Second || g.Timeout != 7*time.Second ||
		!maps.Equal(g.Labels, map[string]string{"team": "db", "env": "prod"}) {
		t.Errorf("resolved %+v", g)
	}

	for _, tc := range []struct {
		name string
		ls   model.LabelSet
		want string
	}{
		{"no module", model.LabelSet{model.AddressLabel: "a:1"}, `no module: set the group's module or the __param_module label`},
		{"unknown module", model.LabelSet{model.AddressLabel: "a:1", ParamModuleLabel: "ftp"}, `unknown module "ftp"`},
		{"reserved label", model.LabelSet{model.AddressLabel: "a:1", ParamModuleLabel: "tcp_connect", "le": "1"}, `label name "le" is reserved`},
		{"interval below the timeout", model.LabelSet{model.AddressLabel: "a:1", ParamModuleLabel: "http_2xx", ScrapeIntervalLabel: "2s"}, `interval 2s is shorter than the timeout 5s of module "http_2xx"`},
		{"bad interval", model.LabelSet{model.AddressLabel: "a:1", ParamModuleLabel: "tcp_connect", ScrapeIntervalLabel: "soon"}, `invalid __scrape_interval__ "soon"`},
		{"bad failure_threshold", model.LabelSet{model.AddressLabel: "a:1", ParamModuleLabel: "tcp_connect", "failure_threshold": "x"}, `label failure_threshold must be a non-negative whole number`},
		{"no address", model.LabelSet{ParamModuleLabel: "tcp_connect"}, `neither __param_target nor __address__ is set after relabeling`},
	} {
		_, err := c.ResolveDiscovered("inventory", group(tc.ls))
		if err == nil {
			t.Errorf("%s: resolved without error", tc.name)
			continue
		}
		// The error names where the group is configured, the group and
		// the source that discovered the target.
		if !strings.HasPrefix(err.Error(), "vantage.yml:10: inventory: target ") || !strings.Contains(err.Error(), "discovered by s: "+tc.want) {
			t.Errorf("%s: error %q, want it at vantage.yml:10 ending in %q", tc.name, err, tc.want)
		}
	}
}

func TestDiscoveryConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, config, want string
	}{
		{
			name:   "relabeling without discovery",
			config: "targets:\n  - module: http_2xx\n    targets: [a]\n    relabel_configs: [{target_label: x, replacement: y}]\n",
			want:   `vantage.yml:11: targets[0].relabel_configs: relabel_configs applies to discovered targets: the group needs a discovery block (static_configs, consul_sd_configs, dns_sd_configs, file_sd_configs, http_sd_configs, kubernetes_sd_configs)`,
		},
		{
			name:   "unknown key in an SD block",
			config: "targets:\n  - module: http_2xx\n    http_sd_configs:\n      - url: http://127.0.0.1:1/sd\n        refresh: 1s\n",
			want:   `vantage.yml:12: targets[0].http_sd_configs[0]: unknown key "refresh"`,
		},
		{
			name:   "http_sd URL",
			config: "targets:\n  - module: http_2xx\n    http_sd_configs:\n      - url: ftp://127.0.0.1/sd\n",
			want:   `vantage.yml:11: targets[0].http_sd_configs[0].url: URL scheme must be 'http' or 'https'`,
		},
		{
			name:   "dns_sd without names",
			config: "targets:\n  - module: tcp_connect\n    dns_sd_configs:\n      - type: SRV\n",
			want:   `vantage.yml:11: targets[0].dns_sd_configs[0].type: DNS-SD config must contain at least one SRV record name`,
		},
		{
			name:   "relabel action",
			config: "targets:\n  - module: http_2xx\n    static_configs: [{targets: [a]}]\n    relabel_configs:\n      - action: explode\n",
			want:   `vantage.yml:12: targets[0].relabel_configs[0].action: unknown relabel action "explode"`,
		},
		{
			name:   "relabel target label",
			config: "targets:\n  - module: http_2xx\n    static_configs: [{targets: [a]}]\n    relabel_configs:\n      - {source_labels: [a], target_label: 'x-y'}\n",
			want:   `vantage.yml:12: targets[0].relabel_configs[0]: "x-y" is invalid 'target_label' for replace action`,
		},
		{
			name:   "group name twice",
			config: "targets:\n  - name: a\n    static_configs: [{targets: [a]}]\n  - name: a\n    static_configs: [{targets: [b]}]\n",
			want:   `vantage.yml:11: targets[1].name: group name "a" is used twice`,
		},
		{
			name:   "reserved group label",
			config: "targets:\n  - static_configs: [{targets: [a]}]\n    labels: {job: x}\n",
			want:   `vantage.yml:10: targets[0].labels.job: label name "job" is reserved`,
		},
		{
			name:   "unknown group module",
			config: "targets:\n  - module: nope\n    static_configs: [{targets: [a]}]\n",
			want:   `vantage.yml:9: targets[0].module: unknown module "nope"`,
		},
		{
			name:   "no targets and no discovery",
			config: "targets:\n  - module: http_2xx\n",
			want:   `vantage.yml:9: targets[0].targets: targets must list at least one target`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(targetsModules+tc.config), "vantage.yml")
			if err == nil {
				t.Fatal("parsed without error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestDiscoveryFilesRelativeToTheConfig(t *testing.T) {
	path := mustTargetsDir(t, targetsModules+"targets:\n  - module: http_2xx\n    file_sd_configs: [{files: [sd/*.json]}]\n", nil)
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSuffix(path, "vantage.yml") + "sd/*.json"; !strings.Contains(string(out), want) {
		t.Errorf("file_sd_configs files not made relative to the configuration's directory (want %s):\n%s", want, out)
	}
}

// TestREADMEBlackboxWalkthrough checks the README's walkthrough: its
// targets group has the blackbox job's discovery and relabeling blocks
// unchanged, and checks the job's targets with its module and interval.
func TestREADMEBlackboxWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "### From a blackbox scrape config to vantage")
	if !ok {
		t.Fatal("README.md has no walkthrough from a blackbox scrape config")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for _, part := range strings.Split(section, "```yaml\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		blocks = append(blocks, block)
	}
	if len(blocks) != 2 {
		t.Fatalf("want the scrape config and the targets group, found %d YAML blocks", len(blocks))
	}
	var prom struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	var vantage struct {
		Targets []map[string]any `yaml:"targets"`
	}
	if err := yaml.Unmarshal([]byte(blocks[0]), &prom); err != nil || len(prom.ScrapeConfigs) != 1 {
		t.Fatalf("the scrape config: %v", err)
	}
	if err := yaml.Unmarshal([]byte(blocks[1]), &vantage); err != nil || len(vantage.Targets) != 1 {
		t.Fatalf("the targets group: %v", err)
	}
	job, group := prom.ScrapeConfigs[0], vantage.Targets[0]
	for _, key := range []string{"static_configs", "relabel_configs"} {
		if !reflect.DeepEqual(job[key], group[key]) {
			t.Errorf("%s differs:\n  job:   %v\n  group: %v", key, job[key], group[key])
		}
	}

	c := mustParseConfig(t, blocks[1])
	got, err := c.ResolveDiscovered("blackbox", c.DiscoveryConfigs()["blackbox"][0].(discovery.StaticConfig))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("resolved %+v", got)
	}
	for i, want := range []string{"https://a.example", "https://b.example"} {
		if g := got[i]; g.Target != want || g.Module != "http_2xx" || g.Interval != 30*time.Second || len(g.Labels) != 0 {
			t.Errorf("target %d = %+v, want %s, http_2xx, 30s, no labels", i, g, want)
		}
	}
}
