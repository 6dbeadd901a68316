package integration

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHostileReadmeNamesRealTests keeps the README's security table
// honest: every test and fuzz target it cites as the proof of a row must
// exist.
func TestHostileReadmeNamesRealTests(t *testing.T) {
	raw, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(raw)
	cited := regexp.MustCompile("`((?:Test|Fuzz)[A-Z][A-Za-z0-9_]*)`").FindAllStringSubmatch(sec, -1)
	if len(cited) < 8 {
		t.Fatalf("the security section cites %d tests; the table names one per row", len(cited))
	}
	var src strings.Builder
	if err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, "_test.go") {
			b, _ := os.ReadFile(path)
			src.Write(b)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cited {
		if !strings.Contains(src.String(), "func "+c[1]+"(") {
			t.Errorf("README's security section cites %s, which no test file defines", c[1])
		}
	}
}
