package config

import (
	"strings"
	"testing"
)

// FuzzLoad checks that no document makes ParseCoordinator panic, that every
// error names the document, and that every accepted document is valid.
func FuzzLoad(f *testing.F) {
	f.Add(defaultCoordinatorYAML)
	f.Add([]byte(coordinatorLocations + "confirmation:\n  min_failing_locations: 3\n  verify_timeout: 2s\nhttp_client:\n  basic_auth: {username: u, password: p}\n"))
	f.Add([]byte("locations: [{name: a, url: 'http://a:9715'}, {name: a, url: 'http://b:9715'}]\n"))
	f.Add([]byte(coordinatorLocations + "maintenance:\n  - {name: m, matchers: ['target=~\"a.*\"'], schedule: '0 2 * * *', duration: 1h, time_zone: UTC}\nstatus_page: {title: t, matchers: ['module!=\"icmp\"'], group_by: team}\n"))
	const source = "fuzz.yml"
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCoordinator(data, source)
		if err != nil {
			if !strings.HasPrefix(err.Error(), source+":") {
				t.Fatalf("error does not start with %q: %v", source+":", err)
			}
			return
		}
		if len(c.Locations) == 0 || c.Confirmation.MinFailingLocations < 1 || c.Confirmation.MinFailingLocations > len(c.Locations) {
			t.Fatalf("accepted with %d locations and min_failing_locations %d", len(c.Locations), c.Confirmation.MinFailingLocations)
		}
	})
}
