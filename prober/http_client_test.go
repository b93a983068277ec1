package prober

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/config"
)

// Tests of the client side of the http prober: redirects, request settings,
// authentication, proxies, source address.

func TestHTTPRedirects(t *testing.T) {
	var conns connCounter
	const hopDelay = 20 * time.Millisecond
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(hopDelay)
		switch r.URL.Path {
		case "/a":
			http.Redirect(w, r, "/b", http.StatusFound)
		case "/b":
			http.Redirect(w, r, "/final", http.StatusMovedPermanently)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			fmt.Fprint(w, "landed")
		}
	}))
	srv.Config.ConnState = conns.hook
	srv.Start()
	t.Cleanup(srv.Close)

	r := httpTestProbe(t, httpTestModule(nil), srv.URL+"/a", Params{}, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	if r.HTTP.Redirects != 2 || seriesOfResult(r)["probe_http_redirects"] != 2 {
		t.Errorf("redirects = %d, want 2", r.HTTP.Redirects)
	}
	if !strings.HasSuffix(r.HTTP.FinalURL, "/final") {
		t.Errorf("final URL %q", r.HTTP.FinalURL)
	}
	if n := conns.count(); n != 3 {
		t.Errorf("server saw %d connections for 3 round trips, want 3 fresh ones", n)
	}
	// Each of the 3 round trips waits hopDelay for its first byte; the
	// processing phase is summed over all of them.
	if p := r.PhaseDuration("processing"); p < 3*hopDelay {
		t.Errorf("processing = %v, want the sum over 3 round trips (>= %v)", p, 3*hopDelay)
	}
	if c := r.PhaseDuration("connect"); c <= 0 {
		t.Errorf("connect = %v", c)
	}

	t.Run("not followed", func(t *testing.T) {
		m := httpTestModule(func(p *config.HTTPProbe) { no := true; p.NoFollowRedirects = &no })
		r := httpTestProbe(t, m, srv.URL+"/a", Params{}, 5*time.Second)
		requireReason(t, r, result.ReasonStatusCode)
		if r.HTTP.StatusCode != http.StatusFound || r.HTTP.Redirects != 1 {
			t.Errorf("status %d redirects %d, want 302 and 1 (blackbox counts the redirect seen)", r.HTTP.StatusCode, r.HTTP.Redirects)
		}
		m = httpTestModule(func(p *config.HTTPProbe) {
			p.HTTPClientConfig.FollowRedirects = false
			p.ValidStatusCodes = []int{302}
		})
		requireReason(t, httpTestProbe(t, m, srv.URL+"/a", Params{}, 5*time.Second), result.ReasonNone)
	})
	t.Run("loop stops after 10", func(t *testing.T) {
		r := httpTestProbe(t, httpTestModule(nil), srv.URL+"/loop", Params{}, 5*time.Second)
		requireReason(t, r, result.ReasonStatusCode)
		if r.HTTP.Redirects != maxRedirects+1 {
			t.Errorf("redirects = %d, want %d", r.HTTP.Redirects, maxRedirects+1)
		}
	})
}

func TestHTTPRedirectToOtherHostResolves(t *testing.T) {
	useHTTPTestDNS(t, map[string]string{"web.vantage.test.": "127.0.0.1"})
	cert := newValidHTTPTestCert(t)
	var mu sync.Mutex
	var serverNames []string
	final := newHTTPTestTLSServer(t, cert, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		serverNames = append(serverNames, r.TLS.ServerName)
		mu.Unlock()
		fmt.Fprint(w, "final")
	}))
	first := newHTTPTestTLSServer(t, cert, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		serverNames = append(serverNames, r.TLS.ServerName)
		mu.Unlock()
		http.Redirect(w, r, "https://web.vantage.test:"+serverPort(t, final)+"/", http.StatusFound)
	}))
	// The first host's virtual host name (from the hostname parameter or
	// tls_config.server_name) is its SNI; a redirect to another host must
	// ask for that host's own name.
	for _, tc := range []struct {
		name       string
		serverName string
		params     Params
	}{
		{"hostname parameter", "", Params{Hostname: "vhost.vantage.test"}},
		{"tls_config.server_name", "vhost.vantage.test", Params{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			serverNames = nil
			mu.Unlock()
			m := httpTestModule(func(p *config.HTTPProbe) {
				p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
				p.HTTPClientConfig.TLSConfig.ServerName = tc.serverName
			})
			r := httpTestProbe(t, m, first.URL, tc.params, 5*time.Second)
			requireReason(t, r, result.ReasonNone)
			mu.Lock()
			defer mu.Unlock()
			if want := []string{"vhost.vantage.test", "web.vantage.test"}; !slices.Equal(serverNames, want) {
				t.Errorf("SNI per hop %v, want %v", serverNames, want)
			}
			if r.PhaseDuration("resolve") <= 0 {
				t.Error("the redirect's lookup is not in the resolve phase")
			}
			if r.Resolve.Lookup != 0 {
				t.Errorf("the literal first target has lookup %v", r.Resolve.Lookup)
			}
		})
	}
}

