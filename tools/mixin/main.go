// Command mixin renders the monitoring mixin in mixin/ (jsonnet, evaluated
// with go-jsonnet) into the files Prometheus and Grafana load:
// rules/recording.rules.yml, rules/alerts.rules.yml and dashboards/*.json.
// The rendered files are checked in; `make mixin` runs this command and a
// test fails while they differ from what it renders.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/go-jsonnet"
	"go.yaml.in/yaml/v3"
)

// header starts every rendered rule file.
const header = "# Rendered from mixin/ by `make mixin`: edit the jsonnet there, not this file.\n"

// evaluate is the jsonnet program that picks the mixin's parts.
const evaluate = `
local m = import 'mixin.libsonnet';
{
  config: m._config,
  recording: m.prometheusRules,
  alerts: m.prometheusAlerts,
  dashboards: m.grafanaDashboards,
}
`

// mixin is the evaluated mixin.
type mixin struct {
	Config     map[string]any             `json:"config"`
	Recording  json.RawMessage            `json:"recording"`
	Alerts     json.RawMessage            `json:"alerts"`
	Dashboards map[string]json.RawMessage `json:"dashboards"`
}

// load evaluates the mixin in dir.
func load(dir string) (*mixin, error) {
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{JPaths: []string{dir}})
	out, err := vm.EvaluateAnonymousSnippet(filepath.Join(dir, "render.jsonnet"), evaluate)
	if err != nil {
		return nil, fmt.Errorf("evaluating the mixin in %s: %w", dir, err)
	}
	var m mixin
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("decoding the evaluated mixin: %w", err)
	}
	return &m, nil
}

// render returns the files the mixin of root/mixin renders, by path
// relative to root.
func render(root string) (map[string][]byte, error) {
	m, err := load(filepath.Join(root, "mixin"))
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for name, raw := range map[string]json.RawMessage{
		"rules/recording.rules.yml": m.Recording,
		"rules/alerts.rules.yml":    m.Alerts,
	} {
		b, err := ruleYAML(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		files[name] = b
	}
	for name, raw := range m.Dashboards {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", name, err)
		}
		buf.WriteByte('\n')
		files[filepath.Join("dashboards", name)] = buf.Bytes()
	}
	return files, nil
}

// ruleKeyOrder is the order of a rule's keys in the rendered YAML, as
// Prometheus' documentation writes them (jsonnet sorts keys).
var ruleKeyOrder = []string{"name", "interval", "record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations", "rules",
	"summary", "description", "runbook_url", "dashboard_url"}

// ruleYAML renders a rule file from its JSON: keys in ruleKeyOrder,
// multi-line strings (expressions) as literal blocks.
func ruleYAML(raw json.RawMessage) ([]byte, error) {
	var doc yaml.Node
	// JSON is YAML: decoding into a node keeps the mixin's values and lets
	// the encoder choose each string's style.
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	restyle(&doc)
	var buf bytes.Buffer
	buf.WriteString(header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func restyle(n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		n.Style = 0
		if n.Tag == "!!str" && bytes.ContainsRune([]byte(n.Value), '\n') {
			n.Style = yaml.LiteralStyle
		}
	case yaml.MappingNode:
		n.Style = 0
		sortMapping(n)
	case yaml.SequenceNode, yaml.DocumentNode:
		n.Style = 0
	}
	for _, c := range n.Content {
		restyle(c)
	}
}

// sortMapping orders a mapping's keys by ruleKeyOrder, keys it does not
// list last in their order.
func sortMapping(n *yaml.Node) {
	rank := func(key string) int {
		if i := slices.Index(ruleKeyOrder, key); i >= 0 {
			return i
		}
		return len(ruleKeyOrder)
	}
	pairs := make([][2]*yaml.Node, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		pairs = append(pairs, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	slices.SortStableFunc(pairs, func(a, b [2]*yaml.Node) int { return rank(a[0].Value) - rank(b[0].Value) })
	n.Content = n.Content[:0]
	for _, p := range pairs {
		n.Content = append(n.Content, p[0], p[1])
	}
}

func main() {
	root := flag.String("root", ".", "the repository's root: the mixin is read from root/mixin, files written under root")
	flag.Parse()
	files, err := render(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mixin:", err)
		os.Exit(1)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(*root, name), files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "mixin:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", name)
	}
}
