package prober

import (
	"path/filepath"
	"testing"

	"github.com/vantageprobe/vantage/config"
)

// Every module of blackbox_exporter's example.yml and blackbox.yml
// prepares, with the files example.yml names found under the test root.
func TestBlackboxConfigsPrepare(t *testing.T) {
	root, err := filepath.Abs("../config/testdata/blackbox/root")
	if err != nil {
		t.Fatal(err)
	}
	under := func(p *string) {
		if *p != "" {
			*p = filepath.Join(root, *p)
		}
	}
	for _, name := range []string{"example.yml", "blackbox.yml"} {
		c, err := config.LoadFile(filepath.Join("../config/testdata/blackbox", name))
		if err != nil {
			t.Fatal(err)
		}
		for mname, m := range c.Modules {
			under(&m.HTTP.BodyFile)
			under(&m.HTTP.HTTPClientConfig.TLSConfig.CAFile)
			under(&m.TCP.TLSConfig.CAFile)
			if h := m.HTTP.HTTPClientConfig.HTTPHeaders; h != nil {
				for k, v := range h.Headers {
					for i := range v.Files {
						under(&v.Files[i])
					}
					h.Headers[k] = v
				}
			}
			if _, err := Prepare(mname, m); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}
