package coordinator

import (
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/vantageprobe/vantage/coordinator/confirm"
)

// What the status page lists, so that it stays usable with many targets:
// the recent incidents, the targets not up (all of them up to a limit
// that only a mass outage reaches), and the first up targets; the rest are
// counted and linked to /api/v1/targets.
const (
	recentIncidents = 50
	maxNotUpRows    = 1000
	maxUpRows       = 100
)

var statusTemplate = template.Must(template.New("status").Funcs(template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return time.Since(t).Truncate(time.Second).String() + " ago"
	},
	"join": func(s []string) string { return strings.Join(s, ", ") },
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
{{range .Locations}}<tr><td>{{.Name}}</td><td>{{.URL}}</td><td class="{{.Healthy}}">{{.Healthy}}</td><td>{{ago .Checked}}</td><td>{{.Error}}{{if .Suspect.Suspect}} suspect since {{ago .Suspect.Since}}: its failures count for nothing ({{.Suspect.Reason}}, {{.Suspect.Contradicted}} targets){{end}}</td></tr>
{{end}}</table>

<h2>Targets not up ({{.NotUpCount}} of {{.Known}} known)</h2>
{{if .NotUp}}<table>
<tr><th>Target</th><th>Module</th><th>State</th><th>Since</th><th>Incident</th><th>Locations</th></tr>
{{range .NotUp}}<tr><td>{{.Target}}</td><td>{{.Module}}</td><td class="{{.State}}">{{.State}}</td><td>{{ago .Since}}</td>
<td>{{if .IncidentID}}<a href="/api/v1/incidents/{{.IncidentID}}">#{{.IncidentID}}</a>{{end}}</td>
<td>{{range .Locations}}<span class="{{.Result}}">{{.Location}}: {{.Result}}{{if .Reason}} ({{.Reason}}){{end}}</span> {{end}}</td></tr>
{{end}}</table>
{{if .NotUpMore}}<p>{{.NotUpMore}} more targets not up: <a href="/api/v1/targets?state=seems_down">seems_down</a>,
<a href="/api/v1/targets?state=down">down</a>, <a href="/api/v1/targets?state=unknown">unknown</a> (JSON).</p>{{end}}
{{else}}<p>Every known target is up.</p>{{end}}

<h2>Targets up ({{.UpCount}} of {{.Known}} known)</h2>
{{if .Up}}<table>
<tr><th>Target</th><th>Module</th><th>Since</th><th>Scheduled in</th></tr>
{{range .Up}}<tr><td>{{.Target}}</td><td>{{.Module}}</td><td>{{ago .Since}}</td><td>{{join .ScheduledIn}}</td></tr>
{{end}}</table>
{{if .UpMore}}<p>{{.UpMore}} more up targets: <a href="/api/v1/targets?state=up">/api/v1/targets?state=up</a> (JSON).</p>{{end}}
{{else}}<p>No target is up.</p>{{end}}

<h2>Recent incidents</h2>
{{if .Incidents}}<table>
<tr><th>#</th><th>Target</th><th>Module</th><th>State</th><th>Last state</th><th>Started</th><th>Confirmed</th><th>Ended</th><th>Resolved</th><th>Resolution</th><th>Reporter</th></tr>
{{range .Incidents}}<tr><td><a href="/api/v1/incidents/{{.ID}}">{{.ID}}</a></td><td>{{.Target}}</td><td>{{.Module}}</td>
<td class="{{.State}}">{{.State}}</td><td class="{{.LastState}}">{{.LastState}}</td><td>{{ts .StartedAt}}</td><td>{{ts .ConfirmedAt}}</td><td>{{ts .EndedAt}}</td><td>{{ts .ResolvedAt}}</td><td>{{.Resolution}}</td><td>{{.Reporter}}</td></tr>
{{end}}</table>{{else}}<p>No incidents yet.</p>{{end}}
</body>
</html>
`))

// statusPage is what the status page shows.
type statusPage struct {
	Locations []locationView
	// NotUp and Up are the first targets of each kind, in the order of
	// Machine.Targets; NotUpMore and UpMore count the ones left out.
	NotUp      []confirm.TargetView
	NotUpCount int
	NotUpMore  int
	Up         []confirm.TargetView
	UpCount    int
	UpMore     int
	Known      int
	Incidents  []confirm.Incident
}

// splitTargets lists the targets not up first, then the up ones, each
// capped.
func (p *statusPage) splitTargets(targets []confirm.TargetView) {
	p.Known = len(targets)
	for _, t := range targets {
		if t.State == confirm.StateUp {
			p.UpCount++
			if len(p.Up) < maxUpRows {
				p.Up = append(p.Up, t)
			}
			continue
		}
		p.NotUpCount++
		if len(p.NotUp) < maxNotUpRows {
			p.NotUp = append(p.NotUp, t)
		}
	}
	p.UpMore, p.NotUpMore = p.UpCount-len(p.Up), p.NotUpCount-len(p.NotUp)
}

func (c *Coordinator) handleStatus(w http.ResponseWriter, _ *http.Request) {
	data := statusPage{Locations: c.locations()}
	data.splitTargets(c.targets())
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
