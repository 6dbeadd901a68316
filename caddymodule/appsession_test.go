package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// TestAppSessionBinding pins the mechanism: a binding made for one
// identity and value matches only that identity and value; the Cookie
// header loses exactly the unbound app cookies, their look-alikes and
// every binding, the rest byte for byte; the answer binds what the app
// sets and expires what was removed, unless the app sets it itself.
func TestAppSessionBinding(t *testing.T) {
	a := newAppSessions([]string{"sid", "__Host-app"}, strings.Repeat("s", 32))
	jose := subjectOf(&sessionctx.Session{Kind: "user", UserID: "1", User: "josé"})
	bob := subjectOf(&sessionctx.Session{Kind: "user", UserID: "2", User: "bob"})
	// Length prefixes: ("1", "2x") and ("12", "x") are different subjects.
	if string(subjectOf(&sessionctx.Session{UserID: "1", User: "2x"})) == string(subjectOf(&sessionctx.Session{UserID: "12", User: "x"})) {
		t.Fatal("two identities share a subject")
	}
	macs := map[string]bool{}
	for _, m := range []string{
		a.mac(jose, "sid", "v1"), a.mac(bob, "sid", "v1"), a.mac(jose, "sid", "v2"),
		a.mac(jose, "__Host-app", "v1"), a.mac(anonymousSubject, "sid", "v1"),
		newAppSessions([]string{"sid"}, strings.Repeat("t", 32)).mac(jose, "sid", "v1"),
	} {
		if macs[m] {
			t.Fatalf("two bindings alike: %s", m)
		}
		macs[m] = true
	}

	// josé's answer sets sid: a binding with the cookie's attributes.
	hdr := http.Header{"Set-Cookie": {"sid=v1; Path=/app; Max-Age=60; SameSite=Strict", "other=x; Path=/"}}
	r := httptest.NewRequest("GET", "/app/page", nil)
	a.check(r, jose).respond(hdr, false)
	var bind *http.Cookie
	for _, l := range hdr["Set-Cookie"] {
		c, err := http.ParseSetCookie(l)
		if err != nil {
			t.Fatal(err)
		}
		if c.Name == "sessiongate_sid" {
			bind = c
		}
		if c.Name == "sessiongate_other" {
			t.Errorf("a cookie outside app_session was bound")
		}
	}
	if bind == nil || bind.Path != "/app" || bind.MaxAge != 60 || bind.SameSite != http.SameSiteStrictMode || !bind.HttpOnly {
		t.Fatalf("binding %+v", bind)
	}
	if strings.Contains(bind.Value, "v1") || strings.Contains(bind.Value, "jos") {
		t.Errorf("binding shows the value or the user: %q", bind.Value)
	}

	cookie := "a=1; sid=v1; sessiongate_sid=" + bind.Value + `; b="2"`
	for _, tc := range []struct {
		name    string
		subject []byte
		cookie  string
		want    string
		expire  []string
	}{
		{"bound", jose, cookie, `a=1; sid=v1; b="2"`, nil},
		{"another user", bob, cookie, `a=1; b="2"`, []string{"sid=; Path=/app; Max-Age=0", "sessiongate_sid=; Path=/app; Max-Age=0; HttpOnly"}},
		{"nobody", anonymousSubject, cookie, `a=1; b="2"`, []string{"sid=; Path=/app; Max-Age=0"}},
		{"session ended", nil, cookie, `a=1; b="2"`, []string{"sid=; Path=/app; Max-Age=0"}},
		{"another value", jose, "sid=v2; sessiongate_sid=" + bind.Value, "", []string{"sid=; Path=/app; Max-Age=0"}},
		{"no binding", jose, "sid=v1; c=3", "c=3", []string{"sid=; Path=/; Max-Age=0"}},
		{"forged binding", jose, "sid=v1; sessiongate_sid=AAAA", "", []string{"sid=; Path=/; Max-Age=0", "sessiongate_sid=; Path=/; Max-Age=0; HttpOnly"}},
		{"look-alike names", jose, cookie + "; SID=v9; s%69d=v9", `a=1; sid=v1; b="2"`, nil},
	} {
		r := httptest.NewRequest("GET", "/app/page", nil)
		r.Header.Set("Cookie", tc.cookie)
		ar := a.check(r, tc.subject)
		if got := r.Header.Get("Cookie"); got != tc.want {
			t.Errorf("%s: Cookie %q, want %q", tc.name, got, tc.want)
		}
		out := http.Header{}
		ar.respond(out, false)
		got := strings.Join(out["Set-Cookie"], "\n")
		for _, e := range tc.expire {
			if !strings.Contains(got, e) {
				t.Errorf("%s: answer sets %q, want %q among them", tc.name, got, e)
			}
		}
		if tc.expire == nil && got != "" {
			t.Errorf("%s: answer sets %q, want nothing", tc.name, got)
		}
		if strings.Contains(got, "SID=") || strings.Contains(got, "s%69d") {
			t.Errorf("%s: a look-alike (maybe another app's cookie) was expired: %q", tc.name, got)
		}
	}

	// The app sets the cookie anew in the answer: no expiry of it.
	r = httptest.NewRequest("GET", "/app/page", nil)
	r.Header.Set("Cookie", cookie)
	out := http.Header{"Set-Cookie": {"sid=v3; Path=/app"}}
	a.check(r, bob).respond(out, false)
	for _, l := range out["Set-Cookie"] {
		if strings.Contains(l, "Max-Age=0") {
			t.Errorf("expired a cookie the app sets in the same answer: %q", out["Set-Cookie"])
		}
	}

	// A completed logout unbinds what the request carried, and binds
	// what the app sets to nobody.
	r = httptest.NewRequest("POST", "/logout", nil)
	r.Header.Set("Cookie", cookie)
	out = http.Header{"Set-Cookie": {"__Host-app=new; Path=/; Secure"}}
	a.check(r, jose).respond(out, true)
	got := strings.Join(out["Set-Cookie"], "\n")
	if !strings.Contains(got, "sid=; Path=/app; Max-Age=0") || !strings.Contains(got, "sessiongate_sid=; Path=/app; Max-Age=0") {
		t.Errorf("logout: %q, want sid and its binding expired", got)
	}
	want := "__Host-sessiongate_app=" + a.mac(anonymousSubject, "__Host-app", "new")
	if !strings.Contains(got, want) {
		t.Errorf("logout: %q, want the new cookie bound to nobody (%s)", got, want)
	}
}

