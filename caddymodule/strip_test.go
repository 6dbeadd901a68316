package caddymodule_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestSessionAuthMatcherEmitsStrip: `session_auth <matcher>` adapts to one
// unmatched subroute whose first route is a bare strip (it removes what
// every session_auth of the config injects, X-Auth- and X-A, X-B
// included), and whose second is the matched session_auth; without a
// matcher there is no extra strip.
func TestSessionAuthMatcherEmitsStrip(t *testing.T) {
	adapt := func(body string) string {
		t.Helper()
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+body+"\n}\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	out := adapt(`@protected not path /login
	session_auth @protected http http://sessions.internal {
		header_prefix X-Auth-
		header X-B {session.user}
		header X-A {session.user}
	}
	reverse_proxy 127.0.0.1:9`)
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Match  []any `json:"match"`
						Handle []struct {
							Handler string `json:"handler"`
							Routes  []struct {
								Match  []any             `json:"match"`
								Handle []json.RawMessage `json:"handle"`
							} `json:"routes"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatal(err)
	}
	var sub []struct {
		Match  []any             `json:"match"`
		Handle []json.RawMessage `json:"handle"`
	}
	for _, srv := range cfg.Apps.HTTP.Servers {
		for _, rt := range srv.Routes {
			for _, h := range rt.Handle {
				if h.Handler == "subroute" && len(rt.Match) == 0 {
					sub = append(sub, h.Routes...)
				}
			}
		}
	}
	if len(sub) < 2 {
		t.Fatalf("no unmatched subroute with two routes:\n%s", out)
	}
	want := `{"handler":"session_strip"}`
	if len(sub[0].Match) != 0 || len(sub[0].Handle) != 1 || string(sub[0].Handle[0]) != want {
		t.Errorf("first route: match %v, handle %s; want unmatched %s", sub[0].Match, sub[0].Handle, want)
	}
	if len(sub[1].Match) == 0 || !strings.Contains(string(sub[1].Handle[0]), `"handler":"session_auth"`) {
		t.Errorf("second route: want the matched session_auth, got match %v handle %s", sub[1].Match, sub[1].Handle)
	}

	if plain := adapt(`session_auth http http://sessions.internal`); strings.Contains(plain, "session_strip") {
		t.Errorf("session_auth without a matcher emitted a strip:\n%s", plain)
	}
	if top := adapt("handle /app/* {\n\tsession_auth http http://sessions.internal\n}\nsession_strip"); strings.Index(top, "session_strip") > strings.Index(top, "session_auth") {
		t.Errorf("session_strip is not ordered before handle blocks:\n%s", top)
	}
}

// TestSessionStripCaddyfileErrors: bad session_strip settings are refused
// with an error naming them.
func TestSessionStripCaddyfileErrors(t *testing.T) {
	for body, want := range map[string]string{
		"session_strip extra":                                        "wrong argument count",
		"session_strip {\n\tbogus\n}":                                "unknown session_strip option",
		"session_strip {\n\theader\n}":                               "want header <name>",
		"session_strip {\n\theader_prefix A-\n\theader_prefix B-\n}": "given twice",
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+body+"\n}\n"), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error with %q", body, err, want)
		}
	}
}

// TestSessionAuthOneStripPerSite: of the `session_auth <matcher>` at the
// top of a site, only the first emits the strip, and a bare session_auth
// before them (which strips every request itself) leaves them none; each
// site gets its own; a nested one emits one for its block. Each used to
// emit one, after the previous session_auth.
func TestSessionAuthOneStripPerSite(t *testing.T) {
	cfg := `a.example.com {
	session_auth /x/* http http://sessions.internal
	session_auth /y/* http http://sessions.internal
	reverse_proxy 127.0.0.1:9
}
b.example.com {
	session_auth /x/* http http://sessions.internal
	session_auth /y/* http http://sessions.internal
	handle /z/* {
		session_auth /z/a/* http http://sessions.internal
	}
	reverse_proxy 127.0.0.1:9
}
c.example.com {
	session_auth http http://sessions.internal
	session_auth /y/* http http://sessions.internal
	reverse_proxy 127.0.0.1:9
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Count(string(out), `"handler":"session_strip"`)
	if got != 3 {
		t.Errorf("%d strips, want 3 (one per site with a matched session_auth, one for the nested block):\n%s", got, out)
	}
	if strings.Index(string(out), `"handler":"session_strip"`) > strings.Index(string(out), `"handler":"session_auth"`) {
		t.Errorf("a session_auth comes before the first strip:\n%s", out)
	}
}
