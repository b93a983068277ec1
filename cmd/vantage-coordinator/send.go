package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vantageprobe/vantage/coordinator"
)

// sendCommand is `vantage-coordinator send`: a pushed event from a shell.
//
//	curl -fsS https://shop.example/health && vantage-coordinator send --id shop --raise clear \
//	  || vantage-coordinator send --id shop --raise now --detail "health check failed"
type sendCommand struct {
	cmd       *kingpin.CmdClause
	url       string
	id        string
	raise     string
	subject   string
	detail    string
	labels    map[string]string
	tokenFile string
	timeout   time.Duration
	attempts  int
	quiet     bool
}

// Exit codes of send.
const (
	sendOK      = 0
	sendFailed  = 1 // refused, or the coordinator could not be reached
	sendBadArgs = 2
)

func addSendCommand(app *kingpin.Application) *sendCommand {
	s := &sendCommand{labels: map[string]string{}}
	s.cmd = app.Command("send", "Submit a pushed event (a heartbeat) to a coordinator. Exit 0 when accepted, 1 when refused or the coordinator cannot be reached, 2 on bad usage. The token comes from --token-file or $VANTAGE_TOKEN.")
	s.cmd.Flag("url", "The coordinator's base URL.").Envar("VANTAGE_URL").Required().StringVar(&s.url)
	s.cmd.Flag("id", "The event's id; the same id updates the same event.").Required().StringVar(&s.id)
	s.cmd.Flag("raise", "When to raise the event: now, clear, +<duration> (raise unless sent again within it, e.g. +5m) or an RFC 3339 time.").Default("now").StringVar(&s.raise)
	s.cmd.Flag("subject", "What the event is about.").StringVar(&s.subject)
	s.cmd.Flag("detail", "What happened.").StringVar(&s.detail)
	s.cmd.Flag("label", "A label of the event's series, name=value (repeatable), e.g. severity=critical to page.").StringMapVar(&s.labels)
	s.cmd.Flag("token-file", "File holding the source's bearer token (else $VANTAGE_TOKEN).").Envar("VANTAGE_TOKEN_FILE").StringVar(&s.tokenFile)
	s.cmd.Flag("timeout", "Overall time limit, retries included.").Default("30s").DurationVar(&s.timeout)
	s.cmd.Flag("attempts", "Tries when the coordinator cannot be reached or answers 5xx.").Default("3").IntVar(&s.attempts)
	s.cmd.Flag("quiet", "Print nothing on success.").Short('q').BoolVar(&s.quiet)
	return s
}

func (s *sendCommand) run(stdout, stderr io.Writer) int {
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(stderr, "vantage-coordinator send: "+format+"\n", args...)
		return code
	}
	token := os.Getenv("VANTAGE_TOKEN")
	if s.tokenFile != "" {
		data, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return fail(sendBadArgs, "--token-file: %s", err)
		}
		token = strings.TrimSpace(string(data))
	}
	if s.attempts < 1 {
		return fail(sendBadArgs, "--attempts must be at least 1, got %d", s.attempts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	e, err := coordinator.Send(ctx, coordinator.SendOptions{URL: s.url, Token: token, Attempts: s.attempts, Backoff: time.Second},
		coordinator.Submission{ID: s.id, Raise: s.raise, Subject: s.subject, Detail: s.detail, Labels: s.labels})
	switch {
	case errors.Is(err, coordinator.ErrRefused):
		return fail(sendFailed, "%s", err)
	case err != nil:
		return fail(sendFailed, "the coordinator at %s could not be reached: %s", s.url, err)
	}
	if !s.quiet {
		out, _ := json.Marshal(e)
		fmt.Fprintln(stdout, string(out))
	}
	return sendOK
}
