package config

import (
	"testing"
	"time"
)

func TestMaintenanceAndStatusPage(t *testing.T) {
	c, err := ParseCoordinator([]byte(coordinatorLocations+`maintenance:
  - name: backups
    matchers: ['target=~"https://db-.*"', 'module="http_2xx"']
    schedule: "30 2 * * SUN"
    duration: 90m
    time_zone: Europe/Berlin
    comment: weekly backup
status_page:
  title: Example
  matchers: ['module!="icmp"']
  group_by: team
`), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	r := &c.Maintenance[0]
	labels := func(target, module string) func(string) string {
		return func(n string) string {
			return map[string]string{"target": target, "module": module}[n]
		}
	}
	if !r.Selects(labels("https://db-1.example", "http_2xx")) || r.Selects(labels("https://web.example", "http_2xx")) || r.Selects(labels("https://db-1.example", "tcp")) {
		t.Error("the window selects the wrong targets")
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	// Sunday 2026-11-29 02:30 in Berlin is 01:30 UTC; the window lasts 90m.
	start := time.Date(2026, 11, 29, 2, 30, 0, 0, berlin)
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{start.Add(-time.Second), false},
		{start, true},
		{start.Add(89*time.Minute + 59*time.Second), true},
		{start.Add(90 * time.Minute), false},
		{start.Add(24 * time.Hour), false},
	} {
		got, ok := r.ActiveAt(tc.at)
		if ok != tc.want || (ok && !got.Equal(start)) {
			t.Errorf("ActiveAt(%s) = %s, %v; want %v", tc.at.UTC(), got, ok, tc.want)
		}
	}
	ws := r.Windows(start.Add(-7*24*time.Hour-time.Minute), start.Add(time.Minute))
	if len(ws) != 2 || !ws[1][0].Equal(start) || !ws[1][1].Equal(start.Add(90*time.Minute)) {
		t.Errorf("windows over a week = %v, want the two Sunday windows", ws)
	}
	sp := &c.StatusPage
	if sp.Title != "Example" || sp.GroupBy != "team" || sp.Selects(labels("a", "icmp")) || !sp.Selects(labels("a", "http_2xx")) {
		t.Errorf("status page = %+v", sp)
	}
	if d := DefaultCoordinator().StatusPage; d.Title != DefaultStatusPage.Title || d.GroupBy != "module" || !d.Selects(labels("a", "b")) {
		t.Errorf("default status page = %+v, want the defaults showing every target", d)
	}
}

func TestMaintenanceInvalid(t *testing.T) {
	const head = coordinatorLocations + "maintenance:\n  - name: m\n"
	for _, tc := range []struct{ doc, want string }{
		{coordinatorLocations + "maintenance:\n  - matchers: ['module=\"a\"']\n", `c.yml:9: maintenance[0].name: name must be set`},
		{head + "    matchers: ['module=\"a\"']\n    schedule: '@daily'\n", `c.yml:9: maintenance[0].duration: duration of maintenance "m" must be positive, got 0s`},
		{head + "    matchers: ['module=\"a\"']\n    schedule: '@every 1h'\n    duration: 1h\n", `c.yml:11: maintenance[0].schedule: schedule of maintenance "m": @every has no fixed start times; use a cron expression`},
		{head + "    matchers: ['module=\"a\"']\n    schedule: '61 * * * *'\n    duration: 1h\n", `c.yml:11: maintenance[0].schedule: schedule of maintenance "m": end of range (61) above maximum (59): 61`},
		{head + "    schedule: '@daily'\n    duration: 1h\n", `c.yml:9: maintenance[0].matchers: matchers of maintenance "m": at least one matcher is needed`},
		{head + "    matchers: ['module=a']\n    schedule: '@daily'\n    duration: 1h\n", `c.yml:10: maintenance[0].matchers: matchers of maintenance "m": invalid matcher "module=a": want name="value", name!="value", name=~"regexp" or name!~"regexp"`},
		{head + "    matchers: ['target=~\"(\"']\n    schedule: '@daily'\n    duration: 1h\n", "c.yml:10: maintenance[0].matchers: matchers of maintenance \"m\": invalid matcher \"target=~\\\"(\\\"\": error parsing regexp: missing closing ): `^(?:()$`"},
		{head + "    matchers: ['module=\"a\"']\n    schedule: '@daily'\n    duration: 1h\n    time_zone: Mars/Olympus\n", `c.yml:13: maintenance[0].time_zone: time_zone of maintenance "m": unknown time zone "Mars/Olympus"`},
		{head + "    matchers: ['module=\"a\"']\n    schedule: '@daily'\n    duration: 1h\n  - name: m\n    matchers: ['module=\"a\"']\n    schedule: '@daily'\n    duration: 1h\n", `c.yml:13: maintenance[1].name: maintenance "m" is listed twice (also maintenance[0])`},
		{coordinatorLocations + "status_page:\n  group_by: a-b\n", `c.yml:9: status_page.group_by: group_by must be a label name, got "a-b"`},
		{coordinatorLocations + "status_page:\n  matchers: ['x']\n", `c.yml:9: status_page.matchers: invalid matcher "x": want name="value", name!="value", name=~"regexp" or name!~"regexp"`},
		{head + "    matcher: ['module=\"a\"']\n", `c.yml:10: maintenance[0]: unknown key "matcher"`},
	} {
		_, err := ParseCoordinator([]byte(tc.doc), "c.yml")
		if err == nil || err.Error() != tc.want {
			t.Errorf("document\n%s\ngot  %v\nwant %s", tc.doc, err, tc.want)
		}
	}
}

// FuzzParseMatcher: no input panics; an accepted matcher prints as a
// matcher that reads back the same and matches alike.
func FuzzParseMatcher(f *testing.F) {
	for _, s := range []string{`target="a"`, `module!="icmp"`, `target=~"https://.*\\.example"`, `team!~"(a|b)"`, `a="\u00e9\n"`, `x=`, `=~""`} {
		f.Add(s, "https://x.example")
	}
	f.Fuzz(func(t *testing.T, s, value string) {
		m, err := ParseMatcher(s)
		if err != nil {
			return
		}
		again, err := ParseMatcher(m.String())
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", s, m.String(), err)
		}
		if again.Name != m.Name || again.Type != m.Type || again.Value != m.Value || again.Matches(value) != m.Matches(value) {
			t.Fatalf("%q printed as %q reads back as %+v", s, m.String(), again)
		}
	})
}
