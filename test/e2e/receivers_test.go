package e2e

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"
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
