package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// clientReport is what the `client` subcommand prints: its own work over
// the measurement window, read from /proc/self.
type clientReport struct {
	Seconds   float64  `json:"seconds"`
	Load      loadSnap `json:"load"`
	CPU       float64  `json:"cpu_seconds"`
	UserCPU   float64  `json:"user_cpu_seconds"`
	HWMBytes  int64    `json:"hwm_bytes"`
	Errors    []string `json:"errors"`
	StartedAt int64    `json:"started_at_unix_nano"`
}

// clientMain is the `client` subcommand: the least a program can do to
// check targets over HTTP. One fresh connection per GET (no keep-alive),
// the body read and discarded, no metrics, no timing.
func clientMain(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	rate := fs.Float64("rate", 5000, "requests per second")
	conc := fs.Int("concurrency", 10000, "most requests outstanding at once")
	warmup := fs.Duration("warmup", 5*time.Second, "load before the window")
	window := fs.Duration("window", 30*time.Second, "measurement window")
	addrs := fs.String("addrs", "", "comma-separated farm host:port list")
	n := fs.Int("targets", 50000, "distinct target URLs")
	ca := fs.String("ca", "", "PEM file of the targets' CA: GET https:// URLs, a full TLS handshake each (no session cache), HTTP/2 offered as vantage's default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	farm := strings.Split(*addrs, ",")
	urls := make([]string, *n)
	for i := range urls {
		urls[i] = targetURL(farm, i, "")
	}
	transport := &http.Transport{DisableKeepAlives: true}
	if *ca != "" {
		tc, err := caTLSConfig(*ca)
		if err != nil {
			return err
		}
		transport.TLSClientConfig = tc
		transport.Protocols = new(http.Protocols)
		transport.Protocols.SetHTTP1(true)
		transport.Protocols.SetHTTP2(true)
		for i, u := range urls {
			urls[i] = "https://" + strings.TrimPrefix(u, "http://")
		}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: transport}
	get := func(i int64) error {
		resp, err := client.Get(urls[i%int64(len(urls))])
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c loadCounters
	go openLoop(ctx, *rate, *conc, &c, get)
	time.Sleep(*warmup)
	l0, p0, t0 := c.snap(), mustProc(os.Getpid()), time.Now()
	time.Sleep(*window)
	l1, p1, t1 := c.snap(), mustProc(os.Getpid()), time.Now()
	cancel()
	rep := clientReport{
		Seconds:   t1.Sub(t0).Seconds(),
		Load:      l1.sub(l0),
		CPU:       p1.cpuSeconds() - p0.cpuSeconds(),
		UserCPU:   float64(p1.UserTicks-p0.UserTicks) / clockTicks,
		HWMBytes:  p1.HWMBytes,
		Errors:    c.errs.top(5),
		StartedAt: t0.UnixNano(),
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	return json.NewEncoder(w).Encode(rep)
}

// caTLSConfig trusts the CA certificates of a PEM file and nothing else.
func caTLSConfig(path string) (*tls.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool}, nil
}

func mustProc(pid int) procSnap {
	p, err := readProc(pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	return p
}
