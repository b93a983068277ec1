package config

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vantageprobe/vantage/internal/yamldoc"

	yaml "go.yaml.in/yaml/v3"
)

//go:embed default.yml
var defaultYAML []byte

// DefaultSource names the embedded default configuration in messages.
const DefaultSource = "<embedded default config>"

// Default returns the embedded default configuration: the usual modules
// (http_2xx, http_post_2xx, tcp_connect, tls_connect, icmp, dns_udp, grpc_health).
func Default() *Config {
	c, err := Parse(defaultYAML, DefaultSource)
	if err != nil {
		panic("embedded default config is invalid: " + err.Error())
	}
	return c
}

// DefaultYAML returns the text of the embedded default configuration.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// LoadFile reads, decodes and validates a configuration file. An empty path
// loads the embedded default configuration.
func LoadFile(path string) (*Config, error) {
	if path == "" {
		return Parse(defaultYAML, DefaultSource)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	c, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	c.setDirectory(filepath.Dir(path))
	return c, nil
}

// Parse decodes and validates a configuration document. source names the
// document in error messages, which read "source:line: path: problem".
func Parse(data []byte, source string) (*Config, error) {
	c := &Config{Scheduler: DefaultSchedulerConfig, Cluster: DefaultClusterConfig}
	_, err := yamldoc.Decode(data, source, c, func(root *yaml.Node) error {
		return c.validate(func(p []any) string { return fmt.Sprintf("%s:%d", source, yamldoc.Locate(root, p)) })
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Marshal renders the configuration as YAML with secrets shown as <secret>.
func (c *Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
