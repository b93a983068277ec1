package promtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ReadmeScrapeConfig returns, verbatim, the first YAML block of the
// README.md in root that holds scrape_configs: the Prometheus jobs the
// README tells users to add.
func ReadmeScrapeConfig(tb testing.TB, root string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, block := range strings.Split(string(b), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if strings.Contains(block, "scrape_configs:") {
			return []byte(block)
		}
	}
	tb.Fatal("README.md has no scrape_configs example")
	return nil
}
