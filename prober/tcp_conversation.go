package prober

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"

	"github.com/vantageprobe/vantage/prober/result"
)

// maxTCPLine bounds one line read for an expect step, as bufio.Scanner's
// default token size bounds blackbox_exporter's.
const maxTCPLine = 64 * 1024

var errLineTooLong = errors.New("line longer than 64KiB")

// converse runs the module's query_response steps in order over conn. Every
// read and write is bounded by the connection deadline bindConnToContext set.
func (t *tcpProbe) converse(ctx context.Context, conn net.Conn, host string, d *result.TCPDetails, r *result.Result, logger *slog.Logger) {
	if len(t.steps) == 0 {
		return // a connect check: no reader to allocate
	}
	br := bufio.NewReader(conn)
	for i, st := range t.steps {
		logger.Debug("Processing query response entry", "entry_number", i)
		send := st.send
		switch {
		case st.expect != nil:
			line, match, ok := expectLine(ctx, br, st.expect, d, r, logger)
			if !ok {
				return
			}
			// As blackbox_exporter: send may use this step's submatches (${1}).
			send = string(st.expect.Expand(nil, []byte(send), line, match))
			if len(st.labels) > 0 {
				d.SetExpectInfo(expandLabels(st, line, match))
			}
		case st.expectBytes != nil:
			if !expectBytes(ctx, br, st.expectBytes, d, r, logger) {
				return
			}
			if len(st.labels) > 0 {
				d.SetExpectInfo(expandLabels(st, nil, nil))
			}
		}
		if send != "" && !sendLine(ctx, conn, send, r, logger) {
			return
		}
		if st.startTLS {
			// Bytes the peer sent after the last line read are part of
			// its handshake: hand them to the TLS client.
			tc, ok := t.handshake(ctx, &bufferedConn{Conn: conn, r: br}, host, r, logger)
			if !ok {
				return
			}
			conn, br = tc, bufio.NewReader(tc)
		}
		d.StepsCompleted++
	}
}

// expectLine reads lines until one matches re, as blackbox_exporter does.
func expectLine(ctx context.Context, br *bufio.Reader, re *regexp.Regexp, d *result.TCPDetails, r *result.Result, logger *slog.Logger) ([]byte, []int, bool) {
	seen := false
	for {
		line, err := readLine(br)
		if err != nil {
			seen = seen || len(line) > 0
			if failExpect(ctx, err, seen, fmt.Sprintf("expect %q", re.String()), r, logger) == result.ReasonExpectMismatch {
				d.FailedDueToRegex = true
			}
			return nil, nil, false
		}
		seen = true
		logger.Debug("Read line", "line", string(line))
		if match := re.FindSubmatchIndex(line); match != nil {
			logger.Debug("Regexp matched", "regexp", re.String(), "line", string(line))
			return line, match, true
		}
	}
}

// readLine returns the next line without its "\n" or "\r\n", split as
// bufio.ScanLines splits (blackbox_exporter's reader), including a last line
// the peer ends by closing. On error, line holds what arrived of a partial
// line.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > maxTCPLine {
			return line, errLineTooLong
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return bytes.TrimSuffix(line, []byte("\r")), nil
		default:
			return line, err
		}
	}
}

// expectBytes reads exactly len(want) bytes and compares them with want,
// failing as soon as a byte differs.
func expectBytes(ctx context.Context, br *bufio.Reader, want []byte, d *result.TCPDetails, r *result.Result, logger *slog.Logger) bool {
	got := make([]byte, len(want))
	n := 0
	for n < len(want) {
		m, err := br.Read(got[n:])
		n += m
		if !bytes.Equal(got[:n], want[:n]) {
			d.FailedDueToBytes = true
			logger.Error("Bytes did not match", "got", fmt.Sprintf("%q", got[:n]), "want", fmt.Sprintf("%q", want))
			r.Fail(result.ReasonExpectMismatch, "expect_bytes: read %q, want %q", got[:n], want)
			return false
		}
		if err != nil && n < len(want) {
			failExpect(ctx, err, n > 0, fmt.Sprintf("expect_bytes %q", want), r, logger)
			return false
		}
	}
	logger.Debug("Read expected bytes", "bytes", fmt.Sprintf("%q", got))
	return true
}

// failExpect records why an expect step ended without a match and returns
// the reason:
//   - the peer closed the connection: expect_mismatch (it will never send
//     what was expected; blackbox_exporter counts this as a regex failure);
//   - the deadline passed after data arrived that did not match:
//     expect_mismatch, as the peer is talking but not saying the expected;
//   - the deadline passed and nothing arrived in this step: timeout, as a
//     silent peer is a slow or hung service, not a wrong one;
//   - an over-long line or any other read error (reset): protocol_error.
func failExpect(ctx context.Context, err error, seen bool, what string, r *result.Result, logger *slog.Logger) result.Reason {
	var reason result.Reason
	switch {
	case errors.Is(err, errLineTooLong):
		reason = result.ReasonProtocolError
		r.Fail(reason, "reading for %s: %v", what, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		reason = result.ReasonExpectMismatch
		r.Fail(reason, "connection closed before %s matched", what)
	case ioTimedOut(ctx, err) && seen:
		reason = result.ReasonExpectMismatch
		r.Fail(reason, "deadline passed before %s matched the data received", what)
	case ioTimedOut(ctx, err):
		reason = result.ReasonTimeout
		r.Fail(reason, "nothing received for %s before the deadline", what)
	default:
		reason = result.ReasonProtocolError
		r.Fail(reason, "reading for %s: %v", what, err)
	}
	logger.Error("Expected data not received", "expect", what, "reason", reason, "err", err)
	return reason
}

// expandLabels renders a step's probe_expect_info labels; with an expect
// regexp, values may use its submatches (${1}).
func expandLabels(st tcpStep, line []byte, match []int) []result.ExpectLabel {
	out := make([]result.ExpectLabel, 0, len(st.labels))
	for _, l := range st.labels {
		v := l.Value
		if st.expect != nil {
			v = string(st.expect.Expand(nil, []byte(l.Value), line, match))
		}
		out = append(out, result.ExpectLabel{Name: l.Name, Value: v})
	}
	return out
}

// sendLine writes send and "\n", as blackbox_exporter does.
func sendLine(ctx context.Context, conn net.Conn, send string, r *result.Result, logger *slog.Logger) bool {
	logger.Debug("Sending line", "line", send)
	if _, err := io.WriteString(conn, send+"\n"); err != nil {
		logger.Error("Failed to send", "err", err)
		if ioTimedOut(ctx, err) {
			r.Fail(result.ReasonTimeout, "sending %q: %v", send, err)
		} else {
			r.Fail(result.ReasonProtocolError, "sending %q: %v", send, err)
		}
		return false
	}
	return true
}
