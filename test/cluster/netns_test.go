package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// The suite runs in a network namespace of its own (a user namespace maps
// the caller to root in it): its loopback is private, so the routing
// rules that partition a member (partition, heal) touch no other test's
// traffic. TestMain re-runs the test binary there.
const inNamespaceEnv = "VANTAGE_CLUSTER_NETNS"

func TestMain(m *testing.M) {
	if os.Getenv(inNamespaceEnv) == "" {
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = append(os.Environ(), inNamespaceEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		}
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				os.Exit(ee.ExitCode())
			}
			fmt.Fprintf(os.Stderr, "test/cluster needs a network namespace of its own (user and network namespaces, as `unshare -rn` makes): %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The local table moves behind the partition rules (pref 10, 11).
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"rule", "add", "pref", "100", "lookup", "local"}, {"rule", "del", "pref", "0"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "ip %v: %v: %s (test/cluster needs iproute2's ip)\n", args, err, out)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// partition cuts addr off: nothing reaches it and nothing leaves it.
// Members gossip from their own address (the gossip transport dials from
// it), while their checks and HTTP use 127.0.0.1: only gossip is cut.
func partition(t *testing.T, addr string) {
	t.Helper()
	ip(t, "rule", "add", "pref", "10", "to", addr, "prohibit")
	ip(t, "rule", "add", "pref", "11", "from", addr, "prohibit")
}

// heal undoes partition.
func heal(t *testing.T) {
	t.Helper()
	ip(t, "rule", "del", "pref", "10")
	ip(t, "rule", "del", "pref", "11")
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}
