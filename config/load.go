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
	return Parse(data, path)
}

// Parse decodes and validates a configuration document. source names the
// document in error messages, which read "source:line: path: problem".
func Parse(data []byte, source string) (*Config, error) {
	c := &Config{Scheduler: DefaultSchedulerConfig}
	_, err := decodeDocument(data, source, c, func(root *yaml.Node) error {
		return c.validate(func(p []any) string { return fmt.Sprintf("%s:%d", source, locate(root, p)) })
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// decodeDocument decodes a YAML document strictly into out (unknown keys are
// errors) and validates it, with every error located as
// "source:line: path: problem". validate gets the document's node tree.
func decodeDocument(data []byte, source string, out any, validate func(root *yaml.Node) error) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(source, data, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(source, &root, err)
	}
	if err := validate(&root); err != nil {
		return nil, locateError(source, &root, err)
	}
	return &root, nil
}

// locateError prefixes a validation error with its source and, for a field
// error, the line of the field it names.
func locateError(source string, root *yaml.Node, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("%s:%d: %w", source, locate(root, fe.path), fe)
	}
	return fmt.Errorf("%s: %w", source, err)
}

var (
	unknownFieldRE = regexp.MustCompile(`^line (\d+): field (.+) not found in type \S+$`)
	duplicateKeyRE = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	typeErrorRE    = regexp.MustCompile("(?s)^line (\\d+): cannot unmarshal (!!\\w+)((?: `.*`)?) into (\\S+)$")
	lineRE         = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
)

// syntaxError rewrites a YAML parser error as "source:line: problem". The
// parser reports some problems at the line where the enclosing block starts
// rather than where the problem is; the line given is the first one at which
// the document, read up to that line, shows the same problem.
func syntaxError(source string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("%s: %s", source, msg)
	}
	line, _ := strconv.Atoi(m[1])
	problem := m[2]
	lines := bytes.SplitAfter(data, []byte("\n"))
	failsBy := func(n int) bool {
		var node yaml.Node
		err := yaml.Unmarshal(bytes.Join(lines[:n], nil), &node)
		if err == nil {
			return false
		}
		m := lineRE.FindStringSubmatch(strings.TrimPrefix(err.Error(), "yaml: "))
		return m != nil && m[2] == problem
	}
	lo, hi := max(line, 1), len(lines)
	if lo <= hi && failsBy(hi) {
		for lo < hi {
			if mid := (lo + hi) / 2; failsBy(mid) {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		line = lo
	}
	return fmt.Errorf("%s:%d: %s", source, line, problem)
}

// decodeError rewrites the decoder's messages so each names the file, the line
// and the place in the document, and says "unknown key" for unknown fields.
func decodeError(source string, root *yaml.Node, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// An UnmarshalYAML method (prometheus/common's TLS version, URL, TLS
		// config checks) failed; the decoder does not say where.
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if path, line, ok := narrow(root, msg); ok {
			return fmt.Errorf("%s:%d: %s: %s", source, line, pathString(path), msg)
		}
		return fmt.Errorf("%s: %s", source, msg)
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
			line, _ := strconv.Atoi(m[1])
			where := pathString(pathOfKey(root, line, m[2]))
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s: unknown key %q", source, line, where, m[2]))
			continue
		}
		if m := duplicateKeyRE.FindStringSubmatch(e); m != nil {
			line, _ := strconv.Atoi(m[1])
			key, _ := strconv.Unquote(m[2])
			where := pathString(pathOfKey(root, line, key))
			msgs = append(msgs, fmt.Sprintf("%s:%d: %s: duplicate key %q (first set at line %s)", source, line, where, key, m[3]))
			continue
		}
		if m := typeErrorRE.FindStringSubmatch(e); m != nil {
			line, _ := strconv.Atoi(m[1])
			what := m[2] + m[3]
			problem := fmt.Sprintf("cannot unmarshal %s into %s", what, m[4])
			if strings.HasSuffix(m[4], ".plain") {
				// The type is one of the "type plain X" aliases that the
				// UnmarshalYAML methods use; its name would only confuse.
				problem = fmt.Sprintf("unexpected %s", what)
			}
			if path, ok := pathOfNode(root, line, m[2], m[3]); ok {
				msgs = append(msgs, fmt.Sprintf("%s:%d: %s: %s", source, line, pathString(path), problem))
			} else {
				msgs = append(msgs, fmt.Sprintf("%s:%d: %s", source, line, problem))
			}
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

// locate returns the line of the entry at path: the line of its key for a
// mapping entry, of the item for a sequence entry. When the document lacks
// part of the path (a key that must be set is missing), it returns the line
// of the deepest entry the document has.
func locate(root *yaml.Node, path []any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		key, value := child(n, p)
		if value == nil {
			return line
		}
		n, line = value, key.Line
	}
	return line
}

// child returns the entry p of n: the key and value of a mapping entry, or
// a sequence item as both. Aliases are followed.
func child(n *yaml.Node, p any) (key, value *yaml.Node) {
	switch p := p.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil, nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == p {
				key, value = n.Content[i], n.Content[i+1]
				break
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && p >= 0 && p < len(n.Content) {
			key, value = n.Content[p], n.Content[p]
		}
	}
	if value != nil && value.Kind == yaml.AliasNode && value.Alias != nil {
		value = value.Alias
	}
	return key, value
}

// pathOfNode finds the node on line with the given short tag (and, when the
// decoder quoted it, value) and returns the path of the entry holding it.
// value is the decoder's " `text`" rendering, possibly cut to "text...".
// When several nodes on the line fit, as in flow style, the deepest wins: an
// outer collection rarely has the wrong kind when an inner one exists.
func pathOfNode(root *yaml.Node, line int, tag, value string) ([]any, bool) {
	value = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(value), "`"), "`")
	match := func(n *yaml.Node) bool {
		if n.Line != line || n.ShortTag() != tag {
			return false
		}
		if prefix, cut := strings.CutSuffix(value, "..."); cut {
			return strings.HasPrefix(n.Value, prefix)
		}
		return value == "" || n.Value == value
	}
	var best []any
	bestDepth := -1
	consider := func(n *yaml.Node, path []any, depth int) {
		if depth > bestDepth && match(n) {
			best, bestDepth = path, depth
		}
	}
	var walk func(n *yaml.Node, path []any, depth int)
	walk = func(n *yaml.Node, path []any, depth int) {
		if depth > maxWalkDepth {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := at(path, k.Value)
				consider(k, p, depth+1)
				consider(v, p, depth+1)
				walk(v, p, depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				consider(c, at(path, i), depth+1)
				walk(c, at(path, i), depth+1)
			}
		}
	}
	top := root
	if top.Kind == yaml.DocumentNode && len(top.Content) > 0 {
		top = top.Content[0]
	}
	consider(top, []any{"(top level)"}, 0)
	walk(top, nil, 0)
	return best, bestDepth >= 0
}