func TestHTTPRequestSettings(t *testing.T) {
	type seen struct {
		method, host, body, auth, contentType, userAgent, cookie string
	}
	var mu sync.Mutex
	var last seen
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last = seen{r.Method, r.Host, string(b), r.Header.Get("Authorization"), r.Header.Get("Content-Type"), r.UserAgent(), r.Header.Get("Cookie")}
		mu.Unlock()
	}))
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	os.WriteFile(bodyFile, []byte(`{"from":"file"}`), 0o600)
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("file-token\n"), 0o600)

	tests := []struct {
		name   string
		edit   func(*config.HTTPProbe)
		params Params
		want   seen
	}{
		{"post body and headers", func(p *config.HTTPProbe) {
			p.Method = "POST"
			p.Body = "payload"
			p.Headers = map[string]string{"Content-Type": "text/plain", "User-Agent": "custom/1"}
		}, Params{}, seen{method: "POST", body: "payload", contentType: "text/plain", userAgent: "custom/1"}},
		{"body file", func(p *config.HTTPProbe) { p.Method = "PUT"; p.BodyFile = bodyFile },
			Params{}, seen{method: "PUT", body: `{"from":"file"}`}},
		{"host header", func(p *config.HTTPProbe) { p.Headers = map[string]string{"host": "configured.example"} },
			Params{}, seen{method: "GET", host: "configured.example"}},
		{"hostname param wins over host header", func(p *config.HTTPProbe) { p.Headers = map[string]string{"Host": "configured.example"} },
			Params{Hostname: "param.example"}, seen{method: "GET", host: "param.example"}},
		{"basic auth", func(p *config.HTTPProbe) {
			p.HTTPClientConfig.BasicAuth = &promconfig.BasicAuth{Username: "user", Password: "pass"}
		}, Params{}, seen{method: "GET", auth: "Basic dXNlcjpwYXNz"}},
		{"bearer token", func(p *config.HTTPProbe) { p.HTTPClientConfig.BearerToken = "s3cret" },
			Params{}, seen{method: "GET", auth: "Bearer s3cret"}},
		{"bearer token file", func(p *config.HTTPProbe) { p.HTTPClientConfig.BearerTokenFile = tokenFile },
			Params{}, seen{method: "GET", auth: "Bearer file-token"}},
		{"authorization", func(p *config.HTTPProbe) {
			p.HTTPClientConfig.Authorization = &promconfig.Authorization{Type: "Token", Credentials: "abc"}
		}, Params{}, seen{method: "GET", auth: "Token abc"}},
		{"http_headers", func(p *config.HTTPProbe) {
			p.HTTPClientConfig.HTTPHeaders = &promconfig.Headers{Headers: map[string]promconfig.Header{
				"X-Unused": {}, "Cookie": {Values: []string{"a=b"}},
			}}
			p.Headers = map[string]string{"Content-Type": "from/http_headers-test"}
		}, Params{}, seen{method: "GET", contentType: "from/http_headers-test", cookie: "a=b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httpTestProbe(t, httpTestModule(tc.edit), srv.URL, tc.params, 5*time.Second)
			requireReason(t, r, result.ReasonNone)
			mu.Lock()
			got := last
			mu.Unlock()
			if tc.want.host == "" {
				tc.want.host = strings.TrimPrefix(srv.URL, "http://")
			}
			if tc.want.userAgent == "" {
				got.userAgent = ""
			}
			if got != tc.want {
				t.Errorf("server saw %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestHTTPPrepareErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name string
		edit func(*config.HTTPProbe)
		want string
	}{
		{"body_file", func(p *config.HTTPProbe) { p.BodyFile = missing }, "body_file"},
		{"bearer_token_file", func(p *config.HTTPProbe) { p.HTTPClientConfig.BearerTokenFile = missing }, "bearer_token_file"},
		{"ca_file", func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = missing }, "tls_config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Prepare("m", httpTestModule(tc.edit))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "missing") {
				t.Fatalf("Prepare error = %v, want one naming %s and the file", err, tc.want)
			}
		})
	}
}

