package prober

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/prober/result"
)

// chainDials returns how many connections the transports of
// prometheus/common's chains have dialed in this process, from
// go-conntrack's counter for the dialer the chains name "http_probe".
func chainDials(tb testing.TB) float64 {
	tb.Helper()
	fams, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "net_conntrack_dialer_conn_attempted_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "dialer_name" && l.GetValue() == "http_probe" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// A module with authentication sends plain HTTP through its chain, not the
// direct path, so every option of prometheus/common applies.
func TestHTTPAuthModuleTakesChain(t *testing.T) {
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	m := httpTestModule(func(p *config.HTTPProbe) {
		p.HTTPClientConfig.BasicAuth = &promconfig.BasicAuth{Username: "u", Password: "p"}
	})
	before := chainDials(t)
	r := httpTestProbe(t, m, srv.URL, Params{}, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	if got := chainDials(t) - before; got != 1 {
		t.Errorf("the chain dialed %v connections for one probe, want 1", got)
	}
	if r.PhaseDuration("connect") <= 0 || r.PhaseDuration("processing") <= 0 {
		t.Errorf("connect %v, processing %v: phases not measured through the chain", r.PhaseDuration("connect"), r.PhaseDuration("processing"))
	}
}

// Probes of one module to one host at the same time each open their own
// HTTP/2 connection and measure its connect and TLS phases: a chain serves
// one probe at a time, so no probe takes a connection another dialed.
func TestHTTPChainSameHostConcurrentProbes(t *testing.T) {
	cert := newValidHTTPTestCert(t)
	srv, conns := newCountingTLSServer(t, cert, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	mod, err := Prepare("same_host", httpTestModule(func(p *config.HTTPProbe) {
		p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
	}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				r := mod.Probe(ctx, srv.URL, Params{})
				cancel()
				if !r.Success || r.HTTP.Version != 2 {
					t.Errorf("probe: %s %s (version %v)", r.Reason, r.Error, r.HTTP.Version)
				}
				if r.PhaseDuration("connect") <= 0 || r.PhaseDuration("tls") <= 0 {
					t.Errorf("connect %v, tls %v: the probe did not dial its own connection", r.PhaseDuration("connect"), r.PhaseDuration("tls"))
				}
			}
		})
	}
	wg.Wait()
	if n := conns.count(); n != 40 {
		t.Errorf("40 probes opened %d connections", n)
	}
}

// A new CA written over ca_file is used from the next probe on, without
// preparing the module again.
func TestHTTPChainRereadsCAFile(t *testing.T) {
	first, second := newValidHTTPTestCert(t), newValidHTTPTestCert(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	copyFile := func(from string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(caFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(first.caFile)
	srv := newHTTPTestTLSServer(t, second, false, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	mod, err := Prepare("ca", httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = caFile }))
	if err != nil {
		t.Fatal(err)
	}
	probe := func() *result.Result {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return mod.Probe(ctx, srv.URL, Params{})
	}
	if r := probe(); r.Success {
		t.Fatal("a server whose certificate the CA did not sign passed")
	}
	copyFile(second.caFile)
	requireReason(t, probe(), result.ReasonNone)
}

// A secret file is read again on every probe: a rotated token is sent from
// the next probe on.
func TestHTTPChainSecretFileRotation(t *testing.T) {
	var mu sync.Mutex
	var auth string
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = r.Header.Get("Authorization")
		mu.Unlock()
	}))
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mod, err := Prepare("token", httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.BearerTokenFile = tokenFile }))
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"first", "second"} {
		if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		requireReason(t, mod.Probe(ctx, srv.URL, Params{}), result.ReasonNone)
		cancel()
		mu.Lock()
		if auth != "Bearer "+token {
			t.Errorf("Authorization %q, want Bearer %s", auth, token)
		}
		mu.Unlock()
	}
}

