package collector

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/prober/result"
)

var updateGolden = flag.Bool("update", false, "rewrite the collector's golden expositions in testdata/")

// variedTable is a table of every prober's results, successful and
// failed, with labels that need escaping, thresholds, intervals, a row
// without a result, rows checked more than once and values whose text
// form is unusual (NaN, infinities, exponents).
func variedTable(tb testing.TB) *Table {
	tb.Helper()
	tab := NewTable(prometheus.NewRegistry())
	at := time.Unix(1_700_000_000, 250_000_000)
	expiry := time.Unix(2_000_000_000, 0)
	tlsDetails := &result.TLSDetails{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", EarliestCertExpiry: expiry,
		LastChainExpiry: expiry.Add(time.Hour), FingerprintSHA256: "ab12", Subject: `CN=a "quoted" \ name`,
		Issuer: "CN=Test CA", SubjectAlternative: "a.example,b.example", SerialNumber: "01"}
	hop := 61
	serial := uint32(2024010101)
	truncated := true

	type entry struct {
		row     Row
		results []*result.Result
		planned time.Time
	}
	httpOK := httpResult(true, 200)
	httpOK.Timeout = 4500 * time.Millisecond
	httpOK.TLS = tlsDetails
	httpOK.HTTP.SSL, httpOK.HTTP.Version, httpOK.HTTP.ContentLength = true, 2, -1
	httpOK.HTTP.LastModified = time.Unix(1_600_000_000, 0)
	httpBad := httpResult(false, 503)
	httpBad.HTTP.FailedDueToRegex, httpBad.HTTP.CELConfigured, httpBad.HTTP.FailedDueToCEL = true, true, true
	httpBad.Duration = time.Duration(math.MaxInt64)
	tcpOK := &result.Result{Prober: "tcp", Success: true, Duration: 1500 * time.Microsecond,
		Resolve: &result.ResolveDetails{Host: "db.example", IP: "::1", IPProtocol: 6, Lookup: 3 * time.Nanosecond},
		TCP:     &result.TCPDetails{StepsCompleted: 2, ExpectInfo: []result.ExpectLabel{{Name: "version", Value: "SSH-2.0 \"x\"\n\\"}}}}
	tcpBad := &result.Result{Prober: "tcp", Reason: result.ReasonConnectRefused, TCP: &result.TCPDetails{FailedDueToBytes: true}}
	unix := &result.Result{Prober: "unix", Success: true, Duration: time.Millisecond, TCP: &result.TCPDetails{FailedDueToRegex: true}}
	dnsOK := &result.Result{Prober: "dns", Success: true, Duration: 12 * time.Millisecond,
		Phases:  []result.Phase{{Name: "resolve", Duration: 0}, {Name: "connect", Duration: time.Microsecond}, {Name: "request", Duration: 11 * time.Millisecond}},
		Resolve: &result.ResolveDetails{Host: "ns.example", IP: "127.0.0.53", IPProtocol: 4},
		DNS:     &result.DNSDetails{Transport: "udp", QuerySucceeded: true, Rcode: "NOERROR", AnswerRRs: 3, AuthorityRRs: 1, Serial: &serial, TruncatedRetry: &truncated}}
	dnsBad := &result.Result{Prober: "dns", Reason: result.ReasonTimeout, Duration: 5 * time.Second, DNS: &result.DNSDetails{Transport: "tcp"}}
	icmp := &result.Result{Prober: "icmp", Success: true, Duration: 3 * time.Second,
		Phases:  []result.Phase{{Name: "resolve"}, {Name: "setup", Duration: 20 * time.Microsecond}, {Name: "rtt", Duration: 300 * time.Microsecond}},
		Resolve: &result.ResolveDetails{Host: "router.example", IP: "127.0.0.1", IPProtocol: 4},
		ICMP: &result.ICMPDetails{Socket: "raw", ReplyHopLimit: &hop, Packets: &result.ICMPPackets{Host: "router.example", IP: "127.0.0.1",
			Sent: 5, Duplicates: 1, RTTs: []time.Duration{80 * time.Microsecond, 300 * time.Microsecond, 2 * time.Millisecond, time.Second}}}}
	grpcOK := &result.Result{Prober: "grpc", Success: true, Duration: 4 * time.Millisecond,
		Phases: []result.Phase{{Name: "resolve"}, {Name: "check", Duration: 4 * time.Millisecond}},
		GRPC:   &result.GRPCDetails{Checked: true, SSL: true, ServingStatus: "SERVING"}}
	grpcBad := &result.Result{Prober: "grpc", Reason: result.ReasonConnectTimeout, GRPC: &result.GRPCDetails{StatusCode: 14}}
	ws := &result.Result{Prober: "websocket", Success: false, Reason: result.ReasonBodyMismatch, Duration: 7 * time.Millisecond,
		Websocket: &result.WebsocketDetails{StatusCode: 101, Upgraded: true, QueryConfigured: true, FailedDueToRegex: true}}
	steps := &result.Result{Prober: "http_steps", Success: false, Reason: result.ReasonStatusCode, Duration: 40 * time.Millisecond,
		Phases: []result.Phase{{Name: "connect", Duration: time.Millisecond}},
		HTTPSteps: &result.HTTPStepsDetails{Steps: []result.StepDetails{
			{Name: "login", Ran: true, Success: true, StatusCode: 200, Duration: 30 * time.Millisecond,
				Phases: []result.Phase{{Name: "connect", Duration: time.Millisecond}, {Name: "transfer", Duration: 2 * time.Millisecond}}},
			{Name: `cart "v2"`, Ran: true, StatusCode: 500, Duration: 10 * time.Millisecond},
			{Name: "checkout"},
		}}}
	weird := httpResult(true, 200)
	weird.Duration = time.Nanosecond
	weird.Phases = []result.Phase{{Name: "resolve", Duration: 1}, {Name: "connect", Duration: 123456789012345}}
	weird.HTTP.UncompressedBodyLength = 1 << 62
	weird.Resolve.IP = "not an address"

	entries := []entry{
		{Row{Module: "http_2xx", Target: `https://a.example/"q"\path` + "\nline", Interval: 15 * time.Second,
			Labels: []Label{{Name: "failure_threshold", Value: "3"}, {Name: "team", Value: `we"b\`}}, FailureThreshold: new(3.0)},
			[]*result.Result{httpBad, httpOK}, at},
		{Row{Module: "http_2xx", Target: "https://b.example", Interval: time.Minute}, []*result.Result{httpBad, httpBad}, at.Add(time.Second)},
		{Row{Module: "http_2xx", Target: "https://weird.example", FailureThreshold: new(math.Inf(1))}, []*result.Result{weird}, time.Unix(0, 1)},
		{Row{Module: "http_2xx", Target: "https://never.example", Interval: time.Minute}, nil, at},
		{Row{Module: "tcp_banner", Target: "db.example:22", Interval: 30 * time.Second, Labels: []Label{{Name: "env", Value: "prod"}}},
			[]*result.Result{tcpOK}, at},
		{Row{Module: "tcp_banner", Target: "db2.example:22", FailureThreshold: new(math.NaN())}, []*result.Result{tcpBad}, at},
		{Row{Module: "unix_socket", Target: "/run/app.sock"}, []*result.Result{unix}, at},
		{Row{Module: "dns_soa", Target: "127.0.0.53:53", Interval: 10 * time.Second}, []*result.Result{dnsOK}, at},
		{Row{Module: "dns_soa", Target: "127.0.0.54:53"}, []*result.Result{dnsBad, dnsBad, dnsOK, dnsBad}, at},
		{Row{Module: "icmp", Target: "router.example", Interval: 5 * time.Second}, []*result.Result{icmp}, at},
		{Row{Module: "grpc_health", Target: "svc.example:443"}, []*result.Result{grpcOK}, at},
		{Row{Module: "grpc_health", Target: "svc2.example:443"}, []*result.Result{grpcBad}, at},
		{Row{Module: "websocket", Target: "wss://ws.example/feed", Interval: 20 * time.Second}, []*result.Result{ws}, at},
		{Row{Module: "checkout_flow", Target: "https://shop.example", Labels: []Label{{Name: "team", Value: "shop"}}}, []*result.Result{steps}, at},
	}
	rows := make([]Row, len(entries))
	for i, e := range entries {
		rows[i] = e.row
	}
	tab.Sync(rows)
	for _, e := range entries {
		for n, r := range e.results {
			tab.Record(checkOf(e.row, Check{Result: r, Attempts: n + 1, Planned: e.planned}))
		}
	}
	return tab
}

// The table's expositions (text and OpenMetrics, every series and the
// minimal set) of a varied table are the texts held in testdata/, which
// parse; gzip decompresses to the same text. `go test ./collector -run
// TestGoldenExpositions -update` rewrites them.
func TestGoldenExpositions(t *testing.T) {
	tab := variedTable(t)
	for _, tc := range []struct {
		file    string
		minimal bool
		format  Format
	}{
		{"table-full.txt", false, FormatText},
		{"table-minimal.txt", true, FormatText},
		{"table-full.om.txt", false, FormatOpenMetrics},
		{"table-minimal.om.txt", true, FormatOpenMetrics},
	} {
		tab.SetMinimal(tc.minimal)
		var plain bytes.Buffer
		n, err := tab.WriteFormat(&plain, tc.format)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(plain.Len()) {
			t.Errorf("%s: WriteFormat counted %d bytes, wrote %d", tc.file, n, plain.Len())
		}
		path := filepath.Join("testdata", tc.file)
		if *updateGolden {
			if err := os.WriteFile(path, plain.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(plain.Bytes(), want) {
			t.Errorf("%s: the exposition differs from the golden one:\n%s", tc.file, firstDifference(plain.Bytes(), want))
		}
		for _, workers := range []int{1, 2, 5} {
			var z bytes.Buffer
			if err := tab.WriteGzipFormat(&z, workers, tc.format); err != nil {
				t.Fatal(err)
			}
			if got := mustGunzip(t, &z); !bytes.Equal(got, want) {
				t.Errorf("%s: gzip with %d workers differs from the golden exposition:\n%s", tc.file, workers, firstDifference(got, want))
			}
		}
		if tc.format == FormatOpenMetrics {
			decodeOpenMetrics(t, append(plain.Bytes(), "# EOF\n"...))
			continue
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		if _, err := parser.TextToMetricFamilies(bytes.NewReader(plain.Bytes())); err != nil {
			t.Errorf("%s does not parse: %v", tc.file, err)
		}
	}
}

// firstDifference shows the first line where got and want differ.
func firstDifference(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n got:  " + gl + "\n want: " + wl
		}
	}
	return "same lines, different bytes"
}