func TestHTTPHostnameSetsSNI(t *testing.T) {
	cert := newValidHTTPTestCert(t)
	var mu sync.Mutex
	var sni, host string
	srv := newHTTPTestTLSServer(t, cert, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sni, host = r.TLS.ServerName, r.Host
		mu.Unlock()
	}))
	m := httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile })
	r := httpTestProbe(t, m, srv.URL, Params{Hostname: "web.vantage.test"}, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	mu.Lock()
	defer mu.Unlock()
	if sni != "web.vantage.test" || host != "web.vantage.test" {
		t.Errorf("SNI %q Host %q, want web.vantage.test for both", sni, host)
	}
}

func TestHTTPSourceIPAddress(t *testing.T) {
	var mu sync.Mutex
	var remote string
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remote = r.RemoteAddr
		mu.Unlock()
	}))
	m := httpTestModule(func(p *config.HTTPProbe) { p.SourceIPAddress = "127.0.0.2" })
	r := httpTestProbe(t, m, srv.URL, Params{}, 5*time.Second)
	if r.Reason == result.ReasonConnectError && strings.Contains(r.Error, "assign") {
		t.Skipf("127.0.0.2 is not usable here: %s", r.Error)
	}
	requireReason(t, r, result.ReasonNone)
	mu.Lock()
	defer mu.Unlock()
	if h, _, _ := net.SplitHostPort(remote); h != "127.0.0.2" {
		t.Errorf("server saw the probe from %q, want 127.0.0.2", remote)
	}
}

func TestHTTPProxy(t *testing.T) {
	var mu sync.Mutex
	var proxied string
	proxy := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied = r.URL.String()
		mu.Unlock()
		fmt.Fprint(w, "via proxy")
	}))
	u, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL := promconfig.URL{URL: u}
	for _, skip := range []bool{false, true} {
		m := httpTestModule(func(p *config.HTTPProbe) {
			p.HTTPClientConfig.ProxyURL = proxyURL
			p.SkipResolvePhaseWithProxy = skip
		})
		r := httpTestProbe(t, m, "http://127.0.0.1:1/behind-proxy", Params{}, 5*time.Second)
		requireReason(t, r, result.ReasonNone)
		mu.Lock()
		if proxied != "http://127.0.0.1:1/behind-proxy" {
			t.Errorf("proxy saw %q", proxied)
		}
		mu.Unlock()
		if (r.Resolve == nil) != skip {
			t.Errorf("skip_resolve_phase_with_proxy=%v: resolve details %+v", skip, r.Resolve)
		}
	}
}

func TestHTTPOAuth2(t *testing.T) {
	var mu sync.Mutex
	var tokenRequests int
	var auth string
	tokenSrv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokenRequests++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"oauth-token","token_type":"Bearer","expires_in":3600}`)
	}))
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = r.Header.Get("Authorization")
		mu.Unlock()
	}))
	m := httpTestModule(func(p *config.HTTPProbe) {
		p.HTTPClientConfig.OAuth2 = &promconfig.OAuth2{ClientID: "id", ClientSecret: "secret", TokenURL: tokenSrv.URL}
	})
	mod, err := Prepare("oauth", m)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r := mod.Probe(ctx, srv.URL, Params{})
		cancel()
		requireReason(t, r, result.ReasonNone)
	}
	mu.Lock()
	defer mu.Unlock()
	if auth != "Bearer oauth-token" {
		t.Errorf("Authorization = %q", auth)
	}
	if tokenRequests != 1 {
		t.Errorf("token endpoint asked %d times for 2 probes; the token is cached per module", tokenRequests)
	}
}
