package config

import (
	"path/filepath"
	"regexp"

	"github.com/vantageprobe/vantage/internal/yamldoc"
)

// EventsConfig configures pushed events (heartbeats): who may submit
// them and how much.
type EventsConfig struct {
	// Sources are the submitters, each with its own bearer token; an
	// event's source is the name of the token it came with. Without any,
	// events need no token and their source is the client's address.
	Sources []EventSource `yaml:"sources"`
	// MaxPerSource bounds the events one source may hold.
	MaxPerSource int `yaml:"max_per_source"`
	// RequestsPerSecond and Burst bound each source's submissions.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
}

// EventSource is one submitter of events.
type EventSource struct {
	Name string `yaml:"name"`
	// TokenFile holds the source's bearer token; relative to the
	// configuration file. Re-read every 5s.
	TokenFile string `yaml:"token_file"`
}

// DefaultEvents holds the events defaults.
var DefaultEvents = EventsConfig{MaxPerSource: 1000, RequestsPerSecond: 10, Burst: 20}

// UnmarshalYAML sets the events defaults before decoding.
func (c *EventsConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DefaultEvents
	type plain EventsConfig
	return unmarshal((*plain)(c))
}

// EventNameRE is what event ids, source names, token names and owners
// may look like; NameRule says it in words.
var EventNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$`)

// NameRule describes EventNameRE in messages.
const NameRule = "1 to 128 letters, digits, '_', '.', ':', '@' and '-', starting with a letter or digit"

func (c *EventsConfig) validate() error {
	path := []any{"events"}
	names := map[string]int{}
	for i, s := range c.Sources {
		p := yamldoc.At(path, "sources", i)
		switch {
		case !EventNameRE.MatchString(s.Name):
			return yamldoc.Fail(yamldoc.At(p, "name"), "invalid source name %q: %s", s.Name, NameRule)
		case s.TokenFile == "":
			return yamldoc.Fail(yamldoc.At(p, "token_file"), "token_file of source %q must be set", s.Name)
		}
		if j, ok := names[s.Name]; ok {
			return yamldoc.Fail(yamldoc.At(p, "name"), "source %q is listed twice (also events.sources[%d])", s.Name, j)
		}
		names[s.Name] = i
	}
	switch {
	case c.MaxPerSource < 1:
		return yamldoc.Fail(yamldoc.At(path, "max_per_source"), "max_per_source must be at least 1, got %d", c.MaxPerSource)
	case c.RequestsPerSecond <= 0:
		return yamldoc.Fail(yamldoc.At(path, "requests_per_second"), "requests_per_second must be positive, got %g", c.RequestsPerSecond)
	case c.Burst < 1:
		return yamldoc.Fail(yamldoc.At(path, "burst"), "burst must be at least 1, got %d", c.Burst)
	}
	return nil
}

// setDirectory makes the sources' token files relative to dir.
func (c *EventsConfig) setDirectory(dir string) {
	for i := range c.Sources {
		if f := c.Sources[i].TokenFile; f != "" && !filepath.IsAbs(f) {
			c.Sources[i].TokenFile = filepath.Join(dir, f)
		}
	}
}
