// Package otlptest runs in-process OTLP trace receivers on loopback, over
// gRPC (the collector TraceService) and over HTTP (protobuf bodies posted
// to /v1/traces), for tests that need to see what an OTLP exporter really
// sends.
package otlptest

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Span is one received span with its resource's attributes.
type Span struct {
	Resource map[string]string
	*tracepb.Span
}

// TraceID returns the span's trace ID in hex.
func (s Span) TraceID() string { return hex.EncodeToString(s.GetTraceId()) }

// SpanID returns the span's ID in hex.
func (s Span) SpanID() string { return hex.EncodeToString(s.GetSpanId()) }

// ParentSpanID returns the parent span's ID in hex, "" for a root.
func (s Span) ParentSpanID() string { return hex.EncodeToString(s.GetParentSpanId()) }

// Attr returns the string form of an attribute of the span, "" when absent.
func (s Span) Attr(key string) string { return attrString(s.GetAttributes(), key) }

// Duration is how long the span lasted.
func (s Span) Duration() time.Duration {
	return time.Duration(s.GetEndTimeUnixNano() - s.GetStartTimeUnixNano())
}

// Failed reports whether the span ended with status Error.
func (s Span) Failed() bool { return s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR }

// Errors returns why requests were refused (bad content type or body).
func (r *Receiver) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// refuse answers a bad export request and remembers why.
func (r *Receiver) refuse(w http.ResponseWriter, code int, msg string) {
	r.mu.Lock()
	r.errs = append(r.errs, msg)
	r.mu.Unlock()
	http.Error(w, msg, code)
}

// Receiver collects the spans exported to it.
type Receiver struct {
	// Endpoint is the receiver's URL: http://127.0.0.1:port.
	Endpoint string
	// Protocol is "grpc" or "http/protobuf".
	Protocol string

	mu      sync.Mutex
	spans   []Span
	headers []http.Header // request headers or gRPC metadata of each export
	errs    []string      // why requests were refused
	changed chan struct{}
}

func newReceiver(protocol string) *Receiver {
	return &Receiver{Protocol: protocol, changed: make(chan struct{})}
}

func (r *Receiver) add(req *collectorpb.ExportTraceServiceRequest, h http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.GetKey()] = anyString(kv.GetValue())
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, Span{Resource: res, Span: s})
			}
		}
	}
	r.headers = append(r.headers, h)
	close(r.changed)
	r.changed = make(chan struct{})
}

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Headers returns the headers (HTTP) or metadata (gRPC) of each export
// request received so far.
func (r *Receiver) Headers() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.headers...)
}

// WaitFor waits until cond holds for the spans received, and returns them;
// it fails the test after timeout.
func (r *Receiver) WaitFor(tb testing.TB, timeout time.Duration, what string, cond func([]Span) bool) []Span {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans, changed := append([]Span(nil), r.spans...), r.changed
		r.mu.Unlock()
		if cond(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("%s receiver: timed out after %s waiting for %s; got %d spans", r.Protocol, timeout, what, len(spans))
			return nil
		}
	}
}

type traceService struct {
	collectorpb.UnimplementedTraceServiceServer
	r *Receiver
}

func (s *traceService) Export(ctx context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	h := http.Header{}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for k, vs := range md {
			for _, v := range vs {
				h.Add(k, v)
			}
		}
	}
	s.r.add(req, h)
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// NewGRPC starts a gRPC OTLP receiver on 127.0.0.1, stopped when the test
// ends.
func NewGRPC(tb testing.TB) *Receiver {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := newReceiver("grpc")
	r.Endpoint = "http://" + l.Addr().String()
	srv := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(srv, &traceService{r: r})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	tb.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return r
}

// NewHTTP starts an HTTP OTLP receiver on 127.0.0.1 that accepts protobuf
// bodies (gzip-compressed or not) at /v1/traces, stopped when the test ends.
func NewHTTP(tb testing.TB) *Receiver {
	tb.Helper()
	r := newReceiver("http/protobuf")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			r.refuse(w, http.StatusUnsupportedMediaType, "content type "+ct+" is not application/x-protobuf")
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(req.Body)
			if err != nil {
				r.refuse(w, http.StatusBadRequest, err.Error())
				return
			}
			body = gz
		}
		data, err := io.ReadAll(io.LimitReader(body, 64<<20))
		if err != nil {
			r.refuse(w, http.StatusBadRequest, err.Error())
			return
		}
		var msg collectorpb.ExportTraceServiceRequest
		if err := proto.Unmarshal(data, &msg); err != nil {
			r.refuse(w, http.StatusBadRequest, "decoding ExportTraceServiceRequest: "+err.Error())
			return
		}
		r.add(&msg, req.Header.Clone())
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	r.Endpoint = srv.URL
	return r
}

func attrString(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return anyString(kv.GetValue())
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		if x.BoolValue {
			return "true"
		}
		return "false"
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return v.String()
}
