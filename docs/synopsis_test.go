package docs

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// synopsis is the first ```caddy-d block after the heading that names the
// directive, in file.
func synopsis(t *testing.T, file, heading string) block {
	t.Helper()
	lines := strings.Split(read(t, file), "\n")
	for i, l := range lines {
		if l != heading {
			continue
		}
		for _, b := range blocks(t, file) {
			if b.line > i && b.lang == "caddy-d" {
				return b
			}
		}
	}
	t.Fatalf("%s: no ```caddy-d block after %q", file, heading)
	return block{}
}

// subdirectives are the names a synopsis lists inside the directive's
// block: "cache_ttl", and nested ones as "cluster/mode". Placeholder
// lines (<dialect option> ...) and the directive's own lines are left out.
func subdirectives(b block) []string {
	var names, open []string
	for _, l := range strings.Split(b.text, "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if strings.HasPrefix(f[0], "}") {
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
			continue
		}
		opens := strings.HasSuffix(f[len(f)-1], "{")
		if len(open) > 0 && !strings.HasPrefix(f[0], "<") {
			path := append(slices.Clone(open[1:]), f[0])
			names = append(names, strings.Join(path, "/"))
		}
		if opens {
			open = append(open, f[0])
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// TestSynopsesAgree keeps the README's synopses of session_auth,
// session_require and session_strip in step with docs/directives.md, and every subdirective
// they list known to the Caddyfile adapter: a name either one lists that
// the other lacks, or that the adapter does not know, fails.
func TestSynopsesAgree(t *testing.T) {
	for _, handler := range []string{"session_auth", "session_require", "session_strip"} {
		readme := subdirectives(synopsis(t, "README.md", "### "+handler))
		ref := subdirectives(synopsis(t, "docs/directives.md", "## "+handler))
		if len(ref) == 0 {
			t.Fatalf("docs/directives.md: no subdirective found in the %s synopsis", handler)
		}
		for _, n := range ref {
			if !slices.Contains(readme, n) {
				t.Errorf("README.md's %s synopsis lacks %s, which docs/directives.md lists", handler, n)
			}
		}
		for _, n := range readme {
			if !slices.Contains(ref, n) {
				t.Errorf("README.md's %s synopsis lists %s, which docs/directives.md lacks", handler, n)
			}
		}
		for _, n := range ref {
			if err := unknownToAdapter(handler, n); err != nil {
				t.Errorf("docs/directives.md lists %s %s: %v", handler, n, err)
			}
		}
	}
}

// unknownToAdapter adapts a config with the one subdirective (no
// arguments, so its own checks may refuse it) and reports an error only
// when the adapter does not know the name at all.
func unknownToAdapter(handler, name string) error {
	parent, sub, nested := strings.Cut(name, "/")
	var body string
	switch {
	case handler == "session_require" || handler == "session_strip":
		body = "session_auth http https://a.example\n\t" + handler + " {\n\t\t" + name + "\n\t}"
	case !nested:
		body = "session_auth http https://a.example {\n\t\t" + name + "\n\t}"
	case parent == "cluster":
		body = "session_auth http https://a.example {\n\t\tcluster redis://r:6379 {\n\t\t\t" + sub + "\n\t\t}\n\t}"
	default:
		body = "session_auth http https://a.example {\n\t\t" + parent + " {\n\t\t\t" + sub + "\n\t\t}\n\t}"
	}
	cfg := ":8080 {\n\t" + body + "\n\trespond ok\n}\n"
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err == nil {
		return nil
	}
	w := sub
	if !nested {
		w = name
	}
	for _, unknown := range []string{"unrecognized subdirective", "unrecognized assertion subdirective", "unknown cluster option", "unknown session_strip option"} {
		if strings.Contains(err.Error(), fmt.Sprintf("%s %q", unknown, w)) {
			return err
		}
	}
	return nil
}
