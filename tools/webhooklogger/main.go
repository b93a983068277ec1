// Command webhooklogger is the demo stack's Alertmanager receiver: it
// accepts Alertmanager's webhook notifications on any path (the stack's
// routes post to /pager, /ticket and /info) and logs one line per alert
// of each, so `docker compose logs -f webhook-logger` shows what would
// have paged or opened a ticket.
//
//	POST /<receiver>   an Alertmanager webhook payload (version 4)
//	GET  /-/healthy    200
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vantageprobe/vantage/tools/internal/toolserver"
)

func main() { toolserver.Main(run) }

// run serves until ctx ends; started, when set, gets the bound address.
func run(ctx context.Context, args []string, stderr io.Writer, started func(net.Addr)) int {
	app := kingpin.New("webhooklogger", "Logs the notifications Alertmanager posts to its webhook receivers.")
	return toolserver.Run(ctx, app, ":5001", args, stderr, started, handler)
}

// notification is the part of Alertmanager's webhook payload it logs.
type notification struct {
	Version  string  `json:"version"`
	Receiver string  `json:"receiver"`
	Status   string  `json:"status"`
	Alerts   []alert `json:"alerts"`
}

type alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
}

// maxBody bounds a notification; Alertmanager's are far smaller.
const maxBody = 4 << 20

func handler(logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "Healthy.\n")
	})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		var n notification
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
		if err := dec.Decode(&n); err != nil {
			logger.Warn("Not an Alertmanager notification", "path", r.URL.Path, "err", err)
			http.Error(w, "not an Alertmanager webhook notification: "+err.Error(), http.StatusBadRequest)
			return
		}
		path := strings.TrimPrefix(r.URL.Path, "/")
		for _, a := range n.Alerts {
			logger.Info("Notification",
				"path", path, "receiver", n.Receiver, "status", a.Status,
				"alertname", a.Labels["alertname"], "severity", a.Labels["severity"],
				"labels", labelString(a.Labels), "summary", a.Annotations["summary"],
				"runbook_url", a.Annotations["runbook_url"], "dashboard_url", a.Annotations["dashboard_url"],
				"starts_at", a.StartsAt)
		}
		w.WriteHeader(http.StatusOK)
	})
	return mux
}

// labelString renders labels as {a="1", b="2"} without the alertname and
// severity, which have their own keys.
func labelString(labels map[string]string) string {
	var parts []string
	for k, v := range labels {
		if k != "alertname" && k != "severity" {
			parts = append(parts, fmt.Sprintf("%s=%q", k, v))
		}
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}
