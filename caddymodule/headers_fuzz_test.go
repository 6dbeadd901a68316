package caddymodule

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// FuzzHeaderFolder checks that the fast matcher used on every request
// agrees with the plain definition: a client header is protected when,
// ignoring case and reading every byte that is not a letter or digit as '-', it starts with the prefix or is one
// of the protected names. A disagreement is a spoofable spelling.
func FuzzHeaderFolder(f *testing.F) {
	f.Add("X-Session-", "X-Who", "x_session_user")
	f.Add("X-Session-", "Remote-User", "REMOTE_USER")
	f.Add("X-Auth-", "X-Custom-Header", "x-custom_header")
	f.Add("X-Session-", strings.Repeat("A", 200), strings.Repeat("a", 200))
	f.Add("X-Session-", "X-Who", "X-Sessio")
	f.Fuzz(func(t *testing.T, prefix, custom, name string) {
		names := []string{custom, "Remote-User", "X-Forwarded-User"}
		hf := newHeaderFolder(prefix, names)
		sep := regexp.MustCompile(`[^a-zA-Z0-9]`)
		fold := func(n string) string { return strings.ToLower(sep.ReplaceAllString(n, "-")) }
		ref := func(n string) bool {
			fn := fold(n)
			fp := fold(prefix)
			if prefix != "" && strings.HasPrefix(fn, fp) {
				return true
			}
			for _, p := range names {
				if fn == fold(p) {
					return true
				}
			}
			return false
		}
		// strings.ToLower also folds non-ASCII letters, which header
		// names never hold; compare only ASCII input.
		for _, s := range []string{prefix, custom, name} {
			for i := 0; i < len(s); i++ {
				if s[i] >= 0x80 {
					return
				}
			}
		}
		if got, want := hf.protected(name), ref(name); got != want {
			t.Fatalf("prefix %q names %q: protected(%q) = %v, want %v", prefix, names, name, got, want)
		}
		h := http.Header{name: {"forged"}}
		hf.strip(h)
		if _, kept := h[name]; kept == ref(name) {
			t.Fatalf("strip kept=%v header %q, protected=%v", kept, name, ref(name))
		}
		// A protected name listed in Connection would have the proxy
		// delete the trusted header: it must go, the rest must stay.
		h = http.Header{"Connection": {"keep-alive, " + name, name}}
		hf.strip(h)
		var toks []string
		for _, v := range h["Connection"] {
			for _, tok := range strings.Split(v, ",") {
				if tok = strings.TrimSpace(tok); tok != "" {
					toks = append(toks, tok)
					if ref(tok) {
						t.Fatalf("Connection still names protected %q after strip: %q", tok, h["Connection"])
					}
				}
			}
		}
		// (A prefix such as "C" owns Connection itself, which then goes.)
		if !ref("keep-alive") && !ref("Connection") && (len(toks) == 0 || toks[0] != "keep-alive") {
			t.Fatalf("strip lost keep-alive from Connection: %q", h["Connection"])
		}
	})
}
