// Package signals turns the signals both vantage programs handle into
// what their Run functions take: a context that ends on SIGINT or SIGTERM,
// and a channel of reload requests fed by SIGHUP.
package signals

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Context returns a context that ends on SIGINT or SIGTERM.
func Context() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Reloads returns a channel that receives a value for each SIGHUP. A
// SIGHUP nobody takes within a minute is dropped, so signals never pile
// up behind a reload that is stuck.
func Reloads() <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{})
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			case <-time.After(time.Minute):
			}
		}
	}()
	return reload
}
