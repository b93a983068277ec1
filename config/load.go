package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	yaml "gopkg.in/yaml.v3"
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
	return Parse(data, path)
}

// Parse decodes and validates a configuration document. source names the
// document in error messages, which read "source:line: path: problem".
func Parse(data []byte, source string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", source, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(source, &root, err)
	}
	if err := c.validate(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, fmt.Errorf("%s:%d: %w", source, locate(&root, fe.path), fe)
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return c, nil
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)
	lineRE         = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// decodeError rewrites the decoder's messages so each names the file, the line
// and the place in the document, and says "unknown key" for unknown fields.
func decodeError(source string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %s", source, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
			line, _ := strconv.Atoi(m[1])
			where := pathString(pathOfKey(root, line, m[2]))
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s: unknown key %q", source, line, where, m[2]))
			continue
		}
		if m := lineRE.FindStringSubmatch(e); m != nil {
			msgs = append(msgs, fmt.Sprintf("%s:%s: %s", source, m[1], m[2]))
			continue
		}
		msgs = append(msgs, source+": "+e)
	}
	return errors.New(strings.Join(msgs, "\n"))
}

// locate returns the line of the node at path, or of its deepest existing
// ancestor when the path names a key the document does not have.
func locate(root *yaml.Node, path []any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		next := child(n, p)
		if next == nil {
			return line
		}
		n = next
		line = n.Line
	}
	return line
}

func child(n *yaml.Node, p any) *yaml.Node {
	switch p := p.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				if p := n.Content[i+1]; p.Kind != yaml.ScalarNode || p.Value != "" {
					return p
				}
				return n.Content[i]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && p < len(n.Content) {
			return n.Content[p]
		}
	}
	return nil
}

// pathOfKey finds the mapping key named key on line and returns the path of
// the mapping that holds it.
func pathOfKey(n *yaml.Node, line int, key string) []any {
	var walk func(n *yaml.Node, path []any) ([]any, bool)
	walk = func(n *yaml.Node, path []any) ([]any, bool) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p, ok := walk(c, path); ok {
					return p, true
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Line == line && k.Value == key {
					return path, true
				}
				if p, ok := walk(n.Content[i+1], at(path, k.Value)); ok {
					return p, true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if p, ok := walk(c, at(path, i)); ok {
					return p, true
				}
			}
		}
		return nil, false
	}
	p, _ := walk(n, nil)
	if len(p) == 0 {
		return []any{"(top level)"}
	}
	return p
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