// maxWalkDepth bounds the searches through the document tree; a deeper
// document cannot be a valid configuration anyway.
const maxWalkDepth = 100

// narrow finds where a decoding error that carries no line comes from. It
// decodes ever smaller documents that keep a single entry of each mapping and
// sequence on the way down, and returns the path and line of the deepest
// entry that on its own still fails with msg.
func narrow(root *yaml.Node, msg string) ([]any, int, bool) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	fails := func(doc *yaml.Node) bool {
		var c Config
		err := doc.Decode(&c)
		return err != nil && strings.TrimPrefix(err.Error(), "yaml: ") == msg
	}
	var path []any
	line := 0
	wrap := func(n *yaml.Node) *yaml.Node { return n }
	for len(path) < maxWalkDepth {
		var next *yaml.Node
		for i := range entryCount(n) {
			key, value := entry(n, i)
			if !fails(wrap(only(n, i, value))) {
				continue
			}
			outer, parent, idx := wrap, n, i
			wrap = func(v *yaml.Node) *yaml.Node { return outer(only(parent, idx, v)) }
			if n.Kind == yaml.MappingNode {
				path = append(path, key.Value)
			} else {
				path = append(path, i)
			}
			line, next = key.Line, value
			if next.Kind == yaml.AliasNode && next.Alias != nil {
				next = next.Alias
			}
			break
		}
		if next == nil {
			break
		}
		n = next
	}
	return path, line, len(path) > 0
}

func entryCount(n *yaml.Node) int {
	switch n.Kind {
	case yaml.MappingNode:
		return len(n.Content) / 2
	case yaml.SequenceNode:
		return len(n.Content)
	}
	return 0
}

// entry returns the key (for a sequence, the item) and value of entry i.
func entry(n *yaml.Node, i int) (key, value *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		return n.Content[2*i], n.Content[2*i+1]
	}
	return n.Content[i], n.Content[i]
}

// only returns a copy of the mapping or sequence n holding just its entry i,
// with value as that entry's value.
func only(n *yaml.Node, i int, value *yaml.Node) *yaml.Node {
	c := *n
	if n.Kind == yaml.MappingNode {
		c.Content = []*yaml.Node{n.Content[2*i], value}
	} else {
		c.Content = []*yaml.Node{value}
	}
	return &c
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
