package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	yaml "go.yaml.in/yaml/v3"
)

const (
	provisioningDir = "/etc/grafana/provisioning"
	datasourceRef   = "${datasource}"
)

// wantDashboards are the dashboards the README walks through.
var wantDashboards = []string{"vantage-fleet.json", "vantage-overview.json", "vantage-target.json"}

// exprVariables are the variables a panel query may contain, with the
// value dashboards/README.md says to substitute when testing the queries.
var exprVariables = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__range":         "1h",
	"job":             "vantage-exporter",
	"location":        ".*",
	"target":          "http://demotarget:8080/",
}

// knownSeries are the series vantage, Prometheus and the recording rules
// expose that panels may query (dashboards/README.md lists them).
var knownSeries = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Fields(`
		up ALERTS process_resident_memory_bytes go_memstats_heap_inuse_bytes
		probe_success probe_duration_seconds probe_http_status_code probe_http_duration_seconds
		probe_ssl_earliest_cert_expiry probe_failure_info
		vantage_probe_checks_total vantage_probe_attempts vantage_probe_last_check_timestamp_seconds
		vantage_probe_failure_threshold
		vantage_scheduler_checks_total vantage_scheduler_in_flight vantage_scheduler_max_in_flight
		vantage_scheduler_targets vantage_scheduler_missed_checks_total
		vantage_exporter_canary_success vantage_exporter_reports_delivered_total
		vantage_exporter_reports_dropped_total vantage_exporter_report_queue_length
		vantage_target_state vantage_target_confirmed_down vantage_target_location_success
		vantage_target_down_since_timestamp_seconds vantage_incidents_total vantage_location_healthy
		vantage_coordinator_reports_received_total
		vantage_exporter_build_info vantage_probe_interval_seconds
		probe_tls_version_info probe_http_version probe_http_redirects
		vantage_exporter_degraded vantage_exporter_clock_stalled vantage_coordinator_clock_stalled
		vantage_location_suspect vantage_exporter_last_scheduler_tick_timestamp_seconds
		vantage_exporter_last_check_completed_timestamp_seconds vantage_exporter_last_report_delivered_timestamp_seconds
		vantage_coordinator_last_report_received_timestamp_seconds vantage_coordinator_last_store_commit_timestamp_seconds
		vantage_coordinator_last_verification_round_timestamp_seconds
		location:vantage_targets_failing:sum location:vantage_targets:count location:vantage_probe_check_failures:rate5m
		location_reason:probe_failure_info:count state:vantage_target_state:count
		target:vantage_target_uptime:ratio vantage_target_maintenance vantage_target_flapping`) {
		m[s] = true
	}
	for _, h := range []string{"vantage_probe_phase_duration_seconds", "vantage_scheduler_lag_seconds", "vantage_confirmation_duration_seconds"} {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			m[h+suffix] = true
		}
	}
	return m
}()

var (
	variableRE = regexp.MustCompile(`\$\{?([A-Za-z0-9_]+)`)
	selectorRE = regexp.MustCompile(`([A-Za-z_:][A-Za-z0-9_:]*)\s*\{`)
)

// grafanaMounts maps the grafana service's container paths to host paths.
func grafanaMounts(tb testing.TB, p *types.Project) pathMapper {
	tb.Helper()
	return newPathMapper(tb, mustService(tb, p, "grafana"))
}

// mustProvisioning decodes every YAML file of one provisioning folder.
func mustProvisioning[T any](tb testing.TB, m pathMapper, kind string) []T {
	tb.Helper()
	dir, ok := m.hostPath(provisioningDir + "/" + kind)
	if !ok {
		tb.Fatalf("grafana does not mount %s/%s", provisioningDir, kind)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.y*ml"))
	if len(files) == 0 {
		tb.Fatalf("%s holds no provisioning files", dir)
	}
	var out []T
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var v T
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&v); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		out = append(out, v)
	}
	return out
}

type datasourcesFile struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string         `yaml:"name"`
		UID       string         `yaml:"uid"`
		Type      string         `yaml:"type"`
		Access    string         `yaml:"access"`
		URL       string         `yaml:"url"`
		IsDefault bool           `yaml:"isDefault"`
		Editable  bool           `yaml:"editable"`
		JSONData  map[string]any `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type dashboardsFile struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		OrgID                 int    `yaml:"orgId"`
		Folder                string `yaml:"folder"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

// serviceOfURL returns the compose service and port a URL points at.
func serviceOfURL(tb testing.TB, p *types.Project, raw string) (string, string) {
	tb.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		tb.Fatalf("bad URL %q", raw)
	}
	mustService(tb, p, u.Hostname())
	return u.Hostname(), u.Port()
}

