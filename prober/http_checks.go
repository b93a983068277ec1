package prober

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/andybalholm/brotli"

	"github.com/vantageprobe/vantage/config"
)

// httpChecks are an http module's response checks, compiled once.
type httpChecks struct {
	validStatus   []int // empty: any 2xx
	validVersions []string

	headerMatches    []headerCheck
	headerNotMatches []headerCheck
	bodyMatches      []*regexp.Regexp
	bodyNotMatches   []*regexp.Regexp
	celMatches       *config.CELProgram
	celNotMatches    *config.CELProgram

	compression string // "" or "identity" for none
	limit       int64  // body_size_limit, 0 for none
}

type headerCheck struct {
	name         string // canonical header name
	re           *regexp.Regexp
	allowMissing bool
}

func newHTTPChecks(cfg config.HTTPProbe) (*httpChecks, error) {
	c := &httpChecks{
		validStatus:   cfg.ValidStatusCodes,
		validVersions: cfg.ValidHTTPVersions,
		compression:   strings.ToLower(cfg.Compression),
		limit:         int64(cfg.BodySizeLimit),
	}
	var err error
	if c.bodyMatches, err = compileRegexps("fail_if_body_matches_regexp", cfg.FailIfBodyMatchesRegexp); err != nil {
		return nil, err
	}
	if c.bodyNotMatches, err = compileRegexps("fail_if_body_not_matches_regexp", cfg.FailIfBodyNotMatchesRegexp); err != nil {
		return nil, err
	}
	if c.headerMatches, err = compileHeaderChecks("fail_if_header_matches", cfg.FailIfHeaderMatchesRegexp); err != nil {
		return nil, err
	}
	if c.headerNotMatches, err = compileHeaderChecks("fail_if_header_not_matches", cfg.FailIfHeaderNotMatchesRegexp); err != nil {
		return nil, err
	}
	if c.celMatches, err = compileCEL("fail_if_body_json_matches_cel", cfg.FailIfBodyJSONMatchesCEL); err != nil {
		return nil, err
	}
	if c.celNotMatches, err = compileCEL("fail_if_body_json_not_matches_cel", cfg.FailIfBodyJSONNotMatchesCEL); err != nil {
		return nil, err
	}
	switch c.compression {
	case "", "identity", "gzip", "br", "deflate":
	default:
		return nil, fmt.Errorf("http.compression: unknown compression %q", cfg.Compression)
	}
	return c, nil
}

// compileRegexps returns the compiled expressions; validation compiles them
// when the configuration is loaded, a module built in code may not be.
func compileRegexps(field string, res []config.Regexp) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, 0, len(res))
	for _, re := range res {
		if re.Regexp == nil {
			c, err := regexp.Compile(re.String())
			if err != nil {
				return nil, fmt.Errorf("http.%s: %w", field, err)
			}
			re.Regexp = c
		}
		out = append(out, re.Regexp)
	}
	return out, nil
}

func compileHeaderChecks(field string, ms []config.HeaderMatch) ([]headerCheck, error) {
	out := make([]headerCheck, 0, len(ms))
	for _, m := range ms {
		res, err := compileRegexps(field, []config.Regexp{m.Regexp})
		if err != nil {
			return nil, err
		}
		out = append(out, headerCheck{name: http.CanonicalHeaderKey(m.Header), re: res[0], allowMissing: m.AllowMissing})
	}
	return out, nil
}

func compileCEL(field string, p *config.CELProgram) (*config.CELProgram, error) {
	if p == nil || p.Program != nil {
		return p, nil
	}
	c, err := config.NewCELProgram(p.String())
	if err != nil {
		return nil, fmt.Errorf("http.%s: %w", field, err)
	}
	return &c, nil
}

func (c *httpChecks) statusOK(code int) bool {
	if len(c.validStatus) == 0 {
		return code >= 200 && code < 300
	}
	return slices.Contains(c.validStatus, code)
}

func (c *httpChecks) statusCodesText() string {
	if len(c.validStatus) == 0 {
		return "2xx"
	}
	s := make([]string, len(c.validStatus))
	for i, code := range c.validStatus {
		s[i] = strconv.Itoa(code)
	}
	return "one of " + strings.Join(s, ", ")
}

func (c *httpChecks) versionOK(proto string) bool {
	return len(c.validVersions) == 0 || slices.Contains(c.validVersions, proto)
}

// headers applies the header checks as blackbox_exporter does: a missing
// header fails unless allow_missing; fail_if_header_matches fails when any
// value matches, fail_if_header_not_matches when no value matches.
func (c *httpChecks) headers(h http.Header) (string, bool) {
	for _, m := range c.headerMatches {
		values := h[m.name]
		if len(values) == 0 {
			if m.allowMissing {
				continue
			}
			return fmt.Sprintf("missing required header %q", m.name), false
		}
		for _, v := range values {
			if m.re.MatchString(v) {
				return fmt.Sprintf("header %q matched regular expression %q", m.name, m.re), false
			}
		}
	}
	for _, m := range c.headerNotMatches {
		values := h[m.name]
		if len(values) == 0 {
			if m.allowMissing {
				continue
			}
			return fmt.Sprintf("missing required header %q", m.name), false
		}
		if !slices.ContainsFunc(values, m.re.MatchString) {
			return fmt.Sprintf("header %q did not match regular expression %q", m.name, m.re), false
		}
	}
	return "", true
}

