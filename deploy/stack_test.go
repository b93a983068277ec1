package deploy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// dockerDNS is Docker's embedded DNS server, in every container of the
// stack.
const dockerDNS = "127.0.0.11"

// TestHealthchecks checks that every service has a healthcheck that can
// run in its image. The vantage image has no shell: its services must run
// the exporter's probe subcommand directly (CMD, not CMD-SHELL), and that
// command is run here against a server answering as the service would:
// it must pass for a 200 and fail for a 503.
func TestHealthchecks(t *testing.T) {
	p := mustProject(t)
	bin := mustBinary(t, "vantage-exporter")
	for name, s := range p.Services {
		hc := s.HealthCheck
		if name == "jaeger" {
			// Jaeger v2's image has neither a shell nor an HTTP client.
			if hc != nil && !hc.Disable {
				t.Errorf("jaeger has a healthcheck %v its image cannot run", hc.Test)
			}
			continue
		}
		if hc == nil || len(hc.Test) < 2 {
			t.Errorf("service %s has no healthcheck", name)
			continue
		}
		if s.Image != "vantage:dev" {
			if hc.Test[0] != "CMD" || hc.Test[1] != "wget" {
				t.Errorf("service %s: healthcheck %v, want [CMD wget …] (its image has busybox wget)", name, hc.Test)
			}
			continue
		}
		t.Run(name, func(t *testing.T) {
			test := hc.Test
			if test[0] != "CMD" || test[1] != "/usr/local/bin/vantage-exporter" || test[2] != "probe" {
				t.Fatalf("healthcheck %v: want [CMD /usr/local/bin/vantage-exporter probe …]: the image has no shell", test)
			}
			target := test[len(test)-1]
			u, err := url.Parse(target)
			if err != nil || u.Hostname() != "127.0.0.1" {
				t.Fatalf("healthcheck target %q: want a URL of the container itself (127.0.0.1)", target)
			}
			for _, tc := range []struct {
				status int
				exit   int
			}{{http.StatusOK, 0}, {http.StatusServiceUnavailable, 1}} {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != u.Path {
						http.NotFound(w, r)
						return
					}
					w.WriteHeader(tc.status)
				}))
				args := slices.Clone(test[2:])
				args[len(args)-1] = srv.URL + u.Path
				code, out := run(t, bin, args...)
				srv.Close()
				if code != tc.exit {
					t.Errorf("%v against a %d: exit %d, want %d\n%s", test[1:], tc.status, code, tc.exit, out)
				}
			}
		})
	}
}

// TestAlertmanagerReceiversAreInTheStack checks that every webhook of
// deploy/alertmanager.yml posts to a service of the stack running the
// webhook logger, on the port it listens on.
func TestAlertmanagerReceiversAreInTheStack(t *testing.T) {
	p := mustProject(t)
	var am struct {
		Receivers []struct {
			Name           string `yaml:"name"`
			WebhookConfigs []struct {
				URL string `yaml:"url"`
			} `yaml:"webhook_configs"`
		} `yaml:"receivers"`
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &am); err != nil {
		t.Fatal(err)
	}
	hooks := 0
	for _, r := range am.Receivers {
		for _, w := range r.WebhookConfigs {
			hooks++
			u, err := url.Parse(w.URL)
			if err != nil {
				t.Errorf("receiver %s: %v", r.Name, err)
				continue
			}
			s, ok := p.Services[u.Hostname()]
			if !ok || program(s) != "webhooklogger" {
				t.Errorf("receiver %s posts to %s, which is not the stack's webhook logger", r.Name, w.URL)
				continue
			}
			if addr, _ := flagValue(s.Command, "web.listen-address"); !strings.HasSuffix(addr, ":"+u.Port()) {
				t.Errorf("receiver %s posts to port %s; the webhook logger listens on %q", r.Name, u.Port(), addr)
			}
		}
	}
	if hooks == 0 {
		t.Error("deploy/alertmanager.yml has no webhook receiver")
	}
}

// TestTargetsAreInTheStack checks that every target and the canary of
// deploy/exporter.yml is a service of the stack (or Docker's DNS server),
// so the demo needs no internet access and pages for nothing outside it.
func TestTargetsAreInTheStack(t *testing.T) {
	p := mustProject(t)
	var conf struct {
		Targets []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"targets"`
		Canary struct {
			Target string `yaml:"target"`
		} `yaml:"canary"`
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "exporter.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &conf); err != nil {
		t.Fatal(err)
	}
	all := []string{conf.Canary.Target}
	for _, g := range conf.Targets {
		all = append(all, g.Targets...)
	}
	for _, target := range all {
		host := target
		if u, err := url.Parse(target); err == nil && u.Host != "" {
			host = u.Hostname()
		} else if h, _, err := net.SplitHostPort(target); err == nil {
			host = h
		}
		if _, ok := p.Services[host]; !ok && host != dockerDNS {
			t.Errorf("target %s is outside the stack (%s is no service)", target, host)
		}
	}
	if len(all) < 4 {
		t.Errorf("found %d targets in deploy/exporter.yml", len(all))
	}
}
