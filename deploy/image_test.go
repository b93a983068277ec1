package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const modulePath = "github.com/vantageprobe/vantage"

// dockerfile is the part of the Dockerfile the tests read.
type dockerfile struct {
	args       map[string]string // ARG defaults
	text       string
	finalStage []string // instructions after the last FROM
}

func mustDockerfile(tb testing.TB) dockerfile {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(tb), "Dockerfile"))
	if err != nil {
		tb.Fatal(err)
	}
	d := dockerfile{args: map[string]string{}, text: string(data)}
	// Join continuation lines, drop comments.
	var lines []string
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(d.text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur += s + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	for _, l := range lines {
		word, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(word) {
		case "ARG":
			if k, v, ok := strings.Cut(rest, "="); ok {
				d.args[k] = v
			}
		case "FROM":
			d.finalStage = nil
		}
		d.finalStage = append(d.finalStage, l)
	}
	return d
}

// goVersion parses "1.26.8" into comparable numbers.
func goVersion(tb testing.TB, v string) []int {
	tb.Helper()
	var out []int
	for _, part := range strings.Split(v, ".") {
		n, err := strconv.Atoi(part)
		if err != nil {
			tb.Fatalf("cannot read Go version %q", v)
		}
		out = append(out, n)
	}
	return out
}

// TestDockerfile checks that the image builds every program the compose
// services run, statically, with a Go new enough for go.mod, and runs them
// as a non-root user.
func TestDockerfile(t *testing.T) {
	d := mustDockerfile(t)
	root := repoRoot(t)

	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	need := []int{0}
	for _, re := range []*regexp.Regexp{regexp.MustCompile(`(?m)^go\s+(\S+)\s*$`), regexp.MustCompile(`(?m)^toolchain\s+go(\S+)\s*$`)} {
		if m := re.FindStringSubmatch(string(mod)); m != nil {
			if v := goVersion(t, m[1]); slices.Compare(v, need) > 0 {
				need = v
			}
		}
	}
	if have, ok := d.args["GO_VERSION"]; !ok {
		t.Error("Dockerfile has no ARG GO_VERSION")
	} else if slices.Compare(goVersion(t, have), need) < 0 {
		t.Errorf("Dockerfile builds with Go %s, older than go.mod needs (%v)", have, need)
	}
	if !strings.Contains(d.text, "CGO_ENABLED=0") {
		t.Error("Dockerfile does not build with CGO_ENABLED=0: the binaries would not be static")
	}

	p := mustProject(t)
	for name, s := range p.Services {
		prog := program(s)
		if prog == "" {
			continue
		}
		pkg := ourBinaries[prog]
		if !regexp.MustCompile(`go build [^\n]*` + regexp.QuoteMeta(pkg) + `\b`).MatchString(strings.ReplaceAll(d.text, "\\\n", " ")) {
			t.Errorf("service %s runs %s, but the Dockerfile does not go build %s", name, prog, pkg)
		}
		dir := filepath.Dir(s.Entrypoint[0]) + "/"
		if !slices.ContainsFunc(d.finalStage, func(l string) bool {
			return strings.HasPrefix(l, "COPY ") && strings.HasSuffix(l, " "+dir)
		}) {
			t.Errorf("service %s runs %s, but the final stage copies no binaries to %s", name, s.Entrypoint[0], dir)
		}
	}

	user := ""
	var exposed []string
	for _, l := range d.finalStage {
		word, rest, _ := strings.Cut(l, " ")
		switch word {
		case "USER":
			user = rest
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(rest)...)
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
		t.Errorf("the image runs as user %q, want a non-root user", user)
	}
	for _, port := range []string{"9715", "9716"} {
		if !slices.Contains(exposed, port) {
			t.Errorf("the image does not EXPOSE %s (exposes %v)", port, exposed)
		}
	}
}

// TestDockerignoreKeepsSources checks that .dockerignore excludes none of
// the files the image's go build needs: the Go and embedded files of every
// package of this module the programs import, go.mod and go.sum.
func TestDockerignoreKeepsSources(t *testing.T) {
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "!") || strings.Contains(l, "**") {
			t.Fatalf(".dockerignore pattern %q: this test only understands plain filepath.Match patterns; extend it", l)
		}
		patterns = append(patterns, strings.TrimPrefix(filepath.Clean(l), "/"))
	}

	args := []string{"list", "-e", "-deps", "-f",
		`{{if .Module}}{{if eq .Module.Path "` + modulePath + `"}}{{.Dir}}|{{join .GoFiles ","}}|{{join .EmbedFiles ","}}{{end}}{{end}}`}
	for _, pkg := range ourBinaries {
		args = append(args, pkg)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := []string{"go.mod", "go.sum"}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(l, "|")
		if len(parts) != 3 {
			continue
		}
		rel, err := filepath.Rel(root, parts[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Split(parts[1]+","+parts[2], ",") {
			if f != "" {
				needed = append(needed, filepath.Join(rel, f))
			}
		}
	}
	if len(needed) < 10 {
		t.Fatalf("go list found only %v", needed)
	}
	for _, f := range needed {
		// A pattern that matches a file or any of its folders excludes it.
		for p := f; p != "." && p != "/"; p = filepath.Dir(p) {
			for _, pat := range patterns {
				if ok, _ := filepath.Match(pat, p); ok {
					t.Errorf(".dockerignore pattern %q excludes %s, which the image's go build needs", pat, f)
				}
			}
		}
	}
}
