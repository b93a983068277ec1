package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestAlertmanagerRoutes asks amtool where deploy/alertmanager.yml sends
// each alert of the rule files: TargetConfirmedDown and NoCoordinatorUp to
// the pager, info alerts to the info receiver, every other alert to
// tickets.
func TestAlertmanagerRoutes(t *testing.T) {
	amtool := mustTool(t, "amtool", "prometheus-alertmanager")
	type routeCase struct {
		name   string
		labels map[string]string
		want   string
	}
	cases := []routeCase{
		{"any severity=critical", map[string]string{"alertname": "SomethingElse", "severity": "critical"}, "pager"},
		{"any severity=info", map[string]string{"alertname": "SomethingElse", "severity": "info"}, "info"},
		{"no severity", map[string]string{"alertname": "SomethingElse"}, "ticket"},
		{"unknown severity", map[string]string{"alertname": "SomethingElse", "severity": "page"}, "ticket"},
	}
	for _, rules := range alertingRules(t) {
		for _, r := range rules {
			labels := map[string]string{
				"alertname": r.Alert, "target": "https://shop.example/", "module": "http_2xx", "location": "ams",
			}
			maps.Copy(labels, r.Labels)
			want := "ticket"
			switch {
			case slices.Contains(pagingAlerts, r.Alert), r.Labels["severity"] == severityCritical:
				want = "pager"
			case r.Labels["severity"] == severityInfo:
				want = "info"
			}
			cases = append(cases, routeCase{r.Alert + " " + fmt.Sprint(r.Labels), labels, want})
		}
	}
	for _, name := range pagingAlerts {
		if !slices.ContainsFunc(cases, func(c routeCase) bool { return c.labels["alertname"] == name }) {
			t.Fatalf("no %s rule to route", name)
		}
	}
	for _, c := range cases {
		args := []string{"config", "routes", "test", "--config.file=" + alertmanagerConfig, "--verify.receivers=" + c.want}
		for _, k := range slices.Sorted(maps.Keys(c.labels)) {
			args = append(args, fmt.Sprintf("%s=%q", k, c.labels[k]))
		}
		stdout, stderr, err := runTool(t, amtool, args...)
		if got := strings.TrimSpace(stdout); err != nil || got != c.want {
			t.Errorf("%s: amtool %s: receiver %q, want %q (%v)\n%s%s", c.name, strings.Join(args, " "), got, c.want, err, stdout, stderr)
		}
	}
}

// alertmanagerFile is deploy/alertmanager.yml, as much of it as the tests read.
type alertmanagerFile struct {
	Route        amRoute `yaml:"route"`
	InhibitRules []struct {
		SourceMatchers []string `yaml:"source_matchers"`
		TargetMatchers []string `yaml:"target_matchers"`
		Equal          []string `yaml:"equal"`
	} `yaml:"inhibit_rules"`
}

type amRoute struct {
	Matchers []string  `yaml:"matchers"`
	Routes   []amRoute `yaml:"routes"`
}

var alertnameMatcherRE = regexp.MustCompile(`^\s*alertname\s*(=~|=)\s*"([^"]*)"\s*$`)

// TestAlertmanagerNamesExistingAlerts asserts that every alertname the
// routes and inhibitions match on is an alert of the rule files, so that a
// renamed alert cannot silently escape its inhibition.
func TestAlertmanagerNamesExistingAlerts(t *testing.T) {
	var conf alertmanagerFile
	mustDecodeYAML(t, alertmanagerConfig, &conf)
	var matchers []string
	var walk func(r amRoute)
	walk = func(r amRoute) {
		matchers = append(matchers, r.Matchers...)
		for _, c := range r.Routes {
			walk(c)
		}
	}
	walk(conf.Route)
	if len(conf.InhibitRules) == 0 {
		t.Fatalf("%s has no inhibit_rules", alertmanagerConfig)
	}
	for _, ir := range conf.InhibitRules {
		matchers = append(matchers, ir.SourceMatchers...)
		matchers = append(matchers, ir.TargetMatchers...)
	}
	known := alertNames(t)
	checked := 0
	for _, m := range matchers {
		sm := alertnameMatcherRE.FindStringSubmatch(m)
		if sm == nil {
			continue
		}
		names := []string{sm[2]}
		if sm[1] == "=~" {
			names = strings.Split(sm[2], "|")
		}
		for _, n := range names {
			checked++
			if !slices.Contains(known, n) {
				t.Errorf("%s: matcher %s names %q, which is no alert of the rule files %v", alertmanagerConfig, m, n, known)
			}
		}
	}
	if checked == 0 {
		t.Errorf("%s: found no alertname matchers to check", alertmanagerConfig)
	}
}

