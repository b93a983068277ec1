package prober

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"sync"

	promconfig "github.com/prometheus/common/config"
)

// maxIdleChains bounds the chains a module keeps between probes, over all
// TLS server names.
const maxIdleChains = 64

// clientChains builds and keeps the round-tripper chains of one http module
// with prometheus/common's NewRoundTripperFromConfig: authorization, basic
// auth, OAuth2 (with its token cache), http_headers, the proxy and the TLS
// configuration (CA, certificate and key files read again when they
// change), ending in a net/http Transport without keep-alives whose dial is
// the probe's (dialProbe).
//
// A chain serves one probe at a time: a probe takes one for each TLS server
// name it needs and gives it back when it ends. Concurrent probes never
// share a Transport, so no probe's request can take a connection another
// probe dialed (net/http pools HTTP/2 connections by host and port), and
// every probe measures its own connection. Chains are kept between probes,
// up to maxIdleChains, so a probe does not read the CA again or fetch a new
// OAuth2 token.
type clientChains struct {
	cfg promconfig.HTTPClientConfig

	mu    sync.Mutex
	idle  map[string][]http.RoundTripper // by TLS server name
	nIdle int
}

func newClientChains(cc promconfig.HTTPClientConfig) (*clientChains, error) {
	// The probe's http.Client decides whether redirects are followed
	// (no_follow_redirects overrides follow_redirects); the chain only
	// needs to know that they may be, to keep sensitive http_headers off
	// redirects to other hosts.
	cc.FollowRedirects = true
	c := &clientChains{cfg: cc, idle: map[string][]http.RoundTripper{}}
	// Build the module's first chain now: a CA that does not load fails
	// the module, not its first probe.
	_, release, err := c.take(cc.TLSConfig.ServerName)
	if err != nil {
		return nil, err
	}
	release()
	return c, nil
}

// take returns a chain whose TLS asks for serverName ("": the URL's host)
// and the function that gives it back.
func (c *clientChains) take(serverName string) (http.RoundTripper, func(), error) {
	c.mu.Lock()
	var rt http.RoundTripper
	if l := c.idle[serverName]; len(l) > 0 {
		rt = l[len(l)-1]
		if len(l) == 1 {
			delete(c.idle, serverName)
		} else {
			c.idle[serverName] = l[:len(l)-1]
		}
		c.nIdle--
	}
	c.mu.Unlock()
	if rt == nil {
		cfg := c.cfg
		cfg.TLSConfig.ServerName = serverName
		var err error
		rt, err = promconfig.NewRoundTripperFromConfig(cfg, "http_probe",
			promconfig.WithDialContextFunc(dialProbe), promconfig.WithKeepAlivesDisabled())
		if err != nil {
			return nil, nil, fmt.Errorf("http: %w", err)
		}
	}
	return rt, func() { c.put(serverName, rt) }, nil
}

// put gives a chain back after its probe. Closing its idle connections
// ends what the probe left: dials still in flight after a failed request,
// an HTTP/2 connection dialed but not used.
func (c *clientChains) put(serverName string, rt http.RoundTripper) {
	if ci, ok := rt.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nIdle >= maxIdleChains {
		return
	}
	c.idle[serverName] = append(c.idle[serverName], rt)
	c.nIdle++
}

// dialProbe is the dial of the chains' transports. A probe's request dials
// through its probe (resolved address, source address, destinations guard,
// deadline); an OAuth2 token request belongs to no probe and dials as
// net/http would.
func dialProbe(ctx context.Context, network, addr string) (net.Conn, error) {
	if st, ok := ctx.Value(probeStateKey{}).(*probeState); ok {
		return st.dial(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// hasClientOptions reports whether cc sets anything beyond follow_redirects
// and enable_http2: authentication, headers, TLS, a proxy, or an option
// added to prometheus/common later. Such a module's requests all go through
// its chain; the others may take the direct path for plain HTTP.
func hasClientOptions(cc promconfig.HTTPClientConfig) bool {
	plain := promconfig.HTTPClientConfig{FollowRedirects: cc.FollowRedirects, EnableHTTP2: cc.EnableHTTP2}
	return !reflect.DeepEqual(cc, plain)
}

// errSecretRef refuses secret references: prometheus/common resolves a
// *_ref only through a secret manager given by the program, and neither
// vantage nor blackbox_exporter has one.
var errSecretRef = errors.New("secret references (*_ref) are not supported: there is no secret manager to resolve them; give the secret inline or as a file")

// checkClientSecrets checks the module's secrets as it loads: a *_ref is
// refused and a secret file must be readable, each error naming its field.
// The chain reads the files again on every request, so a rotated secret is
// used from the next probe on.
func checkClientSecrets(cc promconfig.HTTPClientConfig) error {
	type secret struct {
		field     string
		file, ref string
	}
	secrets := []secret{{"bearer_token_file", cc.BearerTokenFile, ""}}
	if a := cc.Authorization; a != nil {
		secrets = append(secrets, secret{"authorization.credentials", a.CredentialsFile, a.CredentialsRef})
	}
	if b := cc.BasicAuth; b != nil {
		secrets = append(secrets,
			secret{"basic_auth.username", b.UsernameFile, b.UsernameRef},
			secret{"basic_auth.password", b.PasswordFile, b.PasswordRef})
	}
	tlsSecrets := func(prefix string, t promconfig.TLSConfig) {
		secrets = append(secrets,
			secret{prefix + "tls_config.ca", "", t.CARef},
			secret{prefix + "tls_config.cert", "", t.CertRef},
			secret{prefix + "tls_config.key", "", t.KeyRef})
	}
	tlsSecrets("", cc.TLSConfig)
	if o := cc.OAuth2; o != nil {
		secrets = append(secrets,
			secret{"oauth2.client_secret", o.ClientSecretFile, o.ClientSecretRef},
			secret{"oauth2.client_certificate_key", o.ClientCertificateKeyFile, o.ClientCertificateKeyRef})
		tlsSecrets("oauth2.", o.TLSConfig)
	}
	if cc.HTTPHeaders != nil {
		for name, h := range cc.HTTPHeaders.Headers {
			for _, f := range h.Files {
				secrets = append(secrets, secret{fmt.Sprintf("http_headers.%s.files", name), f, ""})
			}
		}
	}
	for _, s := range secrets {
		if s.file == "" && s.ref == "" {
			continue
		}
		if _, err := secretReader("", s.file, s.ref); err != nil {
			return fmt.Errorf("http.%s: %w", s.field, err)
		}
	}
	return nil
}
