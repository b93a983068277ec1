package coordinator

import (
	"cmp"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/vantageprobe/vantage/coordinator/confirm"
)

// The public status page (--web.status-page): the targets the
// configuration's status_page section chooses, grouped by a label, with
// their current state, 90 days of daily uptime and the open outages; and
// SVG badges of one target's state and uptime. It shows nothing else of
// the coordinator (no locations, no evidence, no other targets) and needs
// no token. Everything is inline: no script, no external asset.
//
// Pushed events the same matchers choose (by their labels, and source
// and id) are shown beside the targets: by subject (else id), down while
// raised or acknowledged, operational otherwise, with when their source
// last spoke. Neither the source nor the detail is shown.

// statusDays is how many days of uptime bars the page draws.
const statusDays = 90

// Public states: what the page says of a target.
const (
	publicOperational = "operational"
	publicDown        = "down"
	publicChecking    = "checking"
	publicUnknown     = "unknown"
	publicMaintenance = "maintenance"
)

// publicState says a target's state in words the public reads.
func publicState(v confirm.TargetView, maintenance bool) string {
	switch {
	case v.State == confirm.StateDown:
		return publicDown
	case maintenance:
		return publicMaintenance
	case v.State == confirm.StateSeemsDown:
		return publicChecking
	case v.State == confirm.StateUnknown:
		return publicUnknown
	}
	return publicOperational
}

// publicTarget is one row of the page.
type publicTarget struct {
	Target, Module string
	State          string
	// Uptime is over the statusDays days; Days are the daily bars.
	Uptime float64
	Days   []publicDay
	// Badge is the path of the target's state badge.
	Badge string
	// Event: a pushed event, not a target: no bars, no badge, and
	// LastReceived is when its source last spoke.
	Event        bool
	LastReceived time.Time
}

type publicDay struct {
	Date   string
	Uptime float64
	// Class colours the bar: ok (no downtime), minor (< 1% down), major.
	Class string
}

type publicGroup struct {
	Name    string
	Targets []publicTarget
}

type publicIncident struct {
	Target, Module string
	State          string
	StartedAt      time.Time
}

type publicPage struct {
	Title     string
	Overall   string
	OverallOK bool
	Groups    []publicGroup
	Incidents []publicIncident
	Updated   time.Time
	Days      int
}

