package deploy

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/vantageprobe/vantage/coordinator/config"
)

// ourBinaries maps each program of the vantage image to its main package.
var ourBinaries = map[string]string{
	"vantage-exporter":    "./cmd/vantage-exporter",
	"vantage-coordinator": "./cmd/vantage-coordinator",
	"demotarget":          "./tools/demotarget",
	"webhooklogger":       "./tools/webhooklogger",
}

// repoRoot is the repository's top directory (this package is deploy/).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// mustProject loads docker-compose.yml with the repository root as the
// project directory and an empty environment, so the host's variables do
// not change what is checked.
func mustProject(tb testing.TB) *types.Project {
	tb.Helper()
	root := repoRoot(tb)
	ctx := context.Background()
	details, err := loader.LoadConfigFiles(ctx, []string{filepath.Join(root, "docker-compose.yml")}, root)
	if err != nil {
		tb.Fatalf("docker-compose.yml: %v", err)
	}
	details.Environment = types.Mapping{}
	p, err := loader.LoadWithContext(ctx, *details, func(o *loader.Options) {
		o.SetProjectName("vantage", true)
		o.ResolvePaths = true
	})
	if err != nil {
		tb.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// mustService returns the named service of the project.
func mustService(tb testing.TB, p *types.Project, name string) types.ServiceConfig {
	tb.Helper()
	s, ok := p.Services[name]
	if !ok {
		tb.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

// program is the vantage binary a service runs ("" when it runs another image).
func program(s types.ServiceConfig) string {
	if len(s.Entrypoint) == 0 {
		return ""
	}
	name := filepath.Base(s.Entrypoint[0])
	if _, ok := ourBinaries[name]; !ok {
		return ""
	}
	return name
}

// servicesRunning returns the names of the services that run the program, sorted.
func servicesRunning(p *types.Project, prog string) []string {
	var out []string
	for name, s := range p.Services {
		if program(s) == prog {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// flagValues returns every value of a repeatable flag, in order.
func flagValues(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// pathMapper maps paths inside a service's containers to host paths: bind
// mounts to their sources in the repository, named volumes to empty
// temporary directories.
type pathMapper struct {
	mounts map[string]string // container path -> host path
}

func newPathMapper(tb testing.TB, s types.ServiceConfig) pathMapper {
	tb.Helper()
	m := pathMapper{mounts: map[string]string{}}
	for _, v := range s.Volumes {
		switch v.Type {
		case types.VolumeTypeBind:
			m.mounts[v.Target] = v.Source
		case types.VolumeTypeVolume:
			m.mounts[v.Target] = tb.TempDir()
		}
	}
	return m
}

// hostPath maps p by the mount with the longest matching target.
func (m pathMapper) hostPath(p string) (string, bool) {
	best := ""
	for target := range m.mounts {
		if (p == target || strings.HasPrefix(p, strings.TrimSuffix(target, "/")+"/")) && len(target) > len(best) {
			best = target
		}
	}
	if best == "" {
		return "", false
	}
	return filepath.Join(m.mounts[best], strings.TrimPrefix(p, best)), true
}

// mapArgs rewrites every argument (or --flag=value value) that names a
// path inside a mount to the host path.
func (m pathMapper) mapArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		prefix, value := "", a
		if strings.HasPrefix(a, "-") {
			name, v, ok := strings.Cut(a, "=")
			if !ok {
				out[i] = a
				continue
			}
			prefix, value = name+"=", v
		}
		if h, ok := m.hostPath(value); ok {
			value = h
		}
		out[i] = prefix + value
	}
	return out
}

var (
	buildOnce sync.Once
	builtDir  string
	buildErrs map[string]error
)

// mustBinary builds the program (all of ours, once per test run) and
// returns its path.
func mustBinary(tb testing.TB, prog string) string {
	tb.Helper()
	buildOnce.Do(func() {
		var err error
		builtDir, err = os.MkdirTemp("", "vantage-deploy-test-")
		if err != nil {
			tb.Fatal(err)
		}
		buildErrs = map[string]error{}
		for name, pkg := range ourBinaries {
			cmd := exec.Command("go", "build", "-o", filepath.Join(builtDir, name), pkg)
			cmd.Dir = repoRoot(tb)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErrs[name] = &buildError{pkg: pkg, out: strings.TrimSpace(string(out))}
			}
		}
	})
	if err := buildErrs[prog]; err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(builtDir, prog)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

type buildError struct{ pkg, out string }

func (e *buildError) Error() string { return "go build " + e.pkg + ": " + e.out }

// run runs a program with a deadline and returns its exit code and output.
func run(tb testing.TB, bin string, args ...string) (int, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = tb.TempDir() // relative paths must not resolve inside the repository by chance
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		tb.Fatalf("%s %s: did not exit within 30s", filepath.Base(bin), strings.Join(args, " "))
	}
	if err != nil && cmd.ProcessState == nil {
		tb.Fatalf("%s: %v", bin, err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestComposeBindMounts checks that every file or directory the stack
// bind-mounts exists in the repository.
func TestComposeBindMounts(t *testing.T) {
	p := mustProject(t)
	root := repoRoot(t)
	binds := 0
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			binds++
			rel, err := filepath.Rel(root, v.Source)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Errorf("service %s mounts %s, outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s at %s, which does not exist in the repository", name, rel, v.Target)
			}
			if !v.ReadOnly {
				t.Errorf("service %s mounts %s read-write; mount repository files with :ro", name, rel)
			}
		}
	}
	// The stack is configured entirely through mounted files.
	if binds < 8 {
		t.Errorf("found %d bind mounts, want at least 8 (exporter, coordinator, prometheus, rules, alertmanager, grafana)", binds)
	}
}

// TestComposeServicesUseOurFlags runs every service that runs one of our
// programs with its command line: each flag must be one the program
// accepts, and programs that have --config.check must accept the
// configuration the service mounts.
func TestComposeServicesUseOurFlags(t *testing.T) {
	p := mustProject(t)
	seen := map[string]bool{}
	for name, s := range p.Services {
		prog := program(s)
		if prog == "" {
			if s.Image == "vantage:dev" {
				t.Errorf("service %s uses the vantage image but its entrypoint %q is none of %v", name, s.Entrypoint, slices.Sorted(maps.Keys(ourBinaries)))
			}
			continue
		}
		seen[prog] = true
		t.Run(name, func(t *testing.T) {
			if s.Image != "vantage:dev" || s.Build == nil {
				t.Errorf("service %s runs %s but does not build the vantage:dev image (image %q)", name, prog, s.Image)
			}
			bin := mustBinary(t, prog)
			args := append(s.Entrypoint[1:], s.Command...)
			_, help := run(t, bin, "--help-long")
			for _, a := range args {
				if !strings.HasPrefix(a, "--") {
					continue
				}
				flag, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				re := regexp.MustCompile(`--(\[no-\])?` + regexp.QuoteMeta(flag) + `[=\s]`)
				if !re.MatchString(help) {
					t.Errorf("%s does not accept --%s (service %s); its flags:\n%s", prog, flag, name, help)
				}
			}
			if !strings.Contains(help, "--[no-]config.check") {
				return
			}
			mapped := newPathMapper(t, s).mapArgs(args)
			if code, out := run(t, bin, append(mapped, "--config.check")...); code != 0 {
				t.Errorf("%s %s --config.check: exit %d\n%s", prog, strings.Join(mapped, " "), code, out)
			}
		})
	}
	for prog := range ourBinaries {
		if !seen[prog] {
			t.Errorf("no service runs %s", prog)
		}
	}
}

// mustCoordinatorConfig loads the configuration file the coordinator
// service mounts.
func mustCoordinatorConfig(tb testing.TB, p *types.Project) *config.CoordinatorConfig {
	tb.Helper()
	names := servicesRunning(p, "vantage-coordinator")
	if len(names) == 0 {
		tb.Fatal("no service runs vantage-coordinator")
	}
	s := p.Services[names[0]]
	file, ok := flagValue(s.Command, "config.file")
	if !ok {
		tb.Fatalf("service %s has no --config.file", s.Name)
	}
	host, ok := newPathMapper(tb, s).hostPath(file)
	if !ok {
		tb.Fatalf("service %s: --config.file=%s is not a mounted file", s.Name, file)
	}
	conf, err := config.LoadCoordinatorFile(host)
	if err != nil {
		tb.Fatal(err)
	}
	return conf
}

// TestExportersAndLocations checks the exporters' wiring: one service per
// location (two for ams, a cluster whose members peer with each other),
// each with a --location that the coordinator lists with that service's
// URL among the location's members, reporting to each coordinator, with
// tracing sent to the Jaeger service.
func TestExportersAndLocations(t *testing.T) {
	p := mustProject(t)
	exporters := servicesRunning(p, "vantage-exporter")
	if want := []string{"exporter-ams", "exporter-ams-2", "exporter-fra", "exporter-sfo"}; !slices.Equal(exporters, want) {
		t.Fatalf("services running vantage-exporter: %v, want %v", exporters, want)
	}
	coordinators := servicesRunning(p, "vantage-coordinator")
	if want := []string{"coordinator", "coordinator-2"}; !slices.Equal(coordinators, want) {
		t.Fatalf("services running vantage-coordinator: %v, want the HA pair %v", coordinators, want)
	}
	var coordinatorURLs []string
	for _, name := range coordinators {
		coordinatorURLs = append(coordinatorURLs, "http://"+name+":9716")
	}
	// The pair are each other's peers, each named as its service.
	for _, pair := range [][2]string{{"coordinator", "coordinator-2"}, {"coordinator-2", "coordinator"}} {
		cmd := p.Services[pair[0]].Command
		peer, _ := flagValue(cmd, "cluster.peer")
		name, _ := flagValue(cmd, "cluster.name")
		if peer != pair[1]+":9094" || name != pair[0] {
			t.Errorf("%s: --cluster.peer=%q --cluster.name=%q, want %s:9094 and %s", pair[0], peer, name, pair[1], pair[0])
		}
	}

	conf := mustCoordinatorConfig(t, p)
	urls := map[string][]string{}
	for _, l := range conf.Locations {
		urls[l.Name] = l.MemberURLs()
	}
	if len(urls) != len(exporters)-1 {
		t.Errorf("coordinator lists %d locations, compose runs %d exporters (two in ams)", len(urls), len(exporters))
	}
	for _, pair := range [][2]string{{"exporter-ams", "exporter-ams-2"}, {"exporter-ams-2", "exporter-ams"}} {
		if got, _ := flagValue(p.Services[pair[0]].Command, "cluster.peer"); got != pair[1]+":9094" {
			t.Errorf("%s: --cluster.peer=%q, want %s:9094", pair[0], got, pair[1])
		}
	}
	for _, name := range exporters {
		s := p.Services[name]
		loc, ok := flagValue(s.Command, "location")
		if !ok {
			t.Errorf("%s has no --location", name)
			continue
		}
		if want := "http://" + name + ":9715"; !slices.Contains(urls[loc], want) {
			t.Errorf("%s runs --location=%s; the coordinator has that location at %q, without %q", name, loc, urls[loc], want)
		}
		if got := flagValues(s.Command, "coordinator.url"); !slices.Equal(got, coordinatorURLs) {
			t.Errorf("%s reports to %q, want each coordinator %q", name, got, coordinatorURLs)
		}
		env := s.Environment
		if v := env["OTEL_EXPORTER_OTLP_ENDPOINT"]; v == nil || *v != "http://jaeger:4318" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT = %v, want http://jaeger:4318", name, v)
		}
		if v := env["OTEL_EXPORTER_OTLP_PROTOCOL"]; v == nil || *v != "http/protobuf" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_PROTOCOL = %v, want http/protobuf", name, v)
		}
		if v := env["OTEL_SERVICE_NAME"]; v == nil || *v == "" {
			t.Errorf("%s: OTEL_SERVICE_NAME is not set", name)
		}
	}
	mustService(t, p, "jaeger")
	mustService(t, p, "demotarget")
}

// TestExporterConfigCheck checks deploy/exporter.yml with the exporter's
// --config.check, and that the check does catch a broken copy of it.
func TestExporterConfigCheck(t *testing.T) {
	bin := mustBinary(t, "vantage-exporter")
	file := filepath.Join(repoRoot(t), "deploy", "exporter.yml")
	if code, out := run(t, bin, "--config.file="+file, "--config.check"); code != 0 {
		t.Fatalf("vantage-exporter --config.check deploy/exporter.yml: exit %d\n%s", code, out)
	}

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// The demo needs the demo target among the scheduled targets, and a canary.
	for _, want := range []string{"http://demotarget:8080/", "\ncanary:", "failure_threshold:"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("deploy/exporter.yml does not contain %q", want)
		}
	}
	broken := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(broken, bytes.Replace(data, []byte("interval: 10s"), []byte("interval: 1s"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := run(t, bin, "--config.file="+broken, "--config.check")
	if code != 1 || !strings.Contains(out, "interval") {
		t.Errorf("--config.check of a copy with an interval shorter than the module timeout: exit %d, want 1 naming the interval\n%s", code, out)
	}
}