func (c *httpChecks) needBody() bool {
	return len(c.bodyMatches) > 0 || len(c.bodyNotMatches) > 0 || c.celMatches != nil || c.celNotMatches != nil
}

// body reads the whole response body, decompressing and limiting it as
// configured, runs the body checks when the probe has not failed yet, and
// returns the number of (uncompressed) bytes read.
func (c *httpChecks) body(ctx context.Context, body io.Reader, r *result.Result, d *result.HTTPDetails, logger *slog.Logger) (int64, error) {
	rd := body
	if c.compression != "" && c.compression != "identity" {
		rd = &decodingReader{enc: c.compression, src: &countingReader{r: body}}
	}
	if c.limit > 0 {
		rd = http.MaxBytesReader(nil, io.NopCloser(rd), c.limit)
	}
	counter := &countingReader{r: rd}
	sink := stepResponseFrom(ctx)
	if (c.needBody() || sink != nil) && r.Reason == result.ReasonNone {
		buf := bodyBuffers.Get().(*bytes.Buffer)
		defer putBodyBuffer(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(counter); err != nil {
			return counter.n, err
		}
		c.checkBody(ctx, buf.Bytes(), r, d, logger)
		if sink != nil {
			sink.body = bytes.Clone(buf.Bytes())
		}
	}
	_, err := io.Copy(io.Discard, counter)
	return counter.n, err
}

func (c *httpChecks) checkBody(ctx context.Context, body []byte, r *result.Result, d *result.HTTPDetails, logger *slog.Logger) {
	for _, re := range c.bodyMatches {
		if re.Match(body) {
			logger.Error("Body matched regular expression", "regexp", re.String())
			d.FailedDueToRegex = true
			r.Fail(result.ReasonBodyMismatch, "body matched regular expression %q", re)
			return
		}
	}
	for _, re := range c.bodyNotMatches {
		if !re.Match(body) {
			logger.Error("Body did not match regular expression", "regexp", re.String())
			d.FailedDueToRegex = true
			r.Fail(result.ReasonBodyMismatch, "body did not match regular expression %q", re)
			return
		}
	}
	if c.celMatches == nil && c.celNotMatches == nil {
		return
	}
	if msg, ok := c.checkCEL(ctx, body); !ok {
		logger.Error(msg)
		d.FailedDueToCEL = true
		r.Fail(result.ReasonCELMismatch, "%s", msg)
	}
}

// checkCEL evaluates the CEL checks against the body parsed as JSON, bound
// to the variable "body".
func (c *httpChecks) checkCEL(ctx context.Context, body []byte) (string, bool) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Sprintf("body is not JSON: %v", err), false
	}
	input := map[string]any{"body": v}
	eval := func(p *config.CELProgram) (bool, string) {
		out, _, err := p.ContextEval(ctx, input)
		if err != nil {
			return false, fmt.Sprintf("evaluating CEL expression %q: %v", p, err)
		}
		b, ok := out.Value().(bool)
		if !ok {
			return false, fmt.Sprintf("CEL expression %q returned %s, not a boolean", p, out.Type().TypeName())
		}
		return b, ""
	}
	if p := c.celMatches; p != nil {
		matched, errMsg := eval(p)
		switch {
		case errMsg != "":
			return errMsg, false
		case matched:
			return fmt.Sprintf("body matched CEL expression %q", p), false
		}
	}
	if p := c.celNotMatches; p != nil {
		matched, errMsg := eval(p)
		switch {
		case errMsg != "":
			return errMsg, false
		case !matched:
			return fmt.Sprintf("body did not match CEL expression %q", p), false
		}
	}
	return "", true
}

// bodyBuffers recycles the buffers bodies are read into for the checks.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBodyBuffer(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return // do not keep a huge body's buffer alive
	}
	bodyBuffers.Put(b)
}

// countingReader counts the bytes read through it and keeps the first error
// other than io.EOF.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// decodeError is a response body that does not decode as the configured
// compression.
type decodeError struct {
	enc string
	err error
}

func (e *decodeError) Error() string { return fmt.Sprintf("decoding %s body: %v", e.enc, e.err) }
func (e *decodeError) Unwrap() error { return e.err }

// decodingReader decompresses src as enc, treating the response body as
// compressed whatever its Content-Encoding says, as blackbox_exporter does.
// An empty body decodes as empty.
type decodingReader struct {
	enc string
	src *countingReader // compressed bytes
	dec io.Reader
	err error
}

func (d *decodingReader) Read(p []byte) (int, error) {
	if d.dec == nil && d.err == nil {
		d.dec, d.err = newDecompressor(d.enc, d.src)
	}
	if d.err != nil {
		return 0, d.wrap(d.err)
	}
	n, err := d.dec.Read(p)
	if err != nil && err != io.EOF {
		return n, d.wrap(err)
	}
	return n, err
}

func (d *decodingReader) wrap(err error) error {
	switch {
	case d.src.err != nil:
		return d.src.err // the transport failed, not the decoding
	case d.src.n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)):
		return io.EOF // an empty body
	}
	return &decodeError{enc: d.enc, err: err}
}

func newDecompressor(enc string, src io.Reader) (io.Reader, error) {
	switch enc {
	case "gzip":
		return gzip.NewReader(src)
	case "deflate":
		return flate.NewReader(src), nil
	case "br":
		return brotli.NewReader(src), nil
	}
	return nil, fmt.Errorf("unsupported compression %q", enc)
}
