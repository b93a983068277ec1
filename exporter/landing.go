package exporter

import (
	"html/template"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/common/version"
)

var landingTemplate = template.Must(template.New("landing").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>vantage exporter</title>
<style>
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
.ok { color: #1a7f37; } .fail { color: #cf222e; }
</style></head>
<body>
<h1>vantage exporter</h1>
<p>Version {{.Version}}. Configuration from {{.Source}}.</p>
<form action="{{.Prefix}}probe" method="get">
<label>Target <input type="text" name="target" placeholder="https://example.com" size="40"></label>
<label>Module <select name="module">{{range .Modules}}<option>{{.}}</option>{{end}}</select></label>
<input type="hidden" name="debug" value="true">
<input type="submit" value="Probe">
</form>
<ul>
<li><a href="{{.Prefix}}metrics">Metrics</a></li>
<li><a href="{{.Prefix}}config">Configuration</a></li>
</ul>
<h2>Recent probes</h2>
<table>
<tr><th>Module</th><th>Target</th><th>Result</th><th>Reason</th><th>Duration</th><th>Time</th><th>Debug</th></tr>
{{range .History}}<tr>
<td>{{.Module}}</td><td>{{.Target}}</td>
<td>{{if .Success}}<span class="ok">success</span>{{else}}<span class="fail">failure</span>{{end}}</td>
<td>{{.Result.Reason}}</td><td>{{printf "%.3fs" .Result.Duration.Seconds}}</td>
<td>{{.Time.UTC.Format "2006-01-02 15:04:05Z"}}</td>
<td><a href="{{$.Prefix}}history/{{.ID}}">Logs</a></td>
</tr>{{else}}<tr><td colspan="7">No probes yet.</td></tr>{{end}}
</table>
</body></html>
`))

func (e *Exporter) handleLanding(w http.ResponseWriter, _ *http.Request) {
	st := e.config.get()
	prefix, _ := e.opts.routePrefix() // validated by New
	modules := make([]string, 0, len(st.modules))
	for name := range st.modules {
		modules = append(modules, name)
	}
	slices.Sort(modules)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err := landingTemplate.Execute(w, map[string]any{
		"Version": version.Info(),
		"Source":  e.config.source(),
		"Modules": modules,
		"History": e.history.list(),
		"Prefix":  prefix,
	})
	if err != nil {
		e.logger.Error("Error rendering landing page", "err", err)
	}
}

func (e *Exporter) handleHistory(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "probe id must be a number", http.StatusBadRequest)
		return
	}
	e.writeDebug(w, e.history.get(id))
}

// handleLogs is blackbox_exporter's /logs: ?id= names a probe of the
// history, ?target= the latest probe of a target.
func (e *Exporter) handleLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, target := q.Get("id"), q.Get("target")
	switch {
	case id != "" && target != "":
		http.Error(w, "Probe id and target can't be defined at the same time", http.StatusBadRequest)
	case target != "":
		e.writeDebug(w, e.history.latestFor(target))
	case id != "":
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			http.Error(w, "probe id must be a number", http.StatusBadRequest)
			return
		}
		e.writeDebug(w, e.history.get(n))
	default:
		http.Error(w, "Probe id or target must be defined as http query parameters", http.StatusBadRequest)
	}
}

// writeDebug answers a kept probe's debug output.
func (e *Exporter) writeDebug(w http.ResponseWriter, rec *probeRecord) {
	if rec == nil {
		http.Error(w, "probe not found (it may have left the history)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(rec.Debug))
}
