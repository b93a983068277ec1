package yamldoc

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// doc is a small schema with the shapes the messages depend on: nested
// mappings, sequences, typed scalars and a validation rule.
type doc struct {
	Name  string          `yaml:"name"`
	Every time.Duration   `yaml:"every"`
	Items []item          `yaml:"items"`
	Tags  map[string]tags `yaml:"tags"`
}

type item struct {
	Port int `yaml:"port"`
}

type tags struct {
	Values []string `yaml:"values"`
}

func (d *doc) validate() error {
	for i, it := range d.Items {
		if it.Port > 65535 {
			return Fail(At([]any{"items", i}, "port"), "port must be at most 65535, got %d", it.Port)
		}
	}
	if d.Name == "forbidden" {
		return errors.New("this document is not allowed")
	}
	return nil
}

func decode(text string) error {
	var d doc
	_, err := Decode([]byte(text), "d.yml", &d, func(*yaml.Node) error { return d.validate() })
	return err
}

// TestMessages pins every kind of message: syntax errors at the line of
// the problem, unknown and duplicate keys, type errors inside block and
// flow style, and located validation errors.
func TestMessages(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"name: a\nitems:\n  - port: 1\n  - port: 70000\n", "d.yml:4: items[1].port: port must be at most 65535, got 70000"},
		{"name: a\nitems: [{port: 1}, {port: 70000}]\n", "d.yml:2: items[1].port: port must be at most 65535, got 70000"},
		{"name: forbidden\n", "d.yml: this document is not allowed"},
		{"name: a\nnmae: b\n", `d.yml:2: (top level): unknown key "nmae"`},
		{"name: a\nname: b\n", `d.yml:2: (top level): duplicate key "name" (first set at line 1)`},
		{"name: a\nevery: 5\n", "d.yml:2: every: cannot unmarshal !!int `5` into time.Duration"},
		{"items:\n  - port: x\n", "d.yml:2: items[0].port: cannot unmarshal !!str `x` into int"},
		{"tags: {a: {values: {b: c}}}\n", "d.yml:1: tags.a.values: cannot unmarshal !!map into []string"},
		{"- a\n", "d.yml:1: (top level): cannot unmarshal !!seq into yamldoc.doc"},
		{"name: a\nitems:\n  - port: 1\n\t- port: 2\n", "d.yml:4: found a tab character that violates indentation"},
		{"name: [a\n", "d.yml:1: did not find expected ',' or ']'"},
	} {
		err := decode(tc.text)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q:\n got: %v\nwant: %s", tc.text, err, tc.want)
		}
	}
	if err := decode("name: a\nitems: [{port: 80}]\n"); err != nil {
		t.Errorf("a valid document failed: %v", err)
	}
}

func TestFieldError(t *testing.T) {
	cause := errors.New("bad")
	err := fmt.Errorf("wrapped: %w", &FieldError{Path: []any{"a", 2, "b"}, Err: cause})
	if !strings.HasSuffix(err.Error(), "a[2].b: bad") || !errors.Is(err, cause) {
		t.Errorf("got %v; want the path a[2].b and the cause unwrapped", err)
	}
	base := []any{"x"}
	p1, p2 := At(base, "y"), At(base, "z")
	if fmt.Sprint(p1) != "[x y]" || fmt.Sprint(p2) != "[x z]" {
		t.Errorf("At shares its base: %v %v", p1, p2)
	}
}
