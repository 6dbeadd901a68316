package sessionctx

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func kratosMapping() Mapping {
	return Mapping{
		IDFrom: "id", UserIDFrom: "identity.id", UserFrom: "identity.traits.email",
		EmailFrom: "identity.traits.email", NameFrom: "identity.traits.name",
		RolesFrom: "identity.metadata_public.roles", AdminFrom: "identity.metadata_public.admin",
		ExpiresFrom: "expires_at", ValidFrom: "active",
	}
}

func TestMappingDecode(t *testing.T) {
	tests := []struct {
		name    string
		m       Mapping
		body    string
		want    *Session
		wantErr error
	}{
		{
			name: "kratos whoami",
			m:    kratosMapping(),
			body: `{"id":"s-1","active":true,"expires_at":"2026-11-23T13:00:00Z",
				"identity":{"id":"i-1","traits":{"email":"ann@example.com","name":"Ann"},
				"metadata_public":{"roles":["admin","ops"],"admin":true}}}`,
			want: &Session{ID: "s-1", UserID: "i-1", User: "ann@example.com", Email: "ann@example.com",
				Name: "Ann", Roles: []string{"admin", "ops"}, Admin: true, Kind: kindUser,
				ExpiresAt: time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC)},
		},
		{
			name:    "inactive session is rejected",
			m:       kratosMapping(),
			body:    `{"active":false,"identity":{"id":"i-1"}}`,
			wantErr: ErrUnauthenticated,
		},
		{
			name:    "missing valid field is rejected",
			m:       kratosMapping(),
			body:    `{"identity":{"id":"i-1"}}`,
			wantErr: ErrUnauthenticated,
		},
		{
			name: "roles as a string, numeric ids, epoch expiry, ttl caps it",
			m:    Mapping{UserIDFrom: "uid", UserFrom: "login", RolesFrom: "groups", PermsFrom: "scope", ExpiresFrom: "exp", TTLFrom: "left", AdminFrom: "su", OrgIDFrom: "org"},
			body: `{"uid":1234567890123,"login":"bob","groups":"a, b c","scope":["read",7],"exp":` +
				`1795449600,"left":"60","su":"true","org":42}`,
			want: &Session{UserID: "1234567890123", User: "bob", Roles: []string{"a, b c"},
				Perms: []string{"read", "7"}, Admin: true, OrgID: "42", Kind: kindUser,
				ExpiresAt: t0.Add(time.Minute)},
		},
		{
			name: "roles split only on the separator asked for, never trimmed",
			m:    Mapping{UserIDFrom: "uid", RolesFrom: "groups", RolesSplit: ",", PermsFrom: "scope", PermsSplit: " "},
			body: `{"uid":"u","groups":"a, b,,c\u00a0","scope":"read  write\tall"}`,
			want: &Session{UserID: "u", Roles: []string{"a", " b", "c\u00a0"}, Perms: []string{"read", "write\tall"}, Kind: kindUser},
		},
		{
			name: "list elements exact: Unicode and ASCII spaces kept",
			m:    Mapping{UserIDFrom: "uid", RolesFrom: "r"},
			body: `{"uid":"u","r":["admin\u00a0","\u2003admin"," admin ","admin\u0085","Sales admin","\tadmin",""]}`,
			want: &Session{UserID: "u", Roles: []string{"admin\u00a0", "\u2003admin", " admin ", "admin\u0085", "Sales admin", "\tadmin"}, Kind: kindUser},
		},
		{
			name: "an id never comes from the name, nor the name from the id",
			m:    Mapping{UserIDFrom: "sub", UserFrom: "name", OrgIDFrom: "oid", OrgFrom: "org"},
			body: `{"sub":"x","org":"acme","oid":null}`,
			want: &Session{UserID: "x", Org: "acme", Kind: kindUser, MissingPaths: []string{"name", "oid"}},
		},
		{
			name: "no id: the id stays empty",
			m:    Mapping{UserIDFrom: "sub", UserFrom: "name"},
			body: `{"sub":"","name":"mallory"}`,
			want: &Session{User: "mallory", Kind: kindUser},
		},
		{name: "not JSON", m: kratosMapping(), body: `<html>`, wantErr: ErrUnavailable},
		{name: "truncated JSON", m: kratosMapping(), body: `{"identity":{"id":`, wantErr: ErrUnavailable},
		{name: "array", m: kratosMapping(), body: `[{"active":true}]`, wantErr: ErrUnavailable},
		{name: "null", m: kratosMapping(), body: `null`, wantErr: ErrUnavailable},
		{name: "no user", m: Mapping{UserFrom: "user"}, body: `{"email":"x"}`, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.Decode([]byte(tt.body), t0)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Raw = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestEpochTime(t *testing.T) {
	if got := epochTime(1795449600); !got.Equal(time.Unix(1795449600, 0)) {
		t.Errorf("seconds: %v", got)
	}
	if got := epochTime(1795449600123); !got.Equal(time.UnixMilli(1795449600123)) {
		t.Errorf("milliseconds: %v", got)
	}
}

// recordingService answers like a session service and remembers what it
// was sent.
func recordingService(t *testing.T, status int, body string) (*httptest.Server, *http.Request, *string) {
	t.Helper()
	var last http.Request
	var lastBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last = *r.Clone(context.Background())
		b, _ := io.ReadAll(r.Body)
		lastBody = string(b)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &last, &lastBody
}

func TestHTTPBackendRequest(t *testing.T) {
	ok := `{"user":"ann"}`
	tests := []struct {
		name  string
		opts  string
		check func(t *testing.T, r *http.Request, body string)
	}{
		{"default bearer", `{}`, func(t *testing.T, r *http.Request, _ string) {
			if r.Method != "GET" || r.Header.Get("Authorization") != "Bearer tok" {
				t.Errorf("%s Authorization=%q", r.Method, r.Header.Get("Authorization"))
			}
			if r.Header.Get("X-App-Key") != "k1" {
				t.Errorf("backend header missing: %v", r.Header)
			}
		}},
		{"header with prefix", `{"token_to":{"to":"header","name":"X-Token","prefix":"T "}}`, func(t *testing.T, r *http.Request, _ string) {
			if r.Header.Get("X-Token") != "T tok" {
				t.Errorf("X-Token=%q", r.Header.Get("X-Token"))
			}
		}},
		{"cookie", `{"token_to":{"to":"cookie","name":"sid"}}`, func(t *testing.T, r *http.Request, _ string) {
			if c, err := r.Cookie("sid"); err != nil || c.Value != "tok" {
				t.Errorf("cookie: %v %v", c, err)
			}
		}},
		{"query", `{"token_to":{"to":"query","name":"t"}}`, func(t *testing.T, r *http.Request, _ string) {
			if r.URL.Query().Get("t") != "tok" || r.URL.Query().Get("v") != "1" {
				t.Errorf("query: %q", r.URL.RawQuery)
			}
		}},
		{"body", `{"method":"POST","token_to":{"to":"body","body":"{\"sid\": {token}}"}}`, func(t *testing.T, r *http.Request, body string) {
			if r.Method != "POST" || body != `{"sid": "tok"}` || r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %q %q", r.Method, body, r.Header.Get("Content-Type"))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, last, lastBody := recordingService(t, 200, ok)
			b, _, err := newBackend(Config{Dialect: "http", URL: srv.URL + "/me?v=1", Options: optsJSON(t, "http", tt.opts),
				Header: http.Header{"X-App-Key": {"k1"}}})
			if err != nil {
				t.Fatal(err)
			}
			s, err := b.Resolve(context.Background(), credential{Value: "tok"})
			if err != nil || s.User != "ann" {
				t.Fatalf("session %+v, err %v", s, err)
			}
			tt.check(t, last, *lastBody)
		})
	}
}

func TestHTTPBackendStatuses(t *testing.T) {
	tests := []struct {
		status int
		opts   string
		want   error
	}{
		{401, `{}`, ErrUnauthenticated},
		{403, `{}`, ErrUnauthenticated},
		{404, `{}`, ErrUnavailable},
		{404, `{"unauthenticated_status":[404]}`, ErrUnauthenticated},
		{401, `{"unauthenticated_status":[404]}`, ErrUnauthenticated},
		{403, `{"unauthenticated_status":[404]}`, ErrUnavailable},
		{500, `{}`, ErrUnavailable},
		{302, `{}`, ErrUnavailable},
	}
	for _, tt := range tests {
		srv, _, _ := recordingService(t, tt.status, `{}`)
		b, _, err := newBackend(Config{Dialect: "http", URL: srv.URL, Options: optsJSON(t, "http", tt.opts)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Resolve(context.Background(), credential{Value: "tok"}); !errors.Is(err, tt.want) {
			t.Errorf("status %d with %s: err %v, want %v", tt.status, tt.opts, err, tt.want)
		}
	}
}

func TestHTTPBackendErrorsDoNotRepeatToken(t *testing.T) {
	srv, _, _ := recordingService(t, 200, `{}`)
	srv.Close() // refused
	b, _, err := newBackend(Config{Dialect: "http", URL: srv.URL, Options: optsJSON(t, "http", `{"token_to":{"to":"query","name":"t"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Resolve(context.Background(), credential{Value: "supersecrettoken"})
	if !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "supersecrettoken") {
		t.Fatalf("err %v: want ErrUnavailable without the token", err)
	}
}

func TestNewBackendRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"unknown dialect":     {Dialect: "nope", URL: "http://x"},
		"relative url":        {Dialect: "http", URL: "/whoami"},
		"ftp url":             {Dialect: "http", URL: "ftp://x/y"},
		"negative timeout":    {Dialect: "http", URL: "http://x", Timeout: -1},
		"another's options":   {Dialect: "http", URL: "http://x", Options: newEternusOptions()},
		"options, takes none": {Dialect: "amplify", URL: "http://x", Options: newHTTPOptions()},
		"body without token":  {Dialect: "http", URL: "http://x", Options: optsJSON(t, "http", `{"token_to":{"to":"body","body":"{}"}}`)},
		"no user mapping":     {Dialect: "http", URL: "http://x", Options: optsJSON(t, "http", `{"roles_from":"groups"}`)},
		"empty rejected_if":   {Dialect: "http", URL: "http://x", Options: optsJSON(t, "http", `{"rejected_if":[""]}`)},
		"missing CA file":     {Dialect: "http", URL: "https://x", TLSTrustedCACerts: []string{"/nonexistent.pem"}},
	} {
		if _, _, err := newBackend(cfg); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestHTTPOptionsSetOption(t *testing.T) {
	o := &HTTPOptions{}
	lines := [][]string{
		{"method", "post"},
		{"token_to", "header", "X-T", "Tok "},
		{"unauthenticated_status", "401", "419"},
		{"user_from", "a.b"},
		{"roles_from", "groups"},
		{"valid_from", "active"},
	}
	for _, l := range lines {
		if err := o.SetOption(l[0], l[1:]); err != nil {
			t.Fatalf("%v: %v", l, err)
		}
	}
	want := &HTTPOptions{Method: "POST", TokenTo: TokenSink{To: "header", Name: "X-T", Prefix: "Tok "},
		UnauthenticatedStatus: []int{401, 419}, Mapping: Mapping{UserFrom: "a.b", RolesFrom: "groups", ValidFrom: "active"}}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got %+v\nwant %+v", o, want)
	}
	for _, bad := range [][]string{{"nope", "x"}, {"user_from"}, {"user_from", "a", "b"}, {"token_to", "carrier", "x"},
		{"unauthenticated_status", "abc"}, {"unauthenticated_status", "99"}, {"token_to"}} {
		if err := o.SetOption(bad[0], bad[1:]); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

// A 401 is a rejection whatever its body; another rejection status counts
// only with the service's own (JSON) answer: a WAF's HTML 403 is a service
// failure, and the error says why it was not taken as a rejection.
// rejected_if makes a body predicate a rejection too.
func TestHTTPBackendRejectionNeedsJSON(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		opts   string
		want   error
		why    string
	}{
		{403, `{"error":"forbidden"}`, `{}`, ErrUnauthenticated, ""},
		{401, `null`, `{}`, ErrUnauthenticated, ""},
		{403, `<html><body>Request blocked</body></html>`, `{}`, ErrUnavailable, "HTML"},
		{401, ``, `{}`, ErrUnauthenticated, ""},
		{401, `Unauthorized`, `{}`, ErrUnauthenticated, ""},
		{401, `<html><body>Sign in</body></html>`, `{}`, ErrUnauthenticated, ""},
		{401, ``, `{"unauthenticated_status":[403]}`, ErrUnauthenticated, ""},
		{403, `Forbidden`, `{}`, ErrUnavailable, "(text)"},
		{403, ``, `{}`, ErrUnavailable, "(empty)"},
		{404, `{"error":"no"}`, `{}`, ErrUnavailable, "not in unauthenticated_status"},
		{200, `{"error":{"code":"expired"},"user":"x"}`, `{"rejected_if":["error.code"]}`, ErrUnauthenticated, ""},
		{200, `{"error":{"code":null},"user":"x"}`, `{"rejected_if":["error.code"]}`, nil, ""},
		{200, `{"status":"expired","user":"x"}`, `{"rejected_if":["status","expired"]}`, ErrUnauthenticated, ""},
		{200, `{"status":"active","user":"x"}`, `{"rejected_if":["status","expired"]}`, nil, ""},
		{404, `{"error":{"code":1}}`, `{"rejected_if":["error.code"]}`, ErrUnauthenticated, ""},
		{503, `{"error":{"code":1}}`, `{"rejected_if":["error.code"]}`, ErrUnavailable, ""},
		{429, `{"error":{"code":1}}`, `{"rejected_if":["error.code"]}`, ErrUnavailable, ""},
	} {
		srv, _, _ := recordingService(t, tt.status, tt.body)
		b, _, err := newBackend(Config{Dialect: "http", URL: srv.URL, Options: optsJSON(t, "http", tt.opts)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Resolve(context.Background(), credential{Value: "tok"})
		if (tt.want == nil && err != nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%d %q %s: err %v, want %v", tt.status, tt.body, tt.opts, err, tt.want)
		}
		if tt.why != "" && (err == nil || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), "not taken as a rejection")) {
			t.Errorf("%d %q: err %v does not say why it is no rejection (%s)", tt.status, tt.body, err, tt.why)
		}
	}
}

// token_to cookie refuses a token a cookie cannot carry as it is, before
// any service call: a ';' would add cookies of the client's choosing.
func TestHTTPBackendCookieRefusesNonOctets(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		_, _ = io.WriteString(w, `{"user":"ann"}`)
	}))
	t.Cleanup(srv.Close)
	b, _, err := newBackend(Config{Dialect: "http", URL: srv.URL, Options: optsJSON(t, "http", `{"token_to":{"to":"cookie","name":"sid"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"zz; impersonate=alice", "zz;x", "a b", `a"b`, "a,b", `a\b`, "a\tb", "a\x7fb", "é"} {
		if _, err := b.Resolve(context.Background(), credential{Value: tok}); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%q: err %v, want unauthenticated", tok, err)
		}
	}
	if calls != 0 {
		t.Errorf("%d service calls for refused tokens", calls)
	}
	if s, err := b.Resolve(context.Background(), credential{Value: "s%3Aab.c-d_e~f!#$&'()*+/:<=>?@[]^`{|}"}); err != nil || s.User != "ann" || calls != 1 {
		t.Errorf("cookie-octet token: %v %v (%d calls)", s, err, calls)
	}
}

// TestHTTPZeroOptions: options a Go user builds without a mapping read
// the normalized shape, like the defaults, instead of naming no user.
func TestHTTPZeroOptions(t *testing.T) {
	srv, _, _ := recordingService(t, 200, `{"user_id":"u-1","user":"ann"}`)
	c, err := New(Config{Dialect: "http", URL: srv.URL, Options: &HTTPOptions{Method: "POST"}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Authorization", "Bearer tok")
	if res, err := c.Authenticate(r); err != nil || res.Session.User != "ann" || res.Session.UserID != "u-1" {
		t.Fatalf("%+v %v", res.Session, err)
	}
}

// roundTripperFunc is a transport that is not an *http.Transport, as a
// Caddy user's is.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The timeout bounds a request whatever its transport, the answer's body
// included, and says so.
func TestServiceTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(200)
			w.Write([]byte(`{"user":`))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	plain := http.DefaultTransport.(*http.Transport).Clone()
	defer plain.CloseIdleConnections()
	for _, c := range []struct {
		name, path string
		transport  http.RoundTripper
		want       string
	}{
		{"no answer", "/hang", nil, "no answer within 100ms"},
		{"no answer, own transport", "/hang", roundTripperFunc(plain.RoundTrip), "no answer within 100ms"},
		{"body cut short", "/slow-body", nil, "answer not read in full within 100ms"},
	} {
		b, _, err := newBackend(Config{Dialect: "http", URL: srv.URL + c.path, Timeout: 100 * time.Millisecond, Transport: c.transport})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Resolve(context.Background(), credential{Value: "tok", Source: TokenSource{From: FromBearer}})
		if !errors.Is(err, ErrUnavailable) || FailureKindOf(err) != FailureTimeout || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (kind %s), want a timeout saying %q", c.name, err, FailureKindOf(err), c.want)
		}
	}
}

// getAll reads each path as gjson's own search does: plain keys in one
// pass (the first of duplicate keys wins, an escaped key is its text),
// other paths by gjson's search, "" reads nothing.
func TestGetAllAsGjson(t *testing.T) {
	doc := gjson.Parse(`{"user":"first","user":"second","us\u0065r_id":"u1","org":{"name":"Acme"},"roles":["a","b"],"n":null,"x-y":1}`)
	paths := []string{"user", "user_id", "org.name", "roles", "n", "missing", "", "user", "x-y", "roles.#", `us\u0065r_id`}
	got := make([]gjson.Result, len(paths))
	getAll(doc, paths, got)
	for i, p := range paths {
		want := gjson.Result{}
		if p != "" {
			want = doc.Get(p)
		}
		if got[i].Raw != want.Raw || got[i].Type != want.Type {
			t.Errorf("path %q: %s (%v), want %s (%v)", p, got[i].Raw, got[i].Type, want.Raw, want.Type)
		}
	}
}

// getAll reads what gjson's own search reads, whatever the answer: plain
// keys in its one pass, other paths by gjson.
func FuzzGetAll(f *testing.F) {
	f.Add([]byte(`{"user":"a","user":"b","roles":["x"],"o":{"k":1}}`), "user", "o.k")
	f.Add([]byte(`{"us\u0065r":1,"n":null}`), "user", "n")
	f.Add([]byte(`[1,2]`), "0", "#")
	f.Fuzz(func(t *testing.T, raw []byte, p1, p2 string) {
		if !gjson.ValidBytes(raw) {
			return
		}
		doc := gjson.ParseBytes(raw)
		paths := []string{p1, p2, "user", "roles", p1}
		got := make([]gjson.Result, len(paths))
		getAll(doc, paths, got)
		for i, p := range paths {
			want := gjson.Result{}
			if p != "" {
				want = doc.Get(p)
			}
			if got[i].Raw != want.Raw || got[i].Type != want.Type {
				t.Fatalf("%s, path %q: %q, want %q", raw, p, got[i].Raw, want.Raw)
			}
		}
	})
}
