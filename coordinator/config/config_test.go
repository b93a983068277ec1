package config

import (
	"strings"
	"testing"
	"time"
)

const coordinatorLocations = `locations:
  - name: ams
    url: http://127.0.0.1:9715
  - name: fra
    url: http://127.0.0.2:9715
  - name: nyc
    url: https://nyc.example:9715
`

func TestParseCoordinator(t *testing.T) {
	c, err := ParseCoordinator([]byte(coordinatorLocations), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Locations) != 3 || c.Locations[1].Name != "fra" || c.Locations[2].URL != "https://nyc.example:9715" {
		t.Errorf("locations = %+v", c.Locations)
	}
	if c.Confirmation != DefaultConfirmation {
		t.Errorf("confirmation = %+v, want the defaults", c.Confirmation)
	}
	if c.HealthCheckInterval != DefaultHealthCheckInterval {
		t.Errorf("health_check_interval = %s, want the default %s", c.HealthCheckInterval, DefaultHealthCheckInterval)
	}
	c, err = ParseCoordinator([]byte(coordinatorLocations+"health_check_interval: 1m\nconfirmation:\n  min_failing_locations: 3\n  verify_timeout: 4s\n"), "c.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfirmation
	want.MinFailingLocations, want.VerifyTimeout = 3, 4*time.Second
	if c.Confirmation != want {
		t.Errorf("a partial confirmation section = %+v, want %+v", c.Confirmation, want)
	}
	if c.HealthCheckInterval != time.Minute {
		t.Errorf("health_check_interval = %s, want 1m", c.HealthCheckInterval)
	}
}

func TestDefaultCoordinator(t *testing.T) {
	c := DefaultCoordinator()
	if len(c.Locations) != 1 || c.Locations[0].URL != "http://127.0.0.1:9715" || c.Confirmation.MinFailingLocations != 1 {
		t.Errorf("default coordinator config = %+v, want the local exporter as the one location", c)
	}
}

func TestParseCoordinatorInvalid(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"locations: []\n", `c.yml:1: locations: at least one location must be listed`},
		{"locations:\n  - url: http://a:1\n", `c.yml:2: locations[0].name: name must be set`},
		{"locations:\n  - name: a b\n    url: http://a:1\n", `c.yml:2: locations[0].name: invalid location name "a b": use letters, digits, '_', '.' and '-'`},
		{"locations:\n  - name: ams\n    url: http://a:1\n  - name: ams\n    url: http://b:1\n", `c.yml:4: locations[1].name: location "ams" is listed twice (also locations[0])`},
		{"locations:\n  - name: ams\n    url: 127.0.0.1:9715\n", `c.yml:3: locations[0].url: url of location "ams" must be an http(s) URL, got "127.0.0.1:9715"`},
		{"locations:\n  - name: ams\n", `c.yml:2: locations[0].url: url of location "ams" must be an http(s) URL, got ""`},
		{"locations:\n  - name: ams\n    url: http://a:1\n  - name: fra\n    url: http://a:1\n", `c.yml:5: locations[1].url: locations "ams" and "fra" have the same url http://a:1`},
		{"locations:\n  - name: ams\n    url: http://a:1\n    urls: [http://b:1]\n", `c.yml:4: locations[0].urls: location "ams" sets both url and urls; use one`},
		{"locations:\n  - name: ams\n    urls:\n      - http://a:1\n      - b:1\n", `c.yml:5: locations[0].urls[1]: urls of location "ams" must be an http(s) URL, got "b:1"`},
		{"locations:\n  - name: ams\n    urls: [http://a:1, http://b:1]\n  - name: fra\n    url: http://b:1\n", `c.yml:5: locations[1].url: locations "ams" and "fra" have the same url http://b:1`},
		{coordinatorLocations + "confirmation:\n  min_failing_locations: 4\n", `c.yml:9: confirmation.min_failing_locations: min_failing_locations 4 is more than the 3 locations listed: no outage could ever be confirmed`},
		{coordinatorLocations + "confirmation:\n  min_failing_locations: 0\n", `c.yml:9: confirmation.min_failing_locations: min_failing_locations must be at least 1, got 0`},
		{coordinatorLocations + "confirmation:\n  verify_timeout: 0s\n", `c.yml:9: confirmation.verify_timeout: verify_timeout must be positive, got 0s`},
		{coordinatorLocations + "confirmation:\n  recovery_successes: 0\n", `c.yml:9: confirmation.recovery_successes: recovery_successes must be at least 1, got 0`},
		{coordinatorLocations + "confirmation:\n  reverify_interval: 10ms\n", `c.yml:9: confirmation.reverify_interval: reverify_interval must be at least 1s, got 10ms`},
		{coordinatorLocations + "http_client:\n  bearer_token: a\n  bearer_token_file: b\n", `c.yml:8: http_client: at most one of bearer_token & bearer_token_file must be configured`},
		{coordinatorLocations + "health_check_interval: 0s\n", `c.yml:8: health_check_interval: health_check_interval must be at least 1s, got 0s`},
		{coordinatorLocations + "confirmation:\n  min_failing: 2\n", `c.yml:9: confirmation: unknown key "min_failing"`},
		{coordinatorLocations + "modules: {}\n", `c.yml:8: (top level): unknown key "modules"`},
	} {
		_, err := ParseCoordinator([]byte(tc.doc), "c.yml")
		if err == nil || err.Error() != tc.want {
			t.Errorf("document\n%s\ngot  %v\nwant %s", tc.doc, err, tc.want)
		}
	}
	if _, err := LoadCoordinatorFile("testdata/does-not-exist.yml"); err == nil || !strings.Contains(err.Error(), "does-not-exist.yml") {
		t.Errorf("missing file: %v", err)
	}
}