var publicTemplate = template.Must(template.New("public").Funcs(template.FuncMap{
	"pct": func(f float64) string { return formatPercent(f) },
	"ts":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
*{box-sizing:border-box}
body{margin:0;font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa}
main{max-width:860px;margin:0 auto;padding:16px}
h1{font-size:1.6em;margin:.4em 0 .6em}
h2{font-size:1.15em;margin:1.4em 0 .5em}
section h2{margin:.8em 0 .3em}
.overall{padding:14px 16px;border-radius:8px;color:#fff;font-weight:600;background:#cf222e}
.overall.ok{background:#1a7f37}
section.group,section.incidents{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:4px 16px;margin-top:16px}
.target{padding:12px 0;border-top:1px solid #eaeef2}
.target:first-of-type{border-top:0}
.row{display:flex;justify-content:space-between;align-items:baseline;gap:8px;flex-wrap:wrap}
.name{font-weight:600;overflow-wrap:anywhere}
.module{color:#656d76;font-size:.85em}
.state{font-weight:600;white-space:nowrap}
.state.operational{color:#1a7f37}.state.down{color:#cf222e}.state.checking,.state.unknown{color:#9a6700}.state.maintenance{color:#0969da}
.bars{display:flex;gap:1px;height:28px;margin:8px 0 4px}
.bar{flex:1;border-radius:1px;background:#2da44e}
.bar.minor{background:#d4a72c}.bar.major{background:#cf222e}
.legend{display:flex;justify-content:space-between;color:#656d76;font-size:.8em}
.legend .recent{display:none}
.incident{padding:10px 0;border-top:1px solid #eaeef2}
.incident:first-of-type{border-top:0}
footer{color:#656d76;font-size:.8em;margin:16px 0}
@media (max-width:600px){
 main{padding:10px}
 h1{font-size:1.3em}
 .bar:nth-child(-n+60){display:none}
 .legend .all{display:none}.legend .recent{display:inline}
}
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<div class="overall{{if .OverallOK}} ok{{end}}" id="overall">{{.Overall}}</div>
{{if .Incidents}}<section class="incidents"><h2>Current incidents</h2>
{{range .Incidents}}<div class="incident"><span class="name">{{.Target}}</span> <span class="module">{{.Module}}</span><br>
<span class="state {{.State}}">{{.State}}</span> since {{ts .StartedAt}}</div>
{{end}}</section>{{end}}
{{range .Groups}}<section class="group"><h2>{{.Name}}</h2>
{{range .Targets}}<div class="target" data-target="{{.Target}}" data-module="{{.Module}}" data-badge="{{.Badge}}">
<div class="row"><span><span class="name">{{.Target}}</span> <span class="module">{{.Module}}</span></span><span class="state {{.State}}">{{.State}}</span></div>
{{if .Event}}<div class="legend event"><span>last heard from {{ts .LastReceived}}</span></div>
{{else}}<div class="bars" role="img" aria-label="daily uptime, oldest first">{{range .Days}}<div class="bar {{.Class}}" title="{{.Date}}: {{pct .Uptime}}"></div>{{end}}</div>
<div class="legend"><span class="all">{{$.Days}} days ago</span><span class="recent">30 days ago</span><span>{{pct .Uptime}} over {{$.Days}} days</span><span>today</span></div>{{end}}
</div>
{{end}}</section>
{{else}}<p>No target to show.</p>{{end}}
<footer>Updated {{ts .Updated}}. Uptime counts confirmed outages only, outside maintenance windows.</footer>
</main>
</body>
</html>
`))

// formatPercent renders a ratio as a percentage that never rounds up to
// 100% while there was downtime.
func formatPercent(f float64) string {
	p := f * 100
	switch {
	case f >= 1:
		return "100%"
	case p >= 99.99:
		return "99.99%"
	}
	return fmt.Sprintf("%.2f%%", float64(int(p*100))/100)
}

// publicTargets is the targets the status page shows, sorted.
func (c *Coordinator) publicTargets() []confirm.TargetView {
	sp := &c.conf.Load().StatusPage
	return slices.DeleteFunc(c.targets(), func(v confirm.TargetView) bool {
		return !sp.Selects(c.maint.set.Load().targetLabel(confirm.Key{Target: v.Target, Module: v.Module}))
	})
}

// eventLabel is an event's value of a label, for the status page's
// matchers and grouping: source, id, or one of its labels.
func eventLabel(e Event) func(string) string {
	return func(name string) string {
		switch name {
		case "source":
			return e.Source
		case "id":
			return e.ID
		}
		return e.Labels[name]
	}
}

// publicEvents is the pushed events the status page shows, as they
// stand at now.
func (c *Coordinator) publicEvents(now time.Time) []Event {
	sp := &c.conf.Load().StatusPage
	return slices.DeleteFunc(c.events.list(), func(e Event) bool { return !sp.Selects(eventLabel(e.raisedAt(now))) })
}

// buildPublicPage gathers the page's data at now.
func (c *Coordinator) buildPublicPage(now time.Time) (publicPage, error) {
	sp := c.conf.Load().StatusPage
	page := publicPage{Title: sp.Title, Updated: now, Days: statusDays}
	byKey, err := c.store.IncidentsSince(now.Add(-statusDays * 24 * time.Hour))
	if err != nil {
		return page, err
	}
	set := c.maint.set.Load()
	groups := map[string]*publicGroup{}
	down, maintenance, shown := 0, 0, 0
	for _, v := range c.publicTargets() {
		shown++
		k := confirm.Key{Target: v.Target, Module: v.Module}
		pt := publicTarget{Target: v.Target, Module: v.Module, State: publicState(v, set.applies(k, now)),
			Badge: badgePath(k, "status")}
		days := dailyUptime(k, byKey[k], set, statusDays, now)
		var downSec, rangeSec float64
		for _, d := range days {
			downSec += d.DownSeconds
			rangeSec += d.RangeSeconds
			class := "ok"
			switch {
			case d.DownSeconds == 0:
			case d.UptimeRatio >= 0.99:
				class = "minor"
			default:
				class = "major"
			}
			pt.Days = append(pt.Days, publicDay{Date: d.From.Format("2006-01-02"), Uptime: d.UptimeRatio, Class: class})
		}
		pt.Uptime = 1 - downSec/rangeSec
		if pt.State == publicMaintenance {
			maintenance++
		}
		if pt.State == publicDown {
			down++
			page.Incidents = append(page.Incidents, publicIncident{Target: v.Target, Module: v.Module, State: pt.State, StartedAt: v.DownSince})
		}
		label := set.targetLabel(k)(sp.GroupBy)
		if label == "" {
			label = "Other"
		}
		g, ok := groups[label]
		if !ok {
			g = &publicGroup{Name: label}
			groups[label] = g
		}
		g.Targets = append(g.Targets, pt)
	}
	for _, e := range c.publicEvents(now) {
		shown++
		pt := publicTarget{Target: cmp.Or(e.Subject, e.ID), Module: "event", State: publicOperational, Event: true, LastReceived: e.LastReceived}
		if e.State == EventRaised || e.State == EventAcknowledged {
			pt.State = publicDown
			down++
			page.Incidents = append(page.Incidents, publicIncident{Target: pt.Target, Module: pt.Module, State: pt.State, StartedAt: e.RaisedAt})
		}
		label := eventLabel(e)(sp.GroupBy)
		if label == "" {
			label = "Events"
		}
		g, ok := groups[label]
		if !ok {
			g = &publicGroup{Name: label}
			groups[label] = g
		}
		g.Targets = append(g.Targets, pt)
	}
	for _, g := range groups {
		page.Groups = append(page.Groups, *g)
	}
	slices.SortFunc(page.Groups, func(a, b publicGroup) int { return cmp.Compare(a.Name, b.Name) })
	page.OverallOK = down == 0
	switch {
	case down > 0:
		page.Overall = fmt.Sprintf("%d of %d down", down, shown)
	case maintenance > 0:
		page.Overall = fmt.Sprintf("Operational; maintenance under way on %d of %d", maintenance, shown)
	default:
		page.Overall = "All systems operational"
	}
	return page, nil
}

// handleStatusPage adds the status page's routes.
func (c *Coordinator) handleStatusPage(mux *http.ServeMux) {
	mux.HandleFunc("GET /status", c.handlePublicPage)
	mux.HandleFunc("GET /status/badge/{target}/{badge}", c.handleBadge)
}

func (c *Coordinator) handlePublicPage(w http.ResponseWriter, _ *http.Request) {
	page, err := c.buildPublicPage(time.Now().UTC())
	if err != nil {
		c.logger.Error("Reading the incident log for the status page failed", "err", err)
		http.Error(w, "the status page is unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=30")
	if err := publicTemplate.Execute(w, page); err != nil {
		c.logger.Error("Rendering the public status page failed", "err", err)
	}
}

// badgePath is the path of a target's badge: the target path-escaped,
// then status.svg or uptime.svg, with the module as a query parameter.
func badgePath(k confirm.Key, kind string) string {
	return "/status/badge/" + url.PathEscape(k.Target) + "/" + kind + ".svg?module=" + url.QueryEscape(k.Module)
}

// handleBadge answers GET /status/badge/{target}/status.svg (up, down,
// …) and /status/badge/{target}/uptime.svg (?range=, 30d by default, at
// most 90d) for a target the status page shows; ?module= as for the
// uptime API.
func (c *Coordinator) handleBadge(w http.ResponseWriter, r *http.Request) {
	target, badge := r.PathValue("target"), r.PathValue("badge")
	if badge != "status.svg" && badge != "uptime.svg" {
		http.Error(w, "badge must be status.svg or uptime.svg", http.StatusNotFound)
		return
	}
	module := r.URL.Query().Get("module")
	var view *confirm.TargetView
	var modules []string
	for _, v := range c.publicTargets() {
		if v.Target == target {
			modules = append(modules, v.Module)
			if v.Module == module || module == "" {
				view = &v
			}
		}
	}
	switch {
	case view == nil:
		http.Error(w, fmt.Sprintf("no target %q with module %q on the status page", target, module), http.StatusNotFound)
		return
	case module == "" && len(modules) > 1:
		http.Error(w, fmt.Sprintf("module must be given: target %q is shown with modules %v", target, modules), http.StatusBadRequest)
		return
	}
	k := confirm.Key{Target: view.Target, Module: view.Module}
	now := time.Now().UTC()
	var label, value, colour string
	if badge == "status.svg" {
		label, value = "status", publicState(*view, c.maint.inMaintenance(k, now))
		colour = map[string]string{publicOperational: "#2da44e", publicDown: "#cf222e", publicMaintenance: "#0969da"}[value]
		if colour == "" {
			colour = "#9a6700"
		}
		if value == publicOperational {
			value = "up"
		}
	} else {
		rng, err := c.parseUptimeRange(cmp.Or(r.URL.Query().Get("range"), "30d"))
		if err == nil && rng > statusDays*24*time.Hour {
			err = fmt.Errorf("range must be at most %dd", statusDays)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		byKey, err := c.store.IncidentsSince(now.Add(-rng))
		if err != nil {
			http.Error(w, "the badge is unavailable", http.StatusInternalServerError)
			return
		}
		u := computeUptime(k, byKey[k], c.maint.set.Load(), now.Add(-rng), now)
		label, value = "uptime "+cmp.Or(r.URL.Query().Get("range"), "30d"), formatPercent(u.UptimeRatio)
		colour = "#2da44e"
		switch {
		case u.UptimeRatio < 0.99:
			colour = "#cf222e"
		case u.UptimeRatio < 0.999:
			colour = "#d4a72c"
		}
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write([]byte(renderBadge(label, value, colour)))
}

// renderBadge draws a flat two-part badge. Widths are estimated from the
// text: about 7px a character at 11px, plus padding.
func renderBadge(label, value, colour string) string {
	lw, vw := 7*len(label)+10, 7*len(value)+10
	w := lw + vw
	return fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">`+
		`<title>%s: %s</title>`+
		`<rect width="%d" height="20" rx="3" fill="#555"/><rect x="%d" width="%d" height="20" rx="3" fill="%s"/><rect x="%d" width="4" height="20" fill="%s"/>`+
		`<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">`+
		`<text x="%d" y="14">%s</text><text x="%d" y="14">%s</text></g></svg>`,
		w, html.EscapeString(label), html.EscapeString(value), html.EscapeString(label), html.EscapeString(value),
		w, lw, vw, colour, lw, colour, lw/2, html.EscapeString(label), lw+vw/2, html.EscapeString(value))
}