// TestGrafanaDatasources checks the provisioned data sources: Prometheus
// and Jaeger at their compose services, and exemplars linked to Jaeger.
func TestGrafanaDatasources(t *testing.T) {
	p := mustProject(t)
	files := mustProvisioning[datasourcesFile](t, grafanaMounts(t, p), "datasources")
	dsTypes := map[string]string{} // uid -> type
	var promTraceDest []string
	for _, f := range files {
		if f.APIVersion != 1 {
			t.Errorf("datasources file apiVersion %d, want 1", f.APIVersion)
		}
		for _, ds := range f.Datasources {
			if ds.UID == "" {
				t.Errorf("data source %q has no uid: dashboards and exemplar links need a stable one", ds.Name)
			}
			dsTypes[ds.UID] = ds.Type
			switch ds.Type {
			case "prometheus":
				if svc, port := serviceOfURL(t, p, ds.URL); svc != "prometheus" || port != "9090" {
					t.Errorf("Prometheus data source at %s, want the prometheus service on 9090", ds.URL)
				}
				dests, _ := ds.JSONData["exemplarTraceIdDestinations"].([]any)
				for _, d := range dests {
					d, _ := d.(map[string]any)
					uid, _ := d["datasourceUid"].(string)
					name, _ := d["name"].(string)
					if name == "" {
						t.Errorf("exemplar destination %v has no label name", d)
					}
					promTraceDest = append(promTraceDest, uid)
				}
			case "jaeger":
				if svc, port := serviceOfURL(t, p, ds.URL); svc != "jaeger" || port != "16686" {
					t.Errorf("Jaeger data source at %s, want the jaeger service on 16686", ds.URL)
				}
			}
		}
	}
	if len(promTraceDest) == 0 {
		t.Fatal("the Prometheus data source has no exemplarTraceIdDestinations")
	}
	for _, uid := range promTraceDest {
		if dsTypes[uid] != "jaeger" {
			t.Errorf("exemplars link to data source uid %q (type %q), want the Jaeger data source", uid, dsTypes[uid])
		}
	}
}

