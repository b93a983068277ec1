package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// protoFarmInfo tells where the protocol farm's servers listen.
type protoFarmInfo struct {
	TCP   []string `json:"tcp"`   // host:port listeners that accept and close
	DNS   []string `json:"dns"`   // host:port UDP DNS servers
	HTTPS []string `json:"https"` // host:port HTTPS servers (HTTP/1.1 and HTTP/2)
	CA    string   `json:"ca"`    // PEM file of the HTTPS servers' certificate
	// Control serves /stats: the answers given so far (TCP accepts, DNS
	// answers, HTTPS responses).
	Control string `json:"control"`
	PID     int    `json:"pid"`
}

// Addresses of the protocol farm; the HTTP farm has 127.0.1.x.
const (
	protoTCPIP   = "127.0.6.1"
	protoDNSIP   = "127.0.7.1"
	protoHTTPSIP = "127.0.4.1"
	// protoQueryName is the name the DNS servers answer with an A record.
	protoQueryName = "bench.vantage.test."
)

// protoFarmMain is the `protofarm` subcommand: TCP listeners that accept
// and close, miekg/dns servers over UDP, and HTTPS servers with a
// certificate of their own, all on loopback. It prints its protoFarmInfo
// as one JSON line and serves until SIGTERM.
func protoFarmMain(args []string) error {
	fs := flag.NewFlagSet("protofarm", flag.ContinueOnError)
	tcpN := fs.Int("tcp", 1000, "TCP listeners (one per distinct tcp target)")
	dnsN := fs.Int("dns", 1000, "UDP DNS servers (one per distinct dns target)")
	httpsN := fs.Int("https", 4, "HTTPS listeners")
	dir := fs.String("dir", os.TempDir(), "directory for the certificate file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	info := protoFarmInfo{PID: os.Getpid()}
	var served atomic.Int64
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for range *tcpN {
		l, err := net.Listen("tcp4", protoTCPIP+":0")
		if err != nil {
			return fmt.Errorf("tcp listener: %w", err)
		}
		closers = append(closers, l)
		info.TCP = append(info.TCP, l.Addr().String())
		go acceptAndClose(l, &served)
	}
	for range *dnsN {
		pc, err := net.ListenPacket("udp4", protoDNSIP+":0")
		if err != nil {
			return fmt.Errorf("dns listener: %w", err)
		}
		srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			answerA(w, q)
			served.Add(1)
		})}
		closers = append(closers, pc)
		info.DNS = append(info.DNS, pc.LocalAddr().String())
		go func() { _ = srv.ActivateAndServe() }()
	}
	cert, caPEM, err := selfSignedCert(net.ParseIP(protoHTTPSIP))
	if err != nil {
		return err
	}
	info.CA = filepath.Join(*dir, "protofarm-ca.pem")
	if err := os.WriteFile(info.CA, caPEM, 0o644); err != nil {
		return err
	}
	for range *httpsN {
		l, err := net.Listen("tcp4", protoHTTPSIP+":0")
		if err != nil {
			return fmt.Errorf("https listener: %w", err)
		}
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, "ok\n")
				served.Add(1)
			}),
			ReadHeaderTimeout: 10 * time.Second,
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		}
		closers = append(closers, srv)
		info.HTTPS = append(info.HTTPS, l.Addr().String())
		go func() { _ = srv.ServeTLS(l, "", "") }()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("control listener: %w", err)
	}
	info.Control = l.Addr().String()
	control := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(farmStats{Served: served.Load()})
	})}
	closers = append(closers, control)
	go func() { _ = control.Serve(l) }()
	return announceAndServe(info)
}

// acceptAndClose is a TCP service whose only answer is the handshake.
func acceptAndClose(l net.Listener, served *atomic.Int64) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		_ = c.Close()
		served.Add(1)
	}
}

// answerA answers every question with one A record, 127.0.0.1.
func answerA(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	for _, qq := range q.Question {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.IPv4(127, 0, 0, 1),
		})
	}
	_ = w.WriteMsg(m)
}

// selfSignedCert makes an ECDSA P-256 certificate for ip that is its own
// CA, and returns it with its PEM form for clients' ca_file.
func selfSignedCert(ip net.IP) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vantage bench"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{ip},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
