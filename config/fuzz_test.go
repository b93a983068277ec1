package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzLoad checks that no document makes Parse panic, that every error names
// the document, and that whatever parses is a set of modules with known
// probers that marshals, and whose marshalled form parses again to the same
// configuration.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 {
		f.Fatal("no seed files in testdata/")
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(DefaultYAML())
	f.Add([]byte("modules: {m: {prober: tcp, destinations: {deny_private: true, allowed_networks: [0.0.0.0/0, '::/0', 64:ff9b::/96], " +
		"denied_networks: [169.254.169.254, 'fd00:ec2::254'], allowed_hosts: ['*', '*.Example.COM.'], denied_hosts: [xn--bcher-kva.example, '*.internal']}}}"))

	const source = "fuzz.yml"
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, source)
		if err != nil {
			if !strings.HasPrefix(err.Error(), source+":") {
				t.Fatalf("error does not start with %q: %v", source+":", err)
			}
			return
		}
		for name, m := range c.Modules {
			if !slices.Contains(Probers, m.Prober) {
				t.Fatalf("module %q loaded with unknown prober %q", name, m.Prober)
			}
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("a loaded config does not marshal: %v", err)
		}
		again, err := Parse(out, "marshalled.yml")
		if err != nil {
			t.Fatalf("the marshalled config does not load: %v\n%s", err, out)
		}
		out2, err := again.Marshal()
		if err != nil {
			t.Fatalf("the reloaded config does not marshal: %v", err)
		}
		if string(out2) != string(out) {
			t.Fatalf("marshal, load, marshal changed the config:\n%s\nbecame\n%s", out, out2)
		}
	})
}
