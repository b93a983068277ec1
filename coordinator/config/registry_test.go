package config

import (
	"testing"
	"time"
)

func TestRegistryAndTokens(t *testing.T) {
	doc := coordinatorLocations + `registry:
  modules:
    http_2xx: {prober: http, timeout: 5s}
    ssh: {prober: tcp}
  default_interval: 30s
api_tokens:
  - name: ci
    token_file: tokens/ci
    scopes: [read, write]
    owner: team-a
  - name: exporters
    token_file: /etc/vantage/report
    scopes: [report, read]
`
	c, err := ParseCoordinator([]byte(doc), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Registry.Modules["http_2xx"]; m.Prober != "http" || m.Timeout != 5*time.Second {
		t.Errorf("registry.modules.http_2xx = %+v", m)
	}
	if c.Registry.DefaultInterval != 30*time.Second || c.Registry.MaxMonitors != DefaultRegistry.MaxMonitors {
		t.Errorf("registry = %+v", c.Registry)
	}
	if !c.HasModule("fra", "ssh") || c.HasModule("fra", "icmp") || c.HasModule("nowhere", "ssh") {
		t.Error("HasModule: every location has every registry module when it lists none")
	}
	if len(c.APITokens) != 2 || c.APITokens[0].Owner != "team-a" || c.APITokens[1].Scopes[0] != ScopeReport {
		t.Errorf("api_tokens = %+v", c.APITokens)
	}
	c.setTokenDirectory("/conf")
	if c.APITokens[0].TokenFile != "/conf/tokens/ci" || c.APITokens[1].TokenFile != "/etc/vantage/report" {
		t.Errorf("token files = %q, %q; want the relative one under the configuration's directory", c.APITokens[0].TokenFile, c.APITokens[1].TokenFile)
	}

	perLocation := "locations:\n  - name: ams\n    url: http://a:1\n    modules: [ssh]\n  - name: fra\n    url: http://b:1\nregistry:\n  modules:\n    http_2xx: {prober: http}\n    ssh: {prober: tcp}\n"
	c, err = ParseCoordinator([]byte(perLocation), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.HasModule("ams", "http_2xx") || !c.HasModule("ams", "ssh") || !c.HasModule("fra", "http_2xx") {
		t.Error("HasModule: a location that lists modules has those only")
	}
	if d := DefaultCoordinator(); !d.HasModule("local", "http_2xx") || d.Registry.Modules["tcp_connect"].Prober != "tcp" {
		t.Errorf("the default configuration's registry = %+v, want the exporter's default modules", d.Registry)
	}
}

func TestRegistryAndTokensInvalid(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{coordinatorLocations + "registry:\n  modules:\n    ftp: {prober: ftp}\n", `c.yml:10: registry.modules.ftp.prober: module "ftp": unknown prober "ftp" (known: http, tcp, dns, icmp, grpc, unix, websocket, http_steps)`},
		{coordinatorLocations + "registry:\n  modules:\n    web: {prober: http, timeout: -1s}\n", `c.yml:10: registry.modules.web.timeout: module "web": timeout must not be negative, got -1s`},
		{coordinatorLocations + "registry:\n  modules:\n    web: {prober: http, tls: true}\n", `c.yml:10: registry.modules.web: unknown key "tls"`},
		{coordinatorLocations + "registry:\n  default_interval: 500ms\n", `c.yml:9: registry.default_interval: default_interval must be at least 1s, got 500ms`},
		{coordinatorLocations + "registry:\n  max_monitors: 0\n", `c.yml:9: registry.max_monitors: max_monitors must be at least 1, got 0`},
		{"locations:\n  - name: ams\n    url: http://a:1\n    modules: [web]\n  - name: fra\n    url: http://b:1\nregistry:\n  modules:\n    ssh: {prober: tcp}\n", `c.yml:4: locations[0].modules[0]: location "ams" lists module "web", which registry.modules does not define (defined: ssh)`},
		{coordinatorLocations + "api_tokens:\n  - name: a b\n    token_file: t\n    scopes: [read]\n", `c.yml:9: api_tokens[0].name: invalid token name "a b": 1 to 128 letters, digits, '_', '.', ':', '@' and '-', starting with a letter or digit`},
		{coordinatorLocations + "api_tokens:\n  - name: ci\n    scopes: [read]\n", `c.yml:9: api_tokens[0].token_file: token_file of token "ci" must be set`},
		{coordinatorLocations + "api_tokens:\n  - name: ci\n    token_file: t\n", `c.yml:9: api_tokens[0].scopes: token "ci" has no scopes (known: read, write, report)`},
		{coordinatorLocations + "api_tokens:\n  - name: ci\n    token_file: t\n    scopes: [read, admin]\n", `c.yml:11: api_tokens[0].scopes[1]: unknown scope "admin" (known: read, write, report)`},
		{coordinatorLocations + "api_tokens:\n  - name: ci\n    token_file: t\n    scopes: [read]\n    owner: 'a b'\n", `c.yml:12: api_tokens[0].owner: invalid owner "a b": 1 to 128 letters, digits, '_', '.', ':', '@' and '-', starting with a letter or digit`},
		{coordinatorLocations + "api_tokens:\n  - name: ci\n    token_file: t\n    scopes: [read]\n  - name: ci\n    token_file: u\n    scopes: [write]\n", `c.yml:12: api_tokens[1].name: token "ci" is listed twice (also api_tokens[0])`},
		{coordinatorLocations + "api_tokens:\n  - name: ci\n    file: t\n", `c.yml:10: api_tokens[0]: unknown key "file"`},
	} {
		_, err := ParseCoordinator([]byte(tc.doc), "c.yml")
		if err == nil || err.Error() != tc.want {
			t.Errorf("document\n%s\ngot  %v\nwant %s", tc.doc, err, tc.want)
		}
	}
}
