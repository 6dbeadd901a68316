package docs

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// logSections are the parts of the documents that quote sessiongate's
// log lines: the file, and the start of the heading its section starts
// at.
var logSections = []struct{ file, heading string }{
	{"docs/operations.md", "## Logs"},
	{"docs/operations.md", "## Protecting the session service"},
	{"docs/cluster.md", "## Failure "}, // what happens when Redis fails
}

// logMessage is a quoted log message: lower-case words, a space between
// at least two of them (field names such as `token_hash` have none).
var logMessage = regexp.MustCompile("`([a-z][a-z_]*(?: [a-z_:;]+)+)`")

// section is the text of file from the heading to the next heading, its
// lines joined by spaces (a quoted message may be wrapped).
func section(t *testing.T, file, heading string) string {
	t.Helper()
	var out []string
	in := false
	for _, l := range strings.Split(read(t, file), "\n") {
		if !in && strings.HasPrefix(l, heading) {
			in = true
			continue
		}
		if in && strings.HasPrefix(l, "#") {
			break
		}
		if in {
			out = append(out, l)
		}
	}
	if !in {
		t.Fatalf("%s: no heading %q", file, heading)
	}
	return strings.Join(out, " ")
}

// TestQuotedLogMessagesExist: every log message the documents quote is
// one the code writes (a string literal of the plugin's non-test Go
// files), so an operator grepping the logs for it finds it.
func TestQuotedLogMessagesExist(t *testing.T) {
	var code strings.Builder
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "integration" || d.Name() == "tools" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && d.Name() != "..") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			code.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	src := code.String()
	found := 0
	for _, s := range logSections {
		for _, m := range logMessage.FindAllStringSubmatch(section(t, s.file, s.heading), -1) {
			found++
			if !strings.Contains(src, `"`+m[1]) {
				t.Errorf("%s (%s) quotes the log message %q, which no Go source writes", s.file, s.heading, m[1])
			}
		}
	}
	if found == 0 {
		t.Fatal("no quoted log message found: the sections moved")
	}
}
