package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths of the target server. Every path answers 200 unless switched down.
const (
	pathDemo        = "/"             // the http_demo module's page (deploy/exporter.yml)
	pathHealthy     = "/-/healthy"    // the exporters' canary
	pathOutage      = "/outage"       // served over HTTPS; fails for everyone
	pathOneLocation = "/one-location" // fails for fra's source address only
	pathBlind       = "/blind"        // fails for fra; sfo has no module for it
	pathSlow        = "/slow"         // answers after slowDelay
	pathMaintained  = "/maintained"   // fails for everyone inside a maintenance window
)

// demoBody is what the http_demo module of deploy/exporter.yml requires.
const demoBody = "vantage demo target"

// certLifetime is how long the target's certificate is valid: long enough
// that none of the certificate alerts of rules/ is pending.
const certLifetime = 45 * 24 * time.Hour

// targetServer serves the checked targets over HTTP and HTTPS. A path can
// be switched down (503) for every client or for one client address, and
// the trace IDs of the traceparent headers it receives are recorded.
type targetServer struct {
	httpBase, httpsBase string
	caFile              string    // PEM of the HTTPS certificate, for the exporters' tls_config
	notAfter            time.Time // the HTTPS certificate's expiry

	mu      sync.Mutex
	down    map[string]string          // path → "*" or the one client address it fails for
	traceIn map[string]map[string]bool // path → trace IDs (and trace/span IDs) seen in traceparent headers
}

func startTargetServer(t *testing.T, dir string) *targetServer {
	t.Helper()
	ts := &targetServer{down: map[string]string{}, traceIn: map[string]map[string]bool{}}
	cert, certPEM, notAfter := mustSelfSignedCert(t)
	ts.notAfter = notAfter
	ts.caFile = filepath.Join(dir, "target-ca.pem")
	writeFile(t, ts.caFile, string(certPEM))

	plain := mustListen(t)
	secure := tls.NewListener(mustListen(t), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	for _, l := range []net.Listener{plain, secure} {
		srv := &http.Server{Handler: ts, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	ts.httpBase = "http://" + plain.Addr().String()
	ts.httpsBase = "https://" + secure.Addr().String()
	return ts
}

// set switches path down for failFor ("*": every client; else one client
// address), or back up with "".
func (ts *targetServer) set(path, failFor string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if failFor == "" {
		delete(ts.down, path)
		return
	}
	ts.down[path] = failFor
}

// tracesSeen returns the trace IDs that requests for path carried, and
// each trace ID/parent span ID pair.
func (ts *targetServer) tracesSeen(path string) map[string]bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := map[string]bool{}
	for id := range ts.traceIn[path] {
		out[id] = true
	}
	return out
}

func (ts *targetServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	ts.mu.Lock()
	// traceparent: version-traceid-spanid-flags (W3C Trace Context).
	if parts := strings.Split(r.Header.Get("traceparent"), "-"); len(parts) == 4 {
		if ts.traceIn[r.URL.Path] == nil {
			ts.traceIn[r.URL.Path] = map[string]bool{}
		}
		// The trace, and the span the request carried as its parent.
		ts.traceIn[r.URL.Path][parts[1]] = true
		ts.traceIn[r.URL.Path][parts[1]+"/"+parts[2]] = true
	}
	failFor, isDown := ts.down[r.URL.Path]
	ts.mu.Unlock()

	if isDown && (failFor == "*" || failFor == host) {
		http.Error(w, "switched down by the end-to-end test", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case pathSlow:
		select {
		case <-time.After(slowDelay):
		case <-r.Context().Done():
			return
		}
	case pathDemo:
		fmt.Fprintf(w, "<h1>%s</h1>\n", demoBody)
		return
	}
	fmt.Fprintln(w, "ok")
}

// mustSelfSignedCert makes a certificate for 127.0.0.1 that is its own CA.
func mustSelfSignedCert(t *testing.T) (tls.Certificate, []byte, time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Whole seconds: probe_ssl_earliest_cert_expiry has second precision.
	notAfter := time.Now().Add(certLifetime).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vantage e2e target"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM, notAfter
}
