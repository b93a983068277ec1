// Package scripts holds the repository's shell scripts; its tests run them.
package scripts

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stubs writes executables into a directory that the script finds before
// the system's: dpkg-query answering "installed" for every package but
// those missing, id answering uid, apt-get and service recording their
// arguments in calls.
func stubs(t *testing.T, missing []string, uid string) (dir, calls string) {
	t.Helper()
	dir = t.TempDir()
	calls = filepath.Join(dir, "calls")
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("dpkg-query", `pkg=$3
for m in `+strings.Join(missing, " ")+`; do [ "$pkg" = "$m" ] && { echo "dpkg-query: no packages found matching $pkg" >&2; exit 1; }; done
printf 'ii '
`)
	write("id", `echo `+uid+"\n")
	write("apt-get", `echo "apt-get $*" >> `+calls+"\n")
	write("service", `echo "service $*" >> `+calls+"\n")
	write("sudo", "exit 1\n") // a sudo that needs a password
	return dir, calls
}

func runScript(t *testing.T, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./test-deps")
	cmd.Env = append(os.Environ(), "PATH="+path+":/usr/bin:/bin")
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func TestTestDeps(t *testing.T) {
	t.Run("everything installed: nothing to do", func(t *testing.T) {
		dir, calls := stubs(t, nil, "0")
		if code, out := runScript(t, dir); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if _, err := os.Stat(calls); err == nil {
			b, _ := os.ReadFile(calls)
			t.Errorf("ran %s with everything installed", b)
		}
	})
	t.Run("root installs what is missing", func(t *testing.T) {
		dir, calls := stubs(t, []string{"gcc", "prometheus-alertmanager"}, "0")
		if code, out := runScript(t, dir); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		b, err := os.ReadFile(calls)
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Split(strings.TrimSpace(string(b)), "\n")
		want := []string{"apt-get update", "apt-get install -y --no-install-recommends gcc prometheus-alertmanager"}
		if len(got) < 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("calls %q, want %q then the services stopped", got, want)
		}
	})
	t.Run("without root or sudo: the command to run", func(t *testing.T) {
		dir, calls := stubs(t, []string{"prometheus-blackbox-exporter"}, "1000")
		code, out := runScript(t, dir)
		if code == 0 {
			t.Fatalf("exit 0 with a package missing and no way to install it:\n%s", out)
		}
		if want := "apt-get update && apt-get install -y --no-install-recommends prometheus-blackbox-exporter"; !strings.Contains(out, want) {
			t.Errorf("output %q lacks the command %q", out, want)
		}
		if _, err := os.Stat(calls); err == nil {
			t.Error("tried to install without root")
		}
	})
}