// TestAppSessionKey: nodes given the same secret (app_session_secret or
// the cluster's) make the same bindings; another secret, or none (a key
// per process), makes others.
func TestAppSessionKey(t *testing.T) {
	s := subjectOf(&sessionctx.Session{UserID: "1", User: "bob"})
	one := newAppSessions([]string{"sid"}, strings.Repeat("a", 32)).mac(s, "sid", "v")
	if two := newAppSessions([]string{"sid"}, strings.Repeat("a", 32)).mac(s, "sid", "v"); two != one {
		t.Errorf("the same secret made different bindings")
	}
	other := newAppSessions([]string{"sid"}, strings.Repeat("b", 32)).mac(s, "sid", "v")
	process := newAppSessions([]string{"sid"}, "").mac(s, "sid", "v")
	if other == one || process == one || process == other {
		t.Errorf("bindings under different keys are alike")
	}
	// The key is derived: a binding is not the HMAC under the secret itself.
	if string(newAppSessions(nil, strings.Repeat("a", 32)).key) == strings.Repeat("a", 32) {
		t.Errorf("the secret is used as the key as it is")
	}
}

// An app cookie hidden after a comma in another cookie's value, which
// comma-separating parsers (Python's SimpleCookie, older Rack) read as
// the app cookie, goes with the cookie that hides it; a comma with no app
// cookie after it, and a bound app cookie, stay.
func TestAppSessionCommaHiddenCookie(t *testing.T) {
	a := newAppSessions([]string{"sid"}, strings.Repeat("s", 32))
	bob := subjectOf(&sessionctx.Session{Kind: "user", UserID: "2", User: "bob"})
	bound := "sid=v2; sessiongate_sid=" + a.mac(bob, "sid", "v2")
	for cookie, want := range map[string]string{
		"other=1, sid=josé-old; " + bound:   "sid=v2",
		"other=1,SID=josé-old; " + bound:    "sid=v2",
		"a=1; b=x, y, sid =old, c=2":        "a=1",
		"pref=a,b,c; " + bound:              "pref=a,b,c; sid=v2",
		"t=Wed, 09 Jun 2021 10:18:14 GMT":   "t=Wed, 09 Jun 2021 10:18:14 GMT",
		"other=1, sidx=2; other2=sid, sid2": "other=1, sidx=2; other2=sid, sid2",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", cookie)
		a.check(r, bob)
		if got := r.Header.Get("Cookie"); got != want {
			t.Errorf("Cookie %q: the app gets %q, want %q", cookie, got, want)
		}
	}
}