// TestAlertmanagerInhibitions runs Debian's Alertmanager on loopback with
// deploy/alertmanager.yml (webhooks pointed at a local sink), posts a set of
// alerts and asserts which ones its inhibit rules suppress and where it
// routes them.
func TestAlertmanagerInhibitions(t *testing.T) {
	bin := mustTool(t, "prometheus-alertmanager", "prometheus-alertmanager")
	base := startAlertmanager(t, bin)

	type alertCase struct {
		labels    map[string]string
		inhibited bool
		receiver  string
	}
	const shop, api = "https://shop.example/", "https://api.example/"
	cases := []alertCase{
		// sources
		{map[string]string{"alertname": "LocationDown", "severity": "warning", "location": "ams", "cause": "canary_failing"}, false, "ticket"},
		{map[string]string{"alertname": "TargetConfirmedDown", "severity": "critical", "target": shop, "module": "http_2xx"}, false, "pager"},
		// ams is down: its per-target alerts are silenced, fra's are not
		{map[string]string{"alertname": "TargetFailingFromLocation", "severity": "warning", "location": "ams", "target": api, "module": "http_2xx"}, true, "ticket"},
		{map[string]string{"alertname": "TargetFailureRatioHigh", "severity": "warning", "location": "ams", "target": api, "module": "http_2xx"}, true, "ticket"},
		{map[string]string{"alertname": "SlowTimeToFirstByte", "severity": "warning", "location": "ams", "target": api, "module": "http_2xx"}, true, "ticket"},
		{map[string]string{"alertname": "TargetFailingFromLocation", "severity": "warning", "location": "fra", "target": api, "module": "http_2xx"}, false, "ticket"},
		// the exporter's own trouble in ams stays visible
		{map[string]string{"alertname": "SchedulerMissingChecks", "severity": "warning", "location": "ams", "reason": "late"}, false, "ticket"},
		// sfo's exporter distrusts its own results: its per-target alerts are silenced
		{map[string]string{"alertname": "ExporterDegraded", "severity": "warning", "location": "sfo", "reason": "scheduler_lag"}, false, "ticket"},
		{map[string]string{"alertname": "TargetFailingFromLocation", "severity": "warning", "location": "sfo", "target": api, "module": "http_2xx"}, true, "ticket"},
		{map[string]string{"alertname": "SlowTimeToFirstByte", "severity": "info", "location": "sfo", "target": api, "module": "http_2xx"}, true, "info"},
		// shop/http_2xx is confirmed down: its tickets are silenced, other modules' are not
		{map[string]string{"alertname": "TargetSeemsDown", "severity": "warning", "target": shop, "module": "http_2xx", "state": "seems_down"}, true, "ticket"},
		{map[string]string{"alertname": "TargetFailingFromLocation", "severity": "warning", "location": "fra", "target": shop, "module": "http_2xx"}, true, "ticket"},
		{map[string]string{"alertname": "TargetFailureRatioHigh", "severity": "warning", "location": "fra", "target": shop, "module": "http_2xx"}, true, "ticket"},
		{map[string]string{"alertname": "TargetSeemsDown", "severity": "warning", "target": shop, "module": "tcp_connect", "state": "seems_down"}, false, "ticket"},
		// certificates are not silenced by an outage
		{map[string]string{"alertname": "CertificateExpiresIn7Days", "severity": "warning", "target": shop, "module": "http_2xx"}, false, "ticket"},
		// no coordinator of the job is up: one page, its instances' tickets silenced
		{map[string]string{"alertname": "NoCoordinatorUp", "severity": "critical", "job": "vantage-coordinator"}, false, "pager"},
		{map[string]string{"alertname": "CoordinatorDown", "severity": "warning", "job": "vantage-coordinator", "instance": "coordinator-a:9716"}, true, "ticket"},
		{map[string]string{"alertname": "CoordinatorDown", "severity": "warning", "job": "vantage-coordinator", "instance": "coordinator-b:9716"}, true, "ticket"},
		// another job's coordinator is not explained by it
		{map[string]string{"alertname": "CoordinatorDown", "severity": "warning", "job": "vantage-coordinator-eu", "instance": "coordinator-eu:9716"}, false, "ticket"},
	}

	type postable struct {
		Labels   map[string]string `json:"labels"`
		StartsAt time.Time         `json:"startsAt"`
		EndsAt   time.Time         `json:"endsAt"`
	}
	now := time.Now()
	var post []postable
	for _, c := range cases {
		post = append(post, postable{c.labels, now.Add(-time.Minute), now.Add(time.Hour)})
	}
	body, err := json.Marshal(post)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s: %s", resp.Status, msg)
	}

	// The inhibitor learns the source alerts asynchronously: wait until
	// every alert is listed and every expected inhibition is in place, then
	// check the whole set once.
	type gettable struct {
		Labels    map[string]string `json:"labels"`
		Receivers []struct {
			Name string `json:"name"`
		} `json:"receivers"`
		Status struct {
			State       string   `json:"state"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	key := func(l map[string]string) string {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(l)) {
			fmt.Fprintf(&b, "%s=%q,", k, l[k])
		}
		return b.String()
	}
	var got map[string]gettable
	settled := func() bool {
		resp, err := http.Get(base + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list []gettable
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatalf("GET /api/v2/alerts: %v", err)
		}
		got = map[string]gettable{}
		for _, a := range list {
			got[key(a.Labels)] = a
		}
		for _, c := range cases {
			a, ok := got[key(c.labels)]
			if !ok || c.inhibited && len(a.Status.InhibitedBy) == 0 {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(10 * time.Second); !settled() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range cases {
		a, ok := got[key(c.labels)]
		if !ok {
			t.Errorf("alert %v not listed by Alertmanager", c.labels)
			continue
		}
		if inhibited := len(a.Status.InhibitedBy) > 0; inhibited != c.inhibited {
			t.Errorf("alert %v: inhibited %t (state %s), want %t", c.labels, inhibited, a.Status.State, c.inhibited)
		}
		var receivers []string
		for _, r := range a.Receivers {
			receivers = append(receivers, r.Name)
		}
		if !slices.Equal(receivers, []string{c.receiver}) {
			t.Errorf("alert %v: receivers %v, want [%s]", c.labels, receivers, c.receiver)
		}
	}
}

// startAlertmanager runs bin with deploy/alertmanager.yml on a free
// loopback port, clustering off, and returns its base URL once it is ready.
// The webhooks point at a sink in the test, not at the demo stack's
// webhook logger.
func startAlertmanager(t *testing.T, bin string) string {
	t.Helper()
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(sink.Close)
	raw, err := os.ReadFile(alertmanagerConfig)
	if err != nil {
		t.Fatal(err)
	}
	const webhookBase = "http://webhook-logger:5001"
	if !bytes.Contains(raw, []byte(webhookBase)) {
		t.Fatalf("%s: no webhook URL under %s to redirect", alertmanagerConfig, webhookBase)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(conf, bytes.ReplaceAll(raw, []byte(webhookBase), []byte(sink.URL)), 0o600); err != nil {
		t.Fatal(err)
	}

	addr := testbin.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+conf,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=info",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("alertmanager output:\n%s", logs.String())
		}
	})

	base := "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("alertmanager exited before becoming ready: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
	}
	t.Fatalf("alertmanager on %s not ready after 10s", addr)
	return ""
}
