// Package docs checks the documentation against the code: every relative
// link resolves, every Caddyfile is formatted as `caddy fmt` writes it and
// adapts, and the JSON shown is what `caddy adapt` makes.
package docs

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/sessiongate/caddy-sessiongate/caddymodule"
)

// markdownFiles are the documents users read, relative to the repository
// root.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "CHANGELOG.md", "bench/README.md"}
	more, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		files = append(files, strings.TrimPrefix(m, "../"))
	}
	return files
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// block is one fenced code block of a document.
type block struct {
	file, lang, text string
	line             int
}

var fence = regexp.MustCompile("^```(.*)$")

func blocks(t *testing.T, file string) []block {
	t.Helper()
	var out []block
	var cur *block
	for i, line := range strings.Split(read(t, file), "\n") {
		m := fence.FindStringSubmatch(line)
		switch {
		case m != nil && cur == nil:
			cur = &block{file: file, lang: strings.TrimSpace(m[1]), line: i + 1}
		case m != nil && cur != nil && m[1] == "":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if cur != nil {
		t.Errorf("%s:%d: code block never closed", file, cur.line)
	}
	return out
}

var link = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// headingAnchors are the anchors GitHub gives the headings of the
// markdown file at path: lower case, spaces to hyphens, punctuation
// other than hyphens and underscores dropped.
func headingAnchors(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var a strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				a.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				a.WriteRune(r)
			}
		}
		out = append(out, a.String())
	}
	return out
}

func TestRelativeLinksResolve(t *testing.T) {
	for _, file := range markdownFiles(t) {
		text := read(t, file)
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if anchor, ok := strings.CutPrefix(target, "#"); ok {
				if !slices.Contains(headingAnchors(t, filepath.Join("..", file)), anchor) {
					t.Errorf("%s: link %q: no heading of its own with that anchor", file, target)
				}
				continue
			}
			target, anchor, _ := strings.Cut(target, "#")
			path := filepath.Join("..", filepath.Dir(file), target)
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %q does not resolve: %v", file, m[1], err)
				continue
			}
			if anchor != "" && strings.HasSuffix(target, ".md") && !slices.Contains(headingAnchors(t, path), anchor) {
				t.Errorf("%s: link %q: %s has no heading with that anchor", file, m[1], target)
			}
		}
	}
}

// caddyfileBlocks are the Caddyfiles of the documents and the demo.
// "```caddyfile" marks a whole Caddyfile, which must adapt;
// "```caddyfile partial" a piece of one (a block, a directive), which
// must only be formatted. "```caddy-d" is syntax, not a Caddyfile.
func caddyfileBlocks(t *testing.T) []block {
	var out []block
	for _, file := range markdownFiles(t) {
		for _, b := range blocks(t, file) {
			if b.lang == "caddy" {
				t.Errorf("%s:%d: mark Caddyfile blocks ```caddyfile (whole) or ```caddyfile partial", b.file, b.line)
			}
			if strings.HasPrefix(b.lang, "caddyfile") {
				out = append(out, b)
			}
		}
	}
	return append(out, block{file: "Caddyfile.example", lang: "caddyfile", text: read(t, "Caddyfile.example"), line: 1})
}

func TestCaddyfilesAreFormatted(t *testing.T) {
	for _, b := range caddyfileBlocks(t) {
		if got := caddyfile.Format([]byte(b.text)); !bytes.Equal(got, []byte(b.text)) {
			t.Errorf("%s:%d: caddy fmt changes this Caddyfile; formatted it reads:\n%s", b.file, b.line, got)
		}
	}
}

func adapt(t *testing.T, b block) []byte {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(b.text), map[string]any{"filename": b.file})
	if err != nil {
		t.Errorf("%s:%d: does not adapt: %v", b.file, b.line, err)
		return nil
	}
	return cfg
}

func TestCaddyfilesAdapt(t *testing.T) {
	for _, b := range caddyfileBlocks(t) {
		if b.lang == "caddyfile" {
			adapt(t, b)
		}
	}
}

// sessiongateHandlers collects, in config order, every handler object of
// an adapted config whose handler name starts with "session_".
func sessiongateHandlers(v any, out *[]any) {
	switch v := v.(type) {
	case map[string]any:
		if h, ok := v["handler"].(string); ok && strings.HasPrefix(h, "session_") {
			*out = append(*out, v)
			return
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		// routes and handle lists are arrays, so order comes from them;
		// map keys are walked sorted only to be deterministic.
		sortStrings(keys)
		for _, k := range keys {
			sessiongateHandlers(v[k], out)
		}
	case []any:
		for _, e := range v {
			sessiongateHandlers(e, out)
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestJSONMatchesAdapt keeps docs/json.md in step with the adapter: each
// ```caddyfile block there is followed by a ```json block listing the
// sessiongate handlers it adapts to, in order.
func TestJSONMatchesAdapt(t *testing.T) {
	bs := blocks(t, "docs/json.md")
	pairs := 0
	for i := 0; i+1 < len(bs); i++ {
		if bs[i].lang != "caddyfile" || bs[i+1].lang != "json" {
			continue
		}
		pairs++
		cfg := adapt(t, bs[i])
		if cfg == nil {
			continue
		}
		var adapted any
		if err := json.Unmarshal(cfg, &adapted); err != nil {
			t.Fatal(err)
		}
		var got []any
		sessiongateHandlers(adapted, &got)
		var want []any
		if err := json.Unmarshal([]byte(bs[i+1].text), &want); err != nil {
			t.Errorf("docs/json.md:%d: not a JSON list: %v", bs[i+1].line, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			gotJSON, _ := json.MarshalIndent(got, "", "  ")
			t.Errorf("docs/json.md:%d: the Caddyfile above adapts to\n%s", bs[i+1].line, gotJSON)
		}
	}
	if pairs == 0 {
		t.Error("docs/json.md has no ```caddyfile / ```json pair")
	}
}

// TestNoOwnerMarkers keeps the documents free of drafting leftovers.
func TestNoOwnerMarkers(t *testing.T) {
	for _, file := range markdownFiles(t) {
		if strings.Contains(read(t, file), "<!-- section:") {
			t.Errorf("%s has a section-owner marker", file)
		}
	}
	if n := len(read(t, "README.md")); n > 25*1024 {
		t.Errorf("README.md is %d bytes, over 25 KB: move depth into docs/", n)
	}
}

// TestCompleteJSONConfigsLoad: every "```json config" block of
// docs/json.md is a whole config that Caddy's own loader provisions and
// validates, as `caddy run --config x.json` would.
func TestCompleteJSONConfigsLoad(t *testing.T) {
	t.Setenv("SESSIONGATE_CLUSTER_SECRET", "a-test-secret-of-at-least-32-bytes!!")
	t.Setenv("REDIS_PASSWORD", "pw")
	n := 0
	for _, b := range blocks(t, "docs/json.md") {
		if b.lang != "json config" {
			continue
		}
		n++
		var cfg caddy.Config
		if err := json.Unmarshal([]byte(b.text), &cfg); err != nil {
			t.Errorf("docs/json.md:%d: %v", b.line, err)
			continue
		}
		if err := caddy.Validate(&cfg); err != nil {
			t.Errorf("docs/json.md:%d: Caddy refuses this config: %v", b.line, err)
		}
	}
	if n < 3 {
		t.Errorf("docs/json.md has %d complete configs, want at least 3", n)
	}
}
