package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

func requireSession() *sessionctx.Session {
	return &sessionctx.Session{
		UserID: "u-7", User: "carol", OrgID: "o-1", Org: "acme",
		Roles: []string{"dev", "ops"}, Perms: []string{"read", "write"},
	}
}

// appSession is a TR50 application session named like a user.
func appSession() *sessionctx.Session {
	return &sessionctx.Session{UserID: "app-1", User: "alice", Kind: "app"}
}

func TestSessionRequireRules(t *testing.T) {
	admin := requireSession()
	admin.Admin = true
	for _, tc := range []struct {
		name string
		h    SessionRequire
		s    *sessionctx.Session
		want int
	}{
		{"no rules, a session", SessionRequire{}, requireSession(), 200},
		{"no session", SessionRequire{}, nil, 401},
		{"no session, rules", SessionRequire{Roles: [][]string{{"dev"}}}, nil, 401},
		{"role any of", SessionRequire{Roles: [][]string{{"admin", "ops"}}}, requireSession(), 200},
		{"role none of", SessionRequire{Roles: [][]string{{"admin", "billing"}}}, requireSession(), 403},
		{"role lines ANDed, both met", SessionRequire{Roles: [][]string{{"dev"}, {"ops"}}}, requireSession(), 200},
		{"role lines ANDed, one unmet", SessionRequire{Roles: [][]string{{"dev"}, {"admin"}}}, requireSession(), 403},
		{"perm all of, met", SessionRequire{Perms: []string{"read", "write"}}, requireSession(), 200},
		{"perm all of, one missing", SessionRequire{Perms: []string{"read", "delete"}}, requireSession(), 403},
		{"org_id by id", SessionRequire{OrgIDs: [][]string{{"o-1"}}}, requireSession(), 200},
		{"org by id is not a name", SessionRequire{Orgs: [][]string{{"o-1"}}}, requireSession(), 403},
		{"org_id by name is not an id", SessionRequire{OrgIDs: [][]string{{"acme"}}}, requireSession(), 403},
		{"org_id, org named like the id", SessionRequire{OrgIDs: [][]string{{"o-1"}}}, &sessionctx.Session{User: "x", OrgID: "o-2", Org: "o-1"}, 403},
		{"org by name", SessionRequire{Orgs: [][]string{{"other", "acme"}}}, requireSession(), 200},
		{"org unmet", SessionRequire{Orgs: [][]string{{"globex"}}}, requireSession(), 403},
		{"org rule, session without org", SessionRequire{Orgs: [][]string{{"acme"}}}, &sessionctx.Session{User: "x"}, 403},
		{"user by name", SessionRequire{Users: [][]string{{"dave", "carol"}}}, requireSession(), 200},
		{"user_id by id", SessionRequire{UserIDs: [][]string{{"u-7"}}}, requireSession(), 200},
		{"user by id is not a name", SessionRequire{Users: [][]string{{"u-7"}}}, requireSession(), 403},
		{"user_id by name is not an id", SessionRequire{UserIDs: [][]string{{"carol"}}}, requireSession(), 403},
		{"user_id, user named like the id", SessionRequire{UserIDs: [][]string{{"u-1"}}}, &sessionctx.Session{UserID: "u-9", User: "u-1"}, 403},
		{"user unmet", SessionRequire{Users: [][]string{{"dave"}}}, requireSession(), 403},
		{"user rule, application named like the user", SessionRequire{Users: [][]string{{"alice"}}}, appSession(), 403},
		{"user_id rule, application with the id", SessionRequire{UserIDs: [][]string{{"app-1"}}}, appSession(), 403},
		{"app rule, the application", SessionRequire{Apps: [][]string{{"alice"}}}, appSession(), 200},
		{"app_id rule, the application", SessionRequire{AppIDs: [][]string{{"app-1"}}}, appSession(), 200},
		{"app rule, a user named like the application", SessionRequire{Apps: [][]string{{"carol"}}}, requireSession(), 403},
		{"app_id rule, a user with the id", SessionRequire{AppIDs: [][]string{{"u-7"}}}, requireSession(), 403},
		{"kind app, the application", SessionRequire{Kind: "app"}, appSession(), 200},
		{"kind app, a user", SessionRequire{Kind: "app"}, requireSession(), 403},
		{"kind user, a user without a kind", SessionRequire{Kind: "user"}, requireSession(), 200},
		{"kind user, the application", SessionRequire{Kind: "user"}, appSession(), 403},
		{"admin met", SessionRequire{Admin: true}, admin, 200},
		{"admin unmet", SessionRequire{Admin: true}, requireSession(), 403},
		{"all kinds met", SessionRequire{Roles: [][]string{{"ops"}}, Perms: []string{"read"}, Orgs: [][]string{{"acme"}}, Users: [][]string{{"carol"}}, Admin: true}, admin, 200},
		{"all kinds, perm unmet", SessionRequire{Roles: [][]string{{"ops"}}, Perms: []string{"root"}, Orgs: [][]string{{"acme"}}, Users: [][]string{{"carol"}}, Admin: true}, admin, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.h.Validate(); err != nil {
				t.Fatal(err)
			}
			r, _ := requestWithReplacer("GET", "/x", nil)
			if tc.s != nil {
				r = withSession(r, tc.s)
			}
			w := httptest.NewRecorder()
			next := &nextRecorder{}
			err := tc.h.ServeHTTP(w, r, next)
			got := 200
			if err != nil {
				got = statusOf(err)
				if got == 0 {
					t.Fatalf("error is not a caddyhttp.HandlerError: %v", err)
				}
			}
			if got != tc.want {
				t.Fatalf("status %d, want %d (err %v)", got, tc.want, err)
			}
			if (next.got != nil) != (tc.want == 200) {
				t.Errorf("next called = %v, want %v", next.got != nil, tc.want == 200)
			}
			if tc.want == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if tc.want == 403 && w.Header().Get("WWW-Authenticate") != "" {
				t.Errorf("403 with WWW-Authenticate")
			}
		})
	}
}

func TestSessionRequireValidate(t *testing.T) {
	for _, h := range []SessionRequire{
		{Roles: [][]string{{}}},
		{Orgs: [][]string{{"a"}, {}}},
		{Users: [][]string{{""}}},
		{Perms: []string{""}},
	} {
		if err := h.Validate(); err == nil {
			t.Errorf("%+v: want a validation error", h)
		}
	}
}

// The 403 message names the rule, not the session's own values: it may
// reach {http.error.message} on an error page.
func TestSessionRequireErrorNamesRuleOnly(t *testing.T) {
	h := SessionRequire{Users: [][]string{{"dave"}}}
	r := httptest.NewRequest("GET", "/", nil)
	r = withSession(r, requireSession())
	err := h.ServeHTTP(httptest.NewRecorder(), r, &nextRecorder{})
	if statusOf(err) != http.StatusForbidden {
		t.Fatalf("want 403, got %v", err)
	}
	for _, leak := range []string{"carol", "u-7"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q shows the session's %q", err, leak)
		}
	}
}
