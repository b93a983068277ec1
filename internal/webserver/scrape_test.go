package webserver

import (
	"net/http"
	"testing"
	"time"
)

func TestScrapeTimeout(t *testing.T) {
	for _, tc := range []struct {
		header  string
		want    time.Duration
		ok      bool
		wantErr string
	}{
		{"", 0, false, ""},
		{"0", 0, false, ""},
		{"10", 10 * time.Second, true, ""},
		{"2.5", 2500 * time.Millisecond, true, ""},
		{"-1", 0, false, `failed to parse timeout from Prometheus header X-Prometheus-Scrape-Timeout-Seconds "-1"`},
		{"NaN", 0, false, `failed to parse timeout from Prometheus header X-Prometheus-Scrape-Timeout-Seconds "NaN"`},
		{"ten", 0, false, `failed to parse timeout from Prometheus header X-Prometheus-Scrape-Timeout-Seconds "ten"`},
	} {
		h := http.Header{}
		if tc.header != "" {
			h.Set(ScrapeTimeoutHeader, tc.header)
		}
		got, ok, err := ScrapeTimeout(h)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%q: error %v, want %q", tc.header, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %s, %v, %v; want %s, %v", tc.header, got, ok, err, tc.want, tc.ok)
		}
	}
	h := http.Header{}
	SetScrapeTimeout(h, 1500*time.Millisecond)
	if got, ok, err := ScrapeTimeout(h); got != 1500*time.Millisecond || !ok || err != nil {
		t.Errorf("round trip of 1.5s: got %s, %v, %v", got, ok, err)
	}
}
