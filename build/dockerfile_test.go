// Package build_test checks the packaging recipe that no machine here can
// run (there is no Docker engine): xcaddy.Dockerfile must build the Caddy
// go.mod pins, with the same script CI runs.
package build_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const caddyModule = "github.com/caddyserver/caddy/v2"

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goModCaddyVersion is the Caddy version go.mod requires.
func goModCaddyVersion(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(caddyModule) + `\s+(v\S+)`).FindStringSubmatch(read(t, "../go.mod"))
	if m == nil {
		t.Fatalf("go.mod requires no %s", caddyModule)
	}
	return m[1]
}

func TestDockerfileCaddyVersionMatchesGoMod(t *testing.T) {
	df := read(t, "../xcaddy.Dockerfile")
	m := regexp.MustCompile(`(?m)^ARG CADDY_VERSION=(\S+)\s*$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("xcaddy.Dockerfile has no ARG CADDY_VERSION=<version> line")
	}
	if got, want := "v"+m[1], goModCaddyVersion(t); got != want {
		t.Errorf("xcaddy.Dockerfile builds on Caddy %s, go.mod requires %s: update ARG CADDY_VERSION", got, want)
	}

	var froms []string
	for _, line := range strings.Split(df, "\n") {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "FROM "); ok {
			froms = append(froms, strings.Fields(f)[0])
		}
	}
	if want := []string{"caddy:${CADDY_VERSION}-builder", "caddy:${CADDY_VERSION}"}; strings.Join(froms, " ") != strings.Join(want, " ") {
		t.Errorf("xcaddy.Dockerfile stages are FROM %q, want %q (both pinned by the ARG)", froms, want)
	}
}

// TestDockerfileRunsTheBuildScript keeps one build command: the image must
// be built by the script CI runs, not by a copy of its xcaddy line.
func TestDockerfileRunsTheBuildScript(t *testing.T) {
	df := read(t, "../xcaddy.Dockerfile")
	if !regexp.MustCompile(`(?m)^RUN (sh )?build/xcaddy-build\.sh /usr/bin/caddy\s*$`).MatchString(df) {
		t.Error("xcaddy.Dockerfile does not RUN build/xcaddy-build.sh /usr/bin/caddy")
	}
	if strings.Contains(df, "xcaddy build") {
		t.Error("xcaddy.Dockerfile has its own xcaddy build line: call build/xcaddy-build.sh instead")
	}
	if !regexp.MustCompile(`(?m)^COPY --from=builder /usr/bin/caddy /usr/bin/caddy\s*$`).MatchString(df) {
		t.Error("xcaddy.Dockerfile does not copy the built binary into the caddy stage")
	}
	if !strings.Contains(read(t, "../.ci/run"), "build/xcaddy-build.sh") {
		t.Error(".ci/run does not build with build/xcaddy-build.sh")
	}
}

// TestBuildScriptCommand runs the script with XCADDY=echo: the xcaddy
// command it would run must name go.mod's Caddy, this checkout, and the
// output path as the caller meant it.
func TestBuildScriptCommand(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	caller := t.TempDir()
	for _, tc := range []struct{ arg, output string }{
		{"", filepath.Join(root, "caddy")},
		{"out/caddy", filepath.Join(caller, "out/caddy")},
		{"/usr/bin/caddy", "/usr/bin/caddy"},
	} {
		args := []string{filepath.Join(root, "build", "xcaddy-build.sh")}
		if tc.arg != "" {
			args = append(args, tc.arg)
		}
		cmd := exec.Command("sh", args...)
		cmd.Dir = caller
		cmd.Env = append(os.Environ(), "XCADDY=echo xcaddy")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build/xcaddy-build.sh %s: %v\n%s", tc.arg, err, out)
		}
		want := "xcaddy build " + goModCaddyVersion(t) +
			" --with github.com/sessiongate/caddy-sessiongate@" + projectVersion(t) + "=." +
			" --output " + tc.output
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("build/xcaddy-build.sh %s runs\n  %s\nwant\n  %s", tc.arg, got, want)
		}
	}
}

// projectVersion is sessiongate's version, held by the VERSION file
// alone.
func projectVersion(t *testing.T) string {
	t.Helper()
	v := strings.TrimSpace(read(t, "../VERSION"))
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(v) {
		t.Fatalf("VERSION holds %q, not a semantic version such as v1.2.3", v)
	}
	return v
}

// TestToolsLiveInTheirOwnModule keeps the tools (xcaddy, vcsim, the
// linter) out of the plugin's go.mod: every tool and its dependencies in
// there would enter the version selection of every user's xcaddy build.
func TestToolsLiveInTheirOwnModule(t *testing.T) {
	tools := read(t, "../tools/go.mod")
	for _, tool := range []string{
		"github.com/caddyserver/xcaddy/cmd/xcaddy",
		"github.com/vmware/govmomi/vcsim",
		"github.com/golangci/golangci-lint/v2/cmd/golangci-lint",
	} {
		if !regexp.MustCompile(`(?m)^\s*(tool\s+)?` + regexp.QuoteMeta(tool) + `\s*$`).MatchString(tools) {
			t.Errorf("tools/go.mod has no tool directive for %s", tool)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*github\.com/caddyserver/xcaddy v0\.4\.7\b`).MatchString(tools) {
		t.Error("tools/go.mod does not pin github.com/caddyserver/xcaddy v0.4.7")
	}
	if !strings.Contains(read(t, "../.ci/run"), "go tool -modfile=tools/go.mod golangci-lint run ./...") {
		t.Error(".ci/run does not run the tools module's golangci-lint over ./...")
	}
	// (TestEveryModuleIsTestedAndLinted checks every module is linted.)
	mod := read(t, "../go.mod")
	if regexp.MustCompile(`(?m)^tool\b`).MatchString(mod) {
		t.Error("go.mod has tool directives: tools belong in tools/go.mod")
	}
	for _, dep := range []string{"github.com/caddyserver/xcaddy", "github.com/golangci/golangci-lint/v2", "honnef.co/go/tools"} {
		if strings.Contains(mod, dep+" ") {
			t.Errorf("go.mod requires %s, a tool's module", dep)
		}
	}
}

// TestChangelogNamesTheVersion keeps VERSION and CHANGELOG.md together: a
// released VERSION has its own section, a pre-release one is the
// Unreleased work towards it.
func TestChangelogNamesTheVersion(t *testing.T) {
	v := projectVersion(t)
	cl := read(t, "../CHANGELOG.md")
	release, pre, _ := strings.Cut(v, "-")
	if pre != "" {
		if !strings.Contains(cl, "## [Unreleased]") {
			t.Errorf("VERSION %s is a pre-release, but CHANGELOG.md has no [Unreleased] section", v)
		}
		return
	}
	if !strings.Contains(cl, "## ["+strings.TrimPrefix(release, "v")+"]") {
		t.Errorf("CHANGELOG.md has no section for VERSION %s", v)
	}
}
