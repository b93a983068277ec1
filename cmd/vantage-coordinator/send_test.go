package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vantageprobe/vantage/coordinator"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// The send command round-trips through a real coordinator, with the exit
// codes a shell script relies on.
func TestSendCommand(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "cron.token")
	config := filepath.Join(dir, "coordinator.yml")
	for path, content := range map[string]string{
		tokenFile: "t0ken\n",
		config: "locations:\n  - {name: ams, url: \"http://" + testbin.FreeAddr(t) + "\"}\nconfirmation: {min_failing_locations: 1}\n" +
			"events:\n  sources:\n    - {name: cron, token_file: " + tokenFile + "}\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := coordinator.DefaultOptions()
	opts.ConfigFile, opts.StoragePath = config, filepath.Join(dir, "data")
	opts.WebListenAddresses = &[]string{"127.0.0.1:0"}
	srv := testbin.Serve(t, "coordinator", func(ctx context.Context, started func([]net.Addr)) error {
		opts.Started = started
		return coordinator.Run(ctx, opts)
	})

	code, out, errOut := runMain(t, "send", "--url", srv.URL, "--id", "backup", "--raise", "+5m", "--detail", "ran 42s",
		"--label", "team=storage", "--token-file", tokenFile)
	var e coordinator.Event
	if err := json.Unmarshal([]byte(out), &e); code != 0 || err != nil || e.State != coordinator.EventPending || e.Source != "cron" || e.Labels["team"] != "storage" {
		t.Fatalf("send +5m: exit %d, stdout %q, stderr %q; want 0 and a pending event of source cron", code, out, errOut)
	}
	t.Setenv("VANTAGE_TOKEN", "t0ken")
	if code, out, errOut := runMain(t, "send", "-q", "--url", srv.URL, "--id", "backup", "--raise", "clear"); code != 0 || out != "" {
		t.Errorf("send clear with $VANTAGE_TOKEN -q: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runMain(t, "send", "--url", srv.URL, "--id", "backup", "--raise", "later"); code != 1 || !strings.Contains(errOut, "raise must be now, clear") {
		t.Errorf("a bad raise: exit %d, stderr %q; want 1 naming raise", code, errOut)
	}
	t.Setenv("VANTAGE_TOKEN", "wrong")
	if code, _, errOut := runMain(t, "send", "--url", srv.URL, "--id", "backup"); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("a wrong token: exit %d, stderr %q; want 1 and the 401", code, errOut)
	}
	if code, _, errOut := runMain(t, "send", "--url", "http://"+testbin.RefusedAddr(t), "--id", "x", "--attempts", "2", "--timeout", "5s"); code != 1 || !strings.Contains(errOut, "could not be reached") {
		t.Errorf("no coordinator: exit %d, stderr %q; want 1", code, errOut)
	}
	if code, _, errOut := runMain(t, "send", "--url", srv.URL); code != 2 || !strings.Contains(errOut, "--id") {
		t.Errorf("no --id: exit %d, stderr %q; want 2 naming --id", code, errOut)
	}
}
