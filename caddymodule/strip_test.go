package caddymodule_test

import (
	"encoding/json"
	"slices"
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
		"session_strip {\n\theader_prefix Cook\n}":                   `header_prefix "Cook" would strip the request's own Cookie header from every request; choose another prefix, at Caddyfile:3`,
		"session_strip {\n\theader Authorization\n}":                 `header "Authorization": the request's own Authorization header, which would be stripped from every request; choose another name, at Caddyfile:3`,
		"session_strip {\n\theader \"X A\"\n}":                       `header "X A": not a header name, at Caddyfile:3`,
	} {
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8080 {\n"+body+"\n}\n"), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error with %q", body, err, want)
		}
	}
}

// TestSessionAuthStripBeforeEverySessionAuth: every `session_auth
// <matcher>`, at the top of a site or nested in a block, first or after
// another session_auth (bare or matched), has an unmatched strip right
// before it in its own route list, and no strip is emitted anywhere else
// (a bare session_auth strips every request itself). Only the first one
// of a site used to emit a strip, found by reading Caddy's private
// Caddyfile state through reflection.
func TestSessionAuthStripBeforeEverySessionAuth(t *testing.T) {
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
		session_auth http http://sessions.internal
	}
	reverse_proxy 127.0.0.1:9
}
c.example.com {
	session_auth http http://sessions.internal
	session_auth /y/* http http://sessions.internal
	route {
		session_auth /r/* http http://sessions.internal
		reverse_proxy 127.0.0.1:9
	}
}
`
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	handlers := func(route map[string]any) []string {
		var names []string
		handle, _ := route["handle"].([]any)
		for _, h := range handle {
			if m, ok := h.(map[string]any); ok {
				names = append(names, m["handler"].(string))
			}
		}
		return names
	}
	var matched, bare, strips, stripped int
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if routes, ok := v["routes"].([]any); ok {
				for i, r := range routes {
					route, _ := r.(map[string]any)
					names := handlers(route)
					_, hasMatch := route["match"]
					for _, n := range names {
						switch {
						case n == "session_strip":
							strips++
						case n == "session_auth" && !hasMatch:
							bare++
						case n == "session_auth":
							matched++
							prev, _ := routes[max(i-1, 0)].(map[string]any)
							_, prevMatch := prev["match"]
							if i == 0 || prevMatch || !slices.Equal(handlers(prev), []string{"session_strip"}) {
								t.Errorf("a matched session_auth (%v) without an unmatched strip right before it: %v", route["match"], prev)
							} else {
								stripped++
							}
						}
					}
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	if matched != 7 || bare != 2 {
		t.Fatalf("found %d matched and %d bare session_auth, want 7 and 2:\n%s", matched, bare, out)
	}
	if stripped != matched || strips != matched {
		t.Errorf("%d strips, %d of them right before the %d matched session_auth; want one before each and none elsewhere:\n%s", strips, stripped, matched, out)
	}
}
