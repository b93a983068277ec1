package signals

import (
	"syscall"
	"testing"
	"time"
)

func TestSIGHUPRequestsAReload(t *testing.T) {
	reloads := Reloads()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloads:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload request within 5s of SIGHUP")
	}
}

func TestSIGTERMEndsTheContext(t *testing.T) {
	ctx, stop := Context()
	defer stop()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not done within 5s of SIGTERM")
	}
}
