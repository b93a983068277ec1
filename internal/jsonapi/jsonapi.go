// Package jsonapi holds what vantage's JSON HTTP APIs share: strict
// request decoding with a size limit, and JSON answers and errors.
package jsonapi

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error is the body of every API error answer.
type Error struct {
	Error string `json:"error"`
}

// Write answers with status and v as JSON.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers with status and err's message as an Error.
func WriteError(w http.ResponseWriter, status int, err error) {
	Write(w, status, Error{Error: err.Error()})
}

// Decode reads one JSON value from r's body into v: the content type must
// be JSON (or absent), the body at most limit bytes, with no unknown
// fields and nothing after the value. On error it returns the HTTP status
// to answer with; what describes the expected body for the empty-body
// message.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any, what string) (int, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return http.StatusUnsupportedMediaType, fmt.Errorf("content type %q is not application/json", ct)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", limit)
		case errors.Is(err, io.EOF):
			return http.StatusBadRequest, fmt.Errorf("request body is empty; want %s", what)
		}
		return http.StatusBadRequest, fmt.Errorf("invalid request body: %w", err)
	}
	if dec.More() {
		return http.StatusBadRequest, errors.New("invalid request body: more than one JSON value")
	}
	return 0, nil
}

// List writes a JSON array one element at a time, as Write writes a
// whole slice (the same bytes), so that a long answer is never encoded
// whole in memory.
type List struct {
	w   *bufio.Writer
	n   int
	err error
}

// StartList answers with status and the start of a JSON array.
func StartList(w http.ResponseWriter, status int) *List {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	l := &List{w: bufio.NewWriterSize(w, 32<<10)}
	l.err = l.w.WriteByte('[')
	return l
}

// Add writes one element.
func (l *List) Add(v any) error {
	if l.err != nil {
		return l.err
	}
	data, err := json.Marshal(v)
	if err != nil {
		l.err = err
		return err
	}
	if l.n > 0 {
		_ = l.w.WriteByte(',')
	}
	l.n++
	_, l.err = l.w.Write(data)
	return l.err
}

// End ends the array and writes what is buffered.
func (l *List) End() error {
	if l.err != nil {
		return l.err
	}
	_, _ = l.w.WriteString("]\n")
	return l.w.Flush()
}
