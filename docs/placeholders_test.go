package docs

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// placeholderNamed is a sessiongate placeholder a document names
// (`{session.attrs.<key>}` names a family, not one).
var placeholderNamed = regexp.MustCompile(`\{session\.[a-z_]+(?:\.[a-z_]+)?\}`)

// TestPlaceholdersAnswered: every {session.*} placeholder the documents
// name is one session_auth answers. A loaded Caddy resolves a session from
// a real session service and answers a body made of the placeholders; a
// name it does not know is left in the body as written.
func TestPlaceholdersAnswered(t *testing.T) {
	var named []string
	for _, file := range markdownFiles(t) {
		if file == "CHANGELOG.md" {
			continue
		}
		named = append(named, placeholderNamed.FindAllString(read(t, file), -1)...)
	}
	slices.Sort(named)
	named = slices.Compact(named)
	if len(named) == 0 {
		t.Fatal("no {session.*} placeholder found in the documents")
	}

	service := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer docs-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id": "u-1", "user": "alice", "email": "alice@example.com", "name": "Alice", "roles": ["admin"], "admin": true}`)
	}))
	defer service.Close()

	body := strings.Join(named, "\n")
	cfg := `{
		"admin": {"disabled": true, "config": {"persist": false}},
		"apps": {"http": {"servers": {"docs": {
			"listen": ["127.0.0.1:0"],
			"routes": [{"handle": [
				{"handler": "session_auth", "backend": {"dialect": "http", "url": ` + strconv.Quote(service.URL+"/whoami") + `}},
				{"handler": "static_response", "body": ` + strconv.Quote(body) + `}
			]}]
		}}}}
	}`
	resp := getWithToken(t, loadCaddy(t, cfg))
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), "alice") {
		t.Fatalf("the request with a session: %s %q", resp.Status, got)
	}
	for _, p := range named {
		if strings.Contains(string(got), p) {
			t.Errorf("the documents name %s, which session_auth does not answer", p)
		}
	}
}
