package webserver

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ScrapeTimeoutHeader is the header in which Prometheus sends a scrape's
// timeout, in seconds.
const ScrapeTimeoutHeader = "X-Prometheus-Scrape-Timeout-Seconds"

// ScrapeTimeout reads the scrape timeout Prometheus sent with a request.
// ok is false when the header is absent or 0 (no timeout given); a value
// that is not a non-negative number is an error naming the header.
func ScrapeTimeout(h http.Header) (timeout time.Duration, ok bool, err error) {
	v := h.Get(ScrapeTimeoutHeader)
	if v == "" {
		return 0, false, nil
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || secs < 0 || secs != secs {
		return 0, false, fmt.Errorf("failed to parse timeout from Prometheus header %s %q", ScrapeTimeoutHeader, v)
	}
	if secs == 0 {
		return 0, false, nil
	}
	return time.Duration(secs * float64(time.Second)), true, nil
}

// SetScrapeTimeout sets the scrape timeout header on a request made on
// Prometheus' behalf.
func SetScrapeTimeout(h http.Header, timeout time.Duration) {
	h.Set(ScrapeTimeoutHeader, strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64))
}
