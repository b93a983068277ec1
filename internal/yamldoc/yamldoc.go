// Package yamldoc decodes YAML documents strictly (unknown keys and
// duplicate keys are errors) and locates every error: messages read
// "source:line: path: problem", with the line of the field at fault even
// where the YAML library reports another. Both programs' configuration
// schemas load through it.
package yamldoc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// FieldError is a validation error at a path inside the document, such as
// modules.http_2xx.http.fail_if_header_matches[0].regexp.
type FieldError struct {
	Path []any // string keys and int indexes
	Err  error
}

func (e *FieldError) Error() string { return pathString(e.Path) + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func pathString(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, p)
		}
	}
	return b.String()
}

// At builds a path by appending to a copy of base.
func At(base []any, more ...any) []any {
	return append(slices.Clip(base), more...)
}

// Fail is a FieldError at path with a formatted message.
func Fail(path []any, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf(format, args...)}
}

// Decode decodes a YAML document strictly into out (unknown keys are
// errors) and validates it, with every error located as
// "source:line: path: problem". validate gets the document's node tree.
func Decode(data []byte, source string, out any, validate func(root *yaml.Node) error) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(source, data, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return nil, decodeError(source, &root, err, func() any { return reflect.New(reflect.TypeOf(out).Elem()).Interface() })
	}
	if err := validate(&root); err != nil {
		return nil, locateError(source, &root, err)
	}
	return &root, nil
}

// locateError prefixes a validation error with its source and, for a field
// error, the line of the field it names.
func locateError(source string, root *yaml.Node, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fmt.Errorf("%s:%d: %w", source, Locate(root, fe.Path), fe)
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
func decodeError(source string, root *yaml.Node, err error, fresh func() any) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// An UnmarshalYAML method (prometheus/common's TLS version, URL, TLS
		// config checks) failed; the decoder does not say where.
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if path, line, ok := narrow(root, msg, fresh); ok {
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

// Locate returns the line of the entry at path: the line of its key for a
// mapping entry, of the item for a sequence entry. When the document lacks
// part of the path (a key that must be set is missing), it returns the line
// of the deepest entry the document has.
func Locate(root *yaml.Node, path []any) int {
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
				p := At(path, k.Value)
				consider(k, p, depth+1)
				consider(v, p, depth+1)
				walk(v, p, depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				consider(c, At(path, i), depth+1)
				walk(c, At(path, i), depth+1)
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
// sequence on the way down, each into a value from fresh (a new value of
// the type being decoded), and returns the path and line of the deepest
// entry that on its own still fails with msg.
func narrow(root *yaml.Node, msg string, fresh func() any) ([]any, int, bool) {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	fails := func(doc *yaml.Node) bool {
		err := doc.Decode(fresh())
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
				if p, ok := walk(n.Content[i+1], At(path, k.Value)); ok {
					return p, true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				if p, ok := walk(c, At(path, i)); ok {
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
