package e2e

import (
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// serve runs h on a fresh loopback listener until the test ends and
// returns its base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	l := mustListen(t)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// span is one span received over OTLP, with its resource's attributes.
type span struct {
	resource map[string]string
	*tracepb.Span
}

func (s span) traceID() string  { return hex.EncodeToString(s.GetTraceId()) }
func (s span) spanID() string   { return hex.EncodeToString(s.GetSpanId()) }
func (s span) parentID() string { return hex.EncodeToString(s.GetParentSpanId()) }
func (s span) attr(key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			return anyValueString(kv.GetValue())
		}
	}
	return ""
}
func (s span) duration() time.Duration {
	return time.Duration(s.GetEndTimeUnixNano() - s.GetStartTimeUnixNano())
}
func (s span) failed() bool { return s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR }

func anyValueString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return v.String()
}

// otlpReceiver accepts OTLP/HTTP exports: protobuf bodies POSTed to
// /v1/traces, as Jaeger's and the OpenTelemetry Collector's receivers do.
type otlpReceiver struct {
	endpoint string // base URL, for OTEL_EXPORTER_OTLP_ENDPOINT

	mu       sync.Mutex
	spans    []span
	requests int
	errs     []string // bad requests, reported by the test
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.handle)
	r.endpoint = serve(t, mux)
	return r
}

func (r *otlpReceiver) handle(w http.ResponseWriter, req *http.Request) {
	fail := func(code int, msg string) {
		r.mu.Lock()
		r.errs = append(r.errs, msg)
		r.mu.Unlock()
		http.Error(w, msg, code)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		fail(http.StatusUnsupportedMediaType, "content type "+ct+", want application/x-protobuf")
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		body = gz
	}
	data, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	var msg collectorpb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &msg); err != nil {
		fail(http.StatusBadRequest, "decoding ExportTraceServiceRequest: "+err.Error())
		return
	}
	r.mu.Lock()
	r.requests++
	for _, rs := range msg.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.GetKey()] = anyValueString(kv.GetValue())
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, span{resource: res, Span: s})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// received returns the spans received so far and any bad request.
func (r *otlpReceiver) received() ([]span, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]span(nil), r.spans...), append([]string(nil), r.errs...)
}

// notification is one webhook message of Alertmanager.
type notification struct {
	path     string // /pager or /ticket: the receiver's URL
	at       time.Time
	Receiver string  `json:"receiver"`
	Status   string  `json:"status"`
	Alerts   []alert `json:"alerts"`
}

type alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// webhook records Alertmanager's notifications.
type webhook struct {
	base string

	mu   sync.Mutex
	msgs []notification
	errs []string
}

func startWebhook(t *testing.T) *webhook {
	t.Helper()
	wh := &webhook{}
	wh.base = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := notification{path: r.URL.Path, at: time.Now()}
		err := json.NewDecoder(r.Body).Decode(&n)
		wh.mu.Lock()
		defer wh.mu.Unlock()
		if err != nil {
			wh.errs = append(wh.errs, r.URL.Path+": "+err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		wh.msgs = append(wh.msgs, n)
	}))
	return wh
}

// received returns the notifications so far and any undecodable one.
func (wh *webhook) received() ([]notification, []string) {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return append([]notification(nil), wh.msgs...), append([]string(nil), wh.errs...)
}

// find returns the first notification whose alert matches labels, with
// that alert.
func (wh *webhook) find(labels map[string]string) (notification, alert, bool) {
	msgs, _ := wh.received()
	for _, n := range msgs {
		for _, a := range n.Alerts {
			if matches(a.Labels, labels) {
				return n, a, true
			}
		}
	}
	return notification{}, alert{}, false
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
