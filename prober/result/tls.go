package result

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// TLSDetails is what a probe learned of the target's TLS session.
type TLSDetails struct {
	Version            string    `json:"version"`
	Cipher             string    `json:"cipher"`
	EarliestCertExpiry time.Time `json:"earliest_cert_expiry"`
	LastChainExpiry    time.Time `json:"last_chain_expiry"`
	FingerprintSHA256  string    `json:"fingerprint_sha256"`
	Subject            string    `json:"subject"`
	Issuer             string    `json:"issuer"`
	SubjectAlternative string    `json:"subject_alternative"`
	SerialNumber       string    `json:"serial_number"`
}

// NewTLSDetails reads a completed handshake's state.
func NewTLSDetails(state tls.ConnectionState) *TLSDetails {
	d := &TLSDetails{
		Version: tls.VersionName(state.Version),
		Cipher:  tls.CipherSuiteName(state.CipherSuite),
	}
	for _, cert := range state.PeerCertificates {
		if d.EarliestCertExpiry.IsZero() || cert.NotAfter.Before(d.EarliestCertExpiry) {
			d.EarliestCertExpiry = cert.NotAfter
		}
	}
	// The latest of the verified chains' earliest expiries: when the last
	// valid chain stops being valid.
	for _, chain := range state.VerifiedChains {
		var earliest time.Time
		for _, cert := range chain {
			if earliest.IsZero() || cert.NotAfter.Before(earliest) {
				earliest = cert.NotAfter
			}
		}
		if earliest.After(d.LastChainExpiry) {
			d.LastChainExpiry = earliest
		}
	}
	if len(state.PeerCertificates) > 0 {
		l := describeLeaf(state.PeerCertificates[0])
		d.FingerprintSHA256, d.Subject, d.Issuer = l.fingerprint, l.subject, l.issuer
		d.SubjectAlternative, d.SerialNumber = l.subjectAlternative, l.serialNumber
	}
	return d
}

// leafStrings are the series' strings of a leaf certificate, all read from
// its DER bytes (raw).
type leafStrings struct {
	raw                              []byte
	fingerprint, subject, issuer     string
	subjectAlternative, serialNumber string
}

// lastLeaf is the latest leaf described: a target checked again and again
// shows the same certificate, whose strings (a SHA-256 and two formatted
// names, 2% of an https check) are then not computed again.
var lastLeaf atomic.Pointer[leafStrings]

func describeLeaf(leaf *x509.Certificate) *leafStrings {
	if l := lastLeaf.Load(); l != nil && bytes.Equal(l.raw, leaf.Raw) {
		return l
	}
	sum := sha256.Sum256(leaf.Raw)
	l := &leafStrings{
		raw:                leaf.Raw,
		fingerprint:        hex.EncodeToString(sum[:]),
		subject:            leaf.Subject.String(),
		issuer:             leaf.Issuer.String(),
		subjectAlternative: strings.Join(leaf.DNSNames, ","),
		// The serial's big-endian bytes in hex, as blackbox_exporter
		// prints them: a leading zero of the first byte is kept.
		serialNumber: fmt.Sprintf("%x", leaf.SerialNumber.Bytes()),
	}
	lastLeaf.Store(l)
	return l
}

func (d *TLSDetails) samples(e emitter) {
	e.gauge("probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime", unixSeconds(d.EarliestCertExpiry))
	e.gauge("probe_ssl_last_chain_expiry_timestamp_seconds", "Returns last SSL chain expiry in timestamp", unixSeconds(d.LastChainExpiry))
	e.gauge("probe_ssl_last_chain_info", "Contains SSL leaf certificate information", 1,
		"fingerprint_sha256", d.FingerprintSHA256, "issuer", d.Issuer, "serialnumber", d.SerialNumber,
		"subject", d.Subject, "subjectalternative", d.SubjectAlternative)
	e.gauge("probe_tls_version_info", "Returns the TLS version used or NaN when unknown", 1, "version", d.Version)
	e.gauge("probe_tls_cipher_info", "Returns the TLS cipher negotiated during handshake", 1, "cipher", d.Cipher)
}
