package docs

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// infoTableHeader heads the one table of what session_info answers per
// dialect, in docs/dialects.md.
const infoTableHeader = "| dialect | put it on | answers | without a session |"

// TestSessionInfoTableAgrees: the table of what session_info answers
// exists once in the docs, has a row for every shape the code knows, and
// its "without a session" column gives the status and the JSON keys the
// code answers with.
func TestSessionInfoTableAgrees(t *testing.T) {
	for _, file := range markdownFiles(t) {
		if n := strings.Count(read(t, file), infoTableHeader); n > 0 && file != "docs/dialects.md" {
			t.Errorf("%s repeats the session_info table of docs/dialects.md; link to it instead", file)
		}
	}
	rows := tableRows(t, "docs/dialects.md", infoTableHeader)
	name := regexp.MustCompile("`([a-z0-9]+)`")
	status := regexp.MustCompile(`\b([1-5][0-9][0-9])\b`)
	key := regexp.MustCompile(`"([A-Za-z_]+)"`)
	seen := map[string]bool{}
	for _, row := range rows {
		if len(row) != 4 {
			t.Fatalf("row %q: want 4 columns", row)
		}
		m := name.FindStringSubmatch(row[0])
		if m == nil {
			t.Fatalf("row %q names no dialect", row)
		}
		shape, without := m[1], row[3]
		seen[shape] = true
		if shape == "http" && strings.Contains(without, "as without a dialect") {
			without = rowOf(t, rows, "normalized")[3]
		}
		want := status.FindStringSubmatch(without)
		if want == nil {
			t.Errorf("%s: the column %q gives no status", shape, without)
			continue
		}
		sh, err := sessionctx.LookupInfoShape(shape)
		if err != nil {
			t.Errorf("%s: %v", shape, err)
			continue
		}
		got := sh.Render(nil, sessionctx.InfoRequest{Method: "GET", Path: "/"})
		if strconv.Itoa(got.Status) != want[1] {
			t.Errorf("%s without a session: the docs say %s, the code answers %d %s", shape, want[1], got.Status, got.Body)
		}
		// The keys of the first JSON shown are in the answer.
		first, _, _ := strings.Cut(without, ";")
		for _, k := range key.FindAllStringSubmatch(first, -1) {
			if !strings.Contains(string(got.Body), `"`+k[1]+`"`) {
				t.Errorf("%s without a session: the docs show %q, the code's answer has no such key: %s", shape, k[1], got.Body)
			}
		}
	}
	normalized := false
	for _, sh := range sessionctx.InfoShapes() {
		if !seen[sh.Name()] {
			t.Errorf("docs/dialects.md's session_info table has no row for %q", sh.Name())
		}
		normalized = normalized || sh.Name() == "normalized"
	}
	if !normalized {
		t.Error("the normalized shape is gone")
	}
}

// tableRows returns the cells of the rows of the markdown table headed
// by header in file.
func tableRows(t *testing.T, file, header string) [][]string {
	t.Helper()
	text := read(t, file)
	i := strings.Index(text, header)
	if i < 0 {
		t.Fatalf("%s has no table %q", file, header)
	}
	var rows [][]string
	for n, line := range strings.Split(text[i:], "\n") {
		if n < 2 {
			continue // the header and its rule
		}
		if !strings.HasPrefix(line, "|") {
			break
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, cells)
	}
	return rows
}

func rowOf(t *testing.T, rows [][]string, shape string) []string {
	t.Helper()
	for _, r := range rows {
		if strings.Contains(r[0], "`"+shape+"`") {
			return r
		}
	}
	t.Fatalf("no row for %s", shape)
	return nil
}
