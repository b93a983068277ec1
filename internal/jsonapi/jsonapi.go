// Package jsonapi holds what vantage's JSON HTTP APIs share: strict
// request decoding with a size limit, and JSON answers and errors.
package jsonapi

import (
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
