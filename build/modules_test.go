package build_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// goModules are the directories, relative to the repository root, of the
// modules that hold Go packages (the tools module holds none: only tool
// directives).
func goModules(t *testing.T) []string {
	t.Helper()
	var mods []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir
		}
		if d.Name() != "go.mod" {
			return nil
		}
		dir := filepath.Dir(path)
		goFiles, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			return err
		}
		subdirs, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		if len(goFiles) == 0 && !hasSubdir(subdirs) {
			return nil // the tools module: tool directives only
		}
		rel, err := filepath.Rel("..", dir)
		if err != nil {
			return err
		}
		mods = append(mods, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return mods
}

func hasSubdir(entries []os.DirEntry) bool {
	for _, e := range entries {
		if e.IsDir() && e.Name() != "testdata" {
			return true
		}
	}
	return false
}

// readmeTestCommand is the second command of the README's first sh block:
// the one that runs every test.
func readmeTestCommand(t *testing.T) string {
	t.Helper()
	_, rest, ok := strings.Cut(read(t, "../README.md"), "```sh\n")
	if !ok {
		t.Fatal("README.md has no sh block")
	}
	block, _, _ := strings.Cut(rest, "```")
	lines := strings.Split(strings.TrimSpace(block), "\n")
	if len(lines) != 2 {
		t.Fatalf("the README's first sh block has %d lines, want 2 (the demo, every test)", len(lines))
	}
	cmd, _, _ := strings.Cut(lines[1], "#")
	return strings.TrimSpace(cmd)
}

// TestEveryModuleIsTestedAndLinted keeps the README's test command, CI and
// the modules in step: the README's one command runs `go test -race ./...`
// in every module that holds packages (go test ./... never crosses into a
// nested module), CI runs exactly that command in stage 2 and its -short
// form in stage 1, and CI lints every module.
func TestEveryModuleIsTestedAndLinted(t *testing.T) {
	mods := goModules(t)
	if len(mods) < 2 {
		t.Fatalf("modules with packages: %q; want the plugin and integration at least", mods)
	}
	cmd := readmeTestCommand(t)
	var want []string
	ci := read(t, "../.ci/run")
	for _, m := range mods {
		test, lint := "go test -race ./...", "go tool -modfile=tools/go.mod golangci-lint run ./..."
		if m != "." {
			test = "go test -C " + m + " -race ./..."
			lint = "(cd " + m + " && go tool -modfile=" + strings.Repeat("../", strings.Count(m, "/")+1) + "tools/go.mod golangci-lint run ./...)"
		}
		want = append(want, test)
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(lint) + `$`).MatchString(ci) {
			t.Errorf(".ci/run does not lint module %s: no line %q", m, lint)
		}
	}
	if got := strings.Join(want, " && "); cmd != got {
		t.Errorf("the README's test command is\n  %s\nwant, for the modules %q,\n  %s", cmd, mods, got)
	}
	// set -e does not stop CI at a failure left of an &&: the line ends
	// with || exit 1 when the command has one.
	stop := ""
	if strings.Contains(cmd, "&&") {
		stop = " || exit 1"
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(cmd+stop) + `$`).MatchString(ci) {
		t.Errorf(".ci/run does not run the README's test command on a line of its own: %q", cmd+stop)
	}
	short := strings.ReplaceAll(cmd, " -race ", " -race -short ")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(short+stop) + `$`).MatchString(ci) {
		t.Errorf(".ci/run's fast gate does not run %q on a line of its own", short+stop)
	}
}

// TestPluginGoModHoldsOnlyWhatUsersNeed keeps the test-only modules out
// of the plugin's go.mod, which every xcaddy build of a user resolves:
// the integration tests' peers are required by integration/go.mod alone,
// and that module tests this checkout's plugin against the same Caddy.
func TestPluginGoModHoldsOnlyWhatUsersNeed(t *testing.T) {
	plugin := read(t, "../go.mod")
	for _, dep := range []string{"github.com/vmware/govmomi", "go.uber.org/goleak"} {
		if regexp.MustCompile(`(?m)^\s*(require\s+)?` + regexp.QuoteMeta(dep) + `\s`).MatchString(plugin) {
			t.Errorf("go.mod requires %s, which only tests use: it belongs in integration/go.mod", dep)
		}
	}
	integ := read(t, "../integration/go.mod")
	if !regexp.MustCompile(`(?m)^module github\.com/sessiongate/caddy-sessiongate/integration$`).MatchString(integ) {
		t.Error("integration/go.mod is not module github.com/sessiongate/caddy-sessiongate/integration")
	}
	if !regexp.MustCompile(`(?m)^replace github\.com/sessiongate/caddy-sessiongate => \.\./?$`).MatchString(integ) {
		t.Error("integration/go.mod does not replace the plugin by this checkout (=> ../)")
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(caddyModule) + `\s+(v\S+)`).FindStringSubmatch(integ)
	if m == nil || m[1] != goModCaddyVersion(t) {
		t.Errorf("integration/go.mod requires Caddy %v, go.mod %s: the tests must run the Caddy users build", m, goModCaddyVersion(t))
	}
}