// Secret references need a secret manager, which neither vantage nor
// blackbox_exporter has: the module does not load, and the error names the
// field.
func TestHTTPSecretRefsRefused(t *testing.T) {
	tests := []struct {
		field string
		edit  func(*promconfig.HTTPClientConfig)
	}{
		{"http.basic_auth.password", func(c *promconfig.HTTPClientConfig) {
			c.BasicAuth = &promconfig.BasicAuth{Username: "u", PasswordRef: "vault/probe"}
		}},
		{"http.authorization.credentials", func(c *promconfig.HTTPClientConfig) {
			c.Authorization = &promconfig.Authorization{Type: "Bearer", CredentialsRef: "vault/probe"}
		}},
		{"http.oauth2.client_secret", func(c *promconfig.HTTPClientConfig) {
			c.OAuth2 = &promconfig.OAuth2{ClientID: "id", ClientSecretRef: "vault/probe", TokenURL: "http://127.0.0.1:1/token"}
		}},
		{"http.tls_config.ca", func(c *promconfig.HTTPClientConfig) { c.TLSConfig.CARef = "vault/ca" }},
		{"http.oauth2.tls_config.key", func(c *promconfig.HTTPClientConfig) {
			c.OAuth2 = &promconfig.OAuth2{ClientID: "id", ClientSecret: "s", TokenURL: "http://127.0.0.1:1/token",
				TLSConfig: promconfig.TLSConfig{KeyRef: "vault/key", CertFile: "cert.pem"}}
		}},
	}
	for _, tc := range tests {
		for _, http3 := range []bool{false, true} {
			_, err := Prepare("ref", httpTestModule(func(p *config.HTTPProbe) {
				p.EnableHTTP3 = http3
				tc.edit(&p.HTTPClientConfig)
			}))
			if err == nil || !strings.Contains(err.Error(), tc.field+": secret references (*_ref) are not supported") {
				t.Errorf("%s (http3 %v): error %v, want one naming the field and refusing the reference", tc.field, http3, err)
			}
		}
	}
}

// A chain that fails before its transport (an OAuth2 token error, a
// credentials file gone) fails the probe as config_error, without a request
// to the target.
func TestHTTPChainFailureBeforeTransport(t *testing.T) {
	var mu sync.Mutex
	targetRequests := 0
	srv := newHTTPTestServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		mu.Lock()
		targetRequests++
		mu.Unlock()
	}))
	tokenSrv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "token service down", http.StatusInternalServerError)
	}))
	tokenFile := filepath.Join(t.TempDir(), "token")
	modules := map[string]config.Module{
		"oauth2 token error": httpTestModule(func(p *config.HTTPProbe) {
			p.HTTPClientConfig.OAuth2 = &promconfig.OAuth2{ClientID: "id", ClientSecret: "s", TokenURL: tokenSrv.URL}
		}),
		"credentials file gone": httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.BearerTokenFile = tokenFile }),
	}
	for name, m := range modules {
		if err := os.WriteFile(tokenFile, []byte("t"), 0o600); err != nil {
			t.Fatal(err)
		}
		mod, err := Prepare("failing", m)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(tokenFile); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r := mod.Probe(ctx, srv.URL, Params{})
		cancel()
		if r.Reason != result.ReasonConfigError {
			t.Errorf("%s: reason %q (%s), want config_error", name, r.Reason, r.Error)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if targetRequests != 0 {
		t.Errorf("the target got %d requests", targetRequests)
	}
}

// Which modules loaded from YAML may take the direct path: those without
// client settings, whatever else they set.
func TestHTTPDirectPathOfYAMLModules(t *testing.T) {
	cfg, err := config.Parse([]byte(`
modules:
  http_2xx:
    prober: http
  plain_settings:
    prober: http
    http:
      method: POST
      headers: {Host: vhost.example, X-Probe: vantage}
      no_follow_redirects: true
      enable_http2: false
      valid_status_codes: [200, 204]
      fail_if_body_not_matches_regexp: [ok]
  basic_auth:
    prober: http
    http:
      basic_auth: {username: u, password: p}
  headers:
    prober: http
    http:
      http_headers:
        X-Token: {values: [v]}
  tls:
    prober: http
    http:
      tls_config: {insecure_skip_verify: true}
  proxy:
    prober: http
    http:
      proxy_url: http://127.0.0.1:3128
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"http_2xx": true, "plain_settings": true, "basic_auth": false, "headers": false, "tls": false, "proxy": false}
	for name, direct := range want {
		m := cfg.Modules[name]
		c, err := newHTTPClient(m.HTTP, m.Destinations)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.direct != direct {
			t.Errorf("%s: direct path %v, want %v", name, c.direct, direct)
		}
	}
}
