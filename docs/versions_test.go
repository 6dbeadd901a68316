package docs

import (
	"regexp"
	"testing"
)

// caddyVersionNamed matches a Caddy version a document or the Dockerfile
// tells users to build with: `xcaddy build v2.11.9`,
// `caddy/v2@v2.11.9`, `caddy:2.11.9-builder`, `CADDY_VERSION=2.11.9`.
var caddyVersionNamed = regexp.MustCompile(`(?:xcaddy build |caddyserver/caddy/v2@|caddy:|CADDY_VERSION=)v?(\d+\.\d+\.\d+)`)

// sessiongateVersionNamed matches a tagged sessiongate version to install.
var sessiongateVersionNamed = regexp.MustCompile(`caddy-sessiongate@v\d+\.\d+\.\d+`)

// TestVersionsNamedExist: every Caddy version the install instructions
// name is the one go.mod requires (the one the tests ran against, and one
// that exists), and no sessiongate version is named for installing while
// none is tagged (the CHANGELOG says which are).
func TestVersionsNamedExist(t *testing.T) {
	gomod := read(t, "go.mod")
	m := regexp.MustCompile(`(?m)^\s*github\.com/caddyserver/caddy/v2 v(\S+)`).FindStringSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod requires no github.com/caddyserver/caddy/v2")
	}
	want := m[1]
	// A released version has a heading of its own, "## [0.2.0] - <date>";
	// "## 0.1.0 - <date> (never tagged)" is not one.
	tagged := regexp.MustCompile(`(?m)^## \[?\d+\.\d+\.\d+\]? - [0-9-]+$`).MatchString(read(t, "CHANGELOG.md"))
	files := append(markdownFiles(t), "xcaddy.Dockerfile")
	found := 0
	for _, f := range files {
		if f == "CHANGELOG.md" {
			continue // history names the versions of its time
		}
		text := read(t, f)
		for _, v := range caddyVersionNamed.FindAllStringSubmatch(text, -1) {
			found++
			if v[1] != want {
				t.Errorf("%s names Caddy %s (%q); go.mod requires v%s", f, v[1], v[0], want)
			}
		}
		if !tagged {
			for _, v := range sessiongateVersionNamed.FindAllString(text, -1) {
				t.Errorf("%s names %s, but no sessiongate version is tagged yet", f, v)
			}
		}
	}
	if found == 0 {
		t.Fatal("no Caddy version found in the install instructions: the patterns are stale")
	}
}
