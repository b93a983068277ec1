package coordinator

import (
	"html/template"
	"net/http"
	"time"

	"github.com/vantageprobe/vantage/coordinator/confirm"
)

// recentIncidents is how many incidents the status page lists.
const recentIncidents = 50

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t).Truncate(time.Second).String() + " ago"
	},
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vantage-coordinator</title>
<style>
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
.up, .success, .true { color: #1a7f37; }
.down, .failure, .false { color: #cf222e; font-weight: bold; }
.seems_down, .unknown { color: #9a6700; }
</style>
</head>
<body>
<h1>vantage-coordinator</h1>
<p><a href="/metrics">Metrics</a> · <a href="/config">Configuration</a> ·
<a href="/api/v1/targets">Targets (JSON)</a> · <a href="/api/v1/incidents?state=all">Incidents (JSON)</a> ·
<a href="/api/v1/locations">Locations (JSON)</a></p>

<h2>Locations</h2>
<table>
<tr><th>Location</th><th>URL</th><th>Healthy</th><th>Last contact</th><th>Problem</th></tr>
{{range .Locations}}<tr><td>{{.Name}}</td><td>{{.URL}}</td><td class="{{.Healthy}}">{{.Healthy}}</td><td>{{ago .Checked}}</td><td>{{.Error}}</td></tr>
{{end}}</table>

<h2>Targets not up ({{len .NotUp}} of {{.Known}} known)</h2>
{{if .NotUp}}<table>
<tr><th>Target</th><th>Module</th><th>State</th><th>Since</th><th>Incident</th><th>Locations</th></tr>
{{range .NotUp}}<tr><td>{{.Target}}</td><td>{{.Module}}</td><td class="{{.State}}">{{.State}}</td><td>{{ago .Since}}</td>
<td>{{if .IncidentID}}<a href="/api/v1/incidents/{{.IncidentID}}">#{{.IncidentID}}</a>{{end}}</td>
<td>{{range .Locations}}<span class="{{.Result}}">{{.Location}}: {{.Result}}{{if .Reason}} ({{.Reason}}){{end}}</span> {{end}}</td></tr>
{{end}}</table>{{else}}<p>Every known target is up.</p>{{end}}

<h2>Recent incidents</h2>
{{if .Incidents}}<table>
<tr><th>#</th><th>Target</th><th>Module</th><th>State</th><th>Started</th><th>Confirmed</th><th>Resolved</th><th>Resolution</th><th>Reporter</th></tr>
{{range .Incidents}}<tr><td><a href="/api/v1/incidents/{{.ID}}">{{.ID}}</a></td><td>{{.Target}}</td><td>{{.Module}}</td>
<td class="{{.State}}">{{.State}}</td><td>{{ts .StartedAt}}</td><td>{{ts .ConfirmedAt}}</td><td>{{ts .ResolvedAt}}</td><td>{{.Resolution}}</td><td>{{.Reporter}}</td></tr>
{{end}}</table>{{else}}<p>No incidents yet.</p>{{end}}
</body>
</html>
`))

func (c *Coordinator) handleStatus(w http.ResponseWriter, _ *http.Request) {
	targets := c.targets()
	data := struct {
		Locations []LocationView
		NotUp     []confirm.TargetView
		Known     int
		Incidents []confirm.Incident
	}{Locations: c.health.views(), Known: len(targets)}
	for _, t := range targets {
		if t.State != confirm.StateUp {
			data.NotUp = append(data.NotUp, t)
		}
	}
	incidents, err := c.store.List(false, recentIncidents)
	if err != nil {
		http.Error(w, "reading the incident log: "+err.Error(), http.StatusInternalServerError)
		return
	}
	data.Incidents = incidents
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusTemplate.Execute(w, data); err != nil {
		c.logger.Error("Rendering the status page failed", "err", err)
	}
}
