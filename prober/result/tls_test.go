package result

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"testing"
	"time"
)

func mustLeaf(tb testing.TB, serial int64, name string) *x509.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// The strings of the latest leaf are reused for the same certificate and
// never given to another one.
func TestNewTLSDetailsLeafStrings(t *testing.T) {
	a, b := mustLeaf(t, 0x0a, "a.test"), mustLeaf(t, 0x0b, "b.test")
	want := func(c *x509.Certificate, serial string) {
		t.Helper()
		d := NewTLSDetails(tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}})
		sum := sha256.Sum256(c.Raw)
		if d.FingerprintSHA256 != hex.EncodeToString(sum[:]) || d.Subject != "CN="+c.Subject.CommonName ||
			d.SubjectAlternative != c.DNSNames[0] || d.SerialNumber != serial {
			t.Errorf("%s: got fingerprint %s, subject %q, SAN %q, serial %q", c.Subject.CommonName, d.FingerprintSHA256, d.Subject, d.SubjectAlternative, d.SerialNumber)
		}
	}
	for range 2 {
		want(a, "0a")
		want(a, "0a")
		want(b, "0b")
	}
}
