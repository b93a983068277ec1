package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(good, []byte("locations:\n  - {name: ams, url: http://127.0.0.1:9715}\nconfirmation: {min_failing_locations: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("locations:\n  - {name: ams, url: ftp://x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runMain(t, "--config.check"); code != 0 || !strings.Contains(out, "embedded default") {
		t.Errorf("embedded default: exit %d, %q %q", code, out, errOut)
	}
	if code, out, errOut := runMain(t, "--config.file="+good, "--config.check"); code != 0 || !strings.Contains(out, "Config file is ok") {
		t.Errorf("good file: exit %d, %q %q", code, out, errOut)
	}
	code, _, errOut := runMain(t, "--config.file="+bad, "--config.check")
	if want := bad + `:2: locations[0].url: url of location "ams" must be an http(s) URL, got "ftp://x"`; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("bad file: exit %d, stderr %q, want 1 and %q", code, errOut, want)
	}
}

func TestBadFlagsAndStorage(t *testing.T) {
	if code, _, errOut := runMain(t, "--no-such-flag"); code != 2 || !strings.Contains(errOut, "unknown long flag '--no-such-flag'") {
		t.Errorf("unknown flag: exit %d, %q", code, errOut)
	}
	// A storage path that is a file cannot hold the incident log.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runMain(t, "--storage.path="+file, "--web.listen-address=127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "creating storage directory") {
		t.Errorf("storage path on a file: exit %d, %q", code, errOut)
	}
}

func TestStorageRetentionTakesPrometheusDurations(t *testing.T) {
	code, _, errOut := runMain(t, "--storage.retention=5x", "--config.check")
	if want := `--storage.retention: unknown unit "x" in duration "5x"`; code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("bad retention: exit %d, %q; want 2 and %q", code, errOut, want)
	}
	for _, ok := range []string{"90d", "12h", "1w2d"} {
		if code, _, errOut := runMain(t, "--storage.retention="+ok, "--config.check"); code != 0 {
			t.Errorf("--storage.retention=%s: exit %d, %q", ok, code, errOut)
		}
	}
	code, _, errOut = runMain(t, "--storage.retention=0s", "--storage.path="+t.TempDir(), "--web.listen-address=127.0.0.1:0")
	if want := "--storage.retention must be positive"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("zero retention: exit %d, %q; want 1 and %q", code, errOut, want)
	}
}

// The --cluster.* flags are checked before anything starts, with the
// flag and value named.
func TestBadClusterFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster.listen-address=127.0.0.1"}, `cluster address \"127.0.0.1\" is not host:port`},
		{[]string{"--cluster.listen-address=127.0.0.1:0", "--cluster.peer=peer"}, `cluster address \"peer\" is not host:port`},
		{[]string{"--cluster.listen-address=127.0.0.1:0", "--cluster.pushpull-interval=0s"}, "--cluster.pushpull-interval must be positive, got 0s"},
	} {
		args := append([]string{"--storage.path=" + t.TempDir(), "--web.listen-address=127.0.0.1:0"}, tc.args...)
		if code, _, errOut := runMain(t, args...); code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want 1 and %q", tc.args, code, errOut, tc.want)
		}
	}
}
