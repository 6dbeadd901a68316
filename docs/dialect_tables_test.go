package docs

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// registryDialects are the dialects the code knows: its session_info
// shapes but sessiongate's own.
func registryDialects() []string {
	var out []string
	for _, sh := range sessionctx.InfoShapes() {
		if sh.Name() != "normalized" {
			out = append(out, sh.Name())
		}
	}
	return out
}

// TestDialectTablesCoverEveryDialect: the per-dialect tables are in
// docs/dialects.md alone (so that a new dialect is documented in one
// file), and each has a row for every dialect the code knows, and none
// for one it does not.
func TestDialectTablesCoverEveryDialect(t *testing.T) {
	for _, file := range markdownFiles(t) {
		if file == "docs/dialects.md" {
			continue
		}
		for _, line := range strings.Split(read(t, file), "\n") {
			if strings.HasPrefix(line, "| dialect |") {
				t.Errorf("%s has a per-dialect table (%s): put it in docs/dialects.md and link to it", file, line)
			}
		}
	}
	known := registryDialects()
	name := regexp.MustCompile("`([a-z0-9]+)`")
	tables := 0
	for _, line := range strings.Split(read(t, "docs/dialects.md"), "\n") {
		if !strings.HasPrefix(line, "| dialect |") {
			continue
		}
		tables++
		seen := map[string]bool{}
		for _, row := range tableRows(t, "docs/dialects.md", line) {
			for _, m := range name.FindAllStringSubmatch(row[0], -1) {
				if d := m[1]; !slices.Contains(known, d) && d != "normalized" {
					t.Errorf("table %q: a row for %q, which is no dialect", line, d)
				}
				seen[m[1]] = true
			}
		}
		for _, d := range known {
			if !seen[d] {
				t.Errorf("table %q has no row for %s", line, d)
			}
		}
	}
	if tables < 4 {
		t.Errorf("docs/dialects.md has %d per-dialect tables, want at least 4", tables)
	}
}

// TestDefaultTokenSourcesDocumented: the default token sources column
// names each source the dialect declares (its conformance case, held to
// the registry by sessionctx's tests), in the order it reads them.
func TestDefaultTokenSourcesDocumented(t *testing.T) {
	const header = "| dialect | request to `<url>` | default token sources | mapping | cached at most |"
	rows := tableRows(t, "docs/dialects.md", header)
	for _, d := range registryDialects() {
		c, ok := dialecttest.Lookup(d)
		if !ok {
			t.Errorf("dialect %s has no conformance case", d)
			continue
		}
		cell := rowOf(t, rows, d)[2]
		at := 0
		for _, src := range c.Sources {
			want := src.From
			if src.Name != "" {
				want += " `" + src.Name + "`"
			}
			i := strings.Index(cell[at:], want)
			if i < 0 {
				t.Errorf("%s: default token sources %q does not name %q (in its place in the order)", d, cell, want)
				continue
			}
			at += i + len(want)
		}
	}
}