// TestGrafanaDashboardProvider checks that Grafana loads the dashboards of
// the repository's dashboards/ folder.
func TestGrafanaDashboardProvider(t *testing.T) {
	p := mustProject(t)
	m := grafanaMounts(t, p)
	files := mustProvisioning[dashboardsFile](t, m, "dashboards")
	want := filepath.Join(repoRoot(t), "dashboards")
	found := false
	for _, f := range files {
		for _, pr := range f.Providers {
			if pr.Type != "file" {
				continue
			}
			host, ok := m.hostPath(pr.Options.Path)
			if !ok {
				t.Errorf("provider %q loads %s, which grafana does not mount", pr.Name, pr.Options.Path)
				continue
			}
			if host == want {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no dashboard provider loads the mounted %s", want)
	}
	for _, name := range wantDashboards {
		if _, err := os.Stat(filepath.Join(want, name)); err != nil {
			t.Errorf("dashboards/%s: %v", name, err)
		}
	}
	env := mustService(t, p, "grafana").Environment
	if home := env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != nil {
		if h, ok := m.hostPath(*home); !ok {
			t.Errorf("home dashboard %s is not mounted", *home)
		} else if _, err := os.Stat(h); err != nil {
			t.Errorf("home dashboard: %v", err)
		}
	}
}

// The parts of a dashboard the tests read.
type (
	dashboard struct {
		UID           string  `json:"uid"`
		Title         string  `json:"title"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []variable `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name       string      `json:"name"`
				Datasource *datasource `json:"datasource"`
				Expr       string      `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	panel struct {
		ID         int                      `json:"id"`
		Type       string                   `json:"type"`
		Title      string                   `json:"title"`
		Datasource *datasource              `json:"datasource"`
		Targets    []panelTarget            `json:"targets"`
		Panels     []panel                  `json:"panels"`
		GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	}
	panelTarget struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	}
	datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	variable struct {
		Name       string      `json:"name"`
		Type       string      `json:"type"`
		Query      any         `json:"query"`
		Datasource *datasource `json:"datasource"`
	}
)

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func mustDashboards(tb testing.TB) map[string]dashboard {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot(tb), "dashboards", "*.json"))
	if len(files) == 0 {
		tb.Fatal("dashboards/ holds no dashboards")
	}
	out := map[string]dashboard{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(data, &d); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = d
	}
	return out
}

// query is one PromQL expression of a dashboard and where it is.
type query struct{ where, expr string }

// queries lists every panel query and annotation query of d.
func (d dashboard) queries() []query {
	var out []query
	for _, p := range allPanels(d.Panels) {
		for _, t := range p.Targets {
			out = append(out, query{fmt.Sprintf("panel %d %q query %s", p.ID, p.Title, t.RefID), t.Expr})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, query{fmt.Sprintf("annotation %q", a.Name), a.Expr})
		}
	}
	return out
}

// TestDashboards checks every dashboard's structure: a stable uid, a
// current schema, the ${datasource} variable used by every query, only
// the documented variables and known series in queries.
func TestDashboards(t *testing.T) {
	dashboards := mustDashboards(t)
	names := slices.Sorted(maps.Keys(dashboards))
	for _, want := range wantDashboards {
		if !slices.Contains(names, want) {
			t.Errorf("dashboards/%s is missing", want)
		}
	}
	uids := map[string]string{}
	for _, name := range names {
		d := dashboards[name]
		t.Run(name, func(t *testing.T) {
			if d.UID == "" || len(d.UID) > 40 {
				t.Errorf("uid %q: want a stable uid of at most 40 characters", d.UID)
			}
			if other, ok := uids[d.UID]; ok {
				t.Errorf("uid %q is also the uid of %s", d.UID, other)
			}
			uids[d.UID] = name
			if d.Title == "" {
				t.Error("no title")
			}
			if d.SchemaVersion < 39 {
				t.Errorf("schemaVersion %d, want 39 or later", d.SchemaVersion)
			}
			defined := map[string]bool{}
			for _, v := range d.Templating.List {
				defined[v.Name] = true
				switch {
				case v.Name == "datasource":
					if v.Type != "datasource" || v.Query != "prometheus" {
						t.Errorf("variable datasource is of type %q query %v, want a datasource variable of prometheus", v.Type, v.Query)
					}
				case v.Type == "query":
					if v.Datasource == nil || v.Datasource.UID != datasourceRef {
						t.Errorf("variable %s queries %+v, want %s", v.Name, v.Datasource, datasourceRef)
					}
				}
			}
			if !defined["datasource"] {
				t.Fatal("no datasource variable")
			}

			ids := map[int]bool{}
			withQueries := 0
			for _, p := range allPanels(d.Panels) {
				if ids[p.ID] {
					t.Errorf("panel id %d used twice", p.ID)
				}
				ids[p.ID] = true
				if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
					t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
				}
				if p.Type == "row" {
					continue
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no queries", p.Title)
					continue
				}
				withQueries++
				if p.Datasource == nil || p.Datasource.UID != datasourceRef {
					t.Errorf("panel %q uses data source %+v, want %s", p.Title, p.Datasource, datasourceRef)
				}
				for _, tg := range p.Targets {
					if tg.Datasource == nil || tg.Datasource.UID != datasourceRef {
						t.Errorf("panel %q query %s uses data source %+v, want %s", p.Title, tg.RefID, tg.Datasource, datasourceRef)
					}
				}
			}
			if withQueries < 5 {
				t.Errorf("%d panels with queries, want at least 5", withQueries)
			}
			for _, a := range d.Annotations.List {
				if a.Expr != "" && (a.Datasource == nil || a.Datasource.UID != datasourceRef) {
					t.Errorf("annotation %q uses data source %+v, want %s", a.Name, a.Datasource, datasourceRef)
				}
			}

			for _, q := range d.queries() {
				if strings.TrimSpace(q.expr) == "" {
					t.Errorf("%s: empty expr", q.where)
				}
				for _, m := range variableRE.FindAllStringSubmatch(q.expr, -1) {
					if _, ok := exprVariables[m[1]]; !ok {
						t.Errorf("%s uses $%s; queries may only use %v", q.where, m[1], slices.Sorted(maps.Keys(exprVariables)))
					} else if !strings.HasPrefix(m[1], "__") && !defined[m[1]] {
						t.Errorf("%s uses $%s, which the dashboard does not define", q.where, m[1])
					}
				}
				for _, m := range selectorRE.FindAllStringSubmatch(q.expr, -1) {
					if !knownSeries[m[1]] {
						t.Errorf("%s selects %s, which no vantage program or Prometheus exposes", q.where, m[1])
					}
				}
			}
		})
	}
}

// substitute replaces the dashboard variables of expr by their test values.
func substitute(expr string) string {
	return variableRE.ReplaceAllStringFunc(expr, func(v string) string {
		name := strings.TrimPrefix(strings.TrimPrefix(v, "$"), "{")
		if val, ok := exprVariables[name]; ok {
			return val
		}
		return v
	})
}

// TestDashboardQueriesParse checks every query with Prometheus' own PromQL
// parser: the queries, variables substituted, become the recording rules
// of a file that promtool check rules must accept.
func TestDashboardQueriesParse(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install the Debian package prometheus")
	}
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	var where []string
	dashboards := mustDashboards(t)
	for _, name := range slices.Sorted(maps.Keys(dashboards)) {
		for _, q := range dashboards[name].queries() {
			rules = append(rules, rule{Record: fmt.Sprintf("dashboard:query_%d", len(rules)), Expr: substitute(q.expr)})
			where = append(where, name+": "+q.where)
		}
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboards", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboards.rules.yml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := run(t, promtool, "check", "rules", file)
	if code != 0 {
		// Name the queries promtool complains about.
		for _, m := range regexp.MustCompile(`dashboard:query_(\d+)`).FindAllStringSubmatch(out, -1) {
			if i, err := strconv.Atoi(m[1]); err == nil && i < len(where) {
				t.Logf("%s is %s", m[0], where[i])
			}
		}
		t.Fatalf("promtool check rules on the dashboards' queries: exit %d\n%s", code, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rules)); !strings.Contains(out, want) {
		t.Errorf("promtool did not check all %d queries:\n%s", len(rules), out)
	}
}
