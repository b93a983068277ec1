package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// pprofArgs are the exporter flags that serve its profiles, when the run
// saves them (-profiles).
func (e *env) pprofArgs() []string {
	if e.opts.profiles == "" {
		return nil
	}
	return []string{"--web.enable-pprof"}
}

// saveProfile saves the exporter's profile kind (heap, goroutine, profile
// ?seconds=N…) to <-profiles>/<name>.pb.gz; nothing without -profiles.
// Errors are notes, not failures: profiles are an aid to the reading.
func saveProfile(ctx context.Context, env *env, ex *exporterProc, kind, name string) {
	if env.opts.profiles == "" {
		return
	}
	if err := os.MkdirAll(env.opts.profiles, 0o755); err != nil {
		progress("profiles: %v", err)
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ex.base+"/debug/pprof/"+kind, nil)
	resp, err := plainClient(2 * time.Minute).Do(req)
	if err != nil {
		progress("profile %s: %v", kind, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		progress("profile %s: %s", kind, resp.Status)
		return
	}
	path := filepath.Join(env.opts.profiles, name+".pb.gz")
	f, err := os.Create(path)
	if err != nil {
		progress("profile %s: %v", kind, err)
		return
	}
	_, err = io.Copy(f, resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		progress("profile %s: %v", kind, err)
		return
	}
	progress("saved %s", path)
}

// profileWhile saves a CPU profile of the exporter over the time fn runs
// (fn should last less than seconds).
func profileWhile(ctx context.Context, env *env, ex *exporterProc, seconds int, name string, fn func() error) error {
	if env.opts.profiles == "" {
		return fn()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		saveProfile(ctx, env, ex, fmt.Sprintf("profile?seconds=%d", seconds), name)
	}()
	err := fn()
	<-done
	return err
}
