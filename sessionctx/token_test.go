package sessionctx

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	cookie := TokenSource{From: FromCookie, Name: "connect.sid"}
	bearerSrc := TokenSource{From: FromBearer}
	hdr := TokenSource{From: FromHeader, Name: "Sessionid"}
	prefixed := TokenSource{From: FromHeader, Name: "Authorization", Prefix: "Token "}
	query := TokenSource{From: FromQuery, Name: "sid"}

	tests := []struct {
		name    string
		sources []TokenSource
		target  string
		header  http.Header
		want    string
		wantSrc string
		wantErr bool
	}{
		{name: "cookie kept byte for byte", sources: []TokenSource{cookie},
			header: http.Header{"Cookie": {"a=1; connect.sid=s%3Aabc.def; b=2"}}, want: "s%3Aabc.def", wantSrc: FromCookie},
		{name: "quoted cookie", sources: []TokenSource{cookie},
			header: http.Header{"Cookie": {`connect.sid="xyz"`}}, want: "xyz", wantSrc: FromCookie},
		{name: "first of two cookies with one name", sources: []TokenSource{cookie},
			header: http.Header{"Cookie": {"connect.sid=first", "connect.sid=second"}}, want: "first", wantSrc: FromCookie},
		{name: "cookie name must match whole", sources: []TokenSource{cookie},
			header: http.Header{"Cookie": {"xconnect.sid=no; connect.sidx=no"}}, wantErr: true},
		{name: "bearer", sources: []TokenSource{bearerSrc},
			header: http.Header{"Authorization": {"Bearer abc"}}, want: "abc", wantSrc: FromBearer},
		{name: "bearer scheme case-insensitive", sources: []TokenSource{bearerSrc},
			header: http.Header{"Authorization": {"bearer abc"}}, want: "abc", wantSrc: FromBearer},
		{name: "basic is not bearer", sources: []TokenSource{bearerSrc},
			header: http.Header{"Authorization": {"Basic abc"}}, wantErr: true},
		{name: "empty bearer", sources: []TokenSource{bearerSrc},
			header: http.Header{"Authorization": {"Bearer    "}}, wantErr: true},
		{name: "plain header", sources: []TokenSource{hdr},
			header: http.Header{"Sessionid": {"  s-1 "}}, want: "s-1", wantSrc: FromHeader},
		{name: "header with prefix", sources: []TokenSource{prefixed},
			header: http.Header{"Authorization": {"Token t-9"}}, want: "t-9", wantSrc: FromHeader},
		{name: "query", sources: []TokenSource{query}, target: "/?a=1&sid=q%2B1", want: "q+1", wantSrc: FromQuery},
		{name: "query empty value", sources: []TokenSource{query}, target: "/?sid=", wantErr: true},
		{name: "order decides: cookie before bearer", sources: []TokenSource{cookie, bearerSrc},
			header: http.Header{"Cookie": {"connect.sid=c"}, "Authorization": {"Bearer b"}}, want: "c", wantSrc: FromCookie},
		{name: "falls through to the next source", sources: []TokenSource{cookie, bearerSrc},
			header: http.Header{"Authorization": {"Bearer b"}}, want: "b", wantSrc: FromBearer},
		{name: "nothing", sources: []TokenSource{cookie, bearerSrc, query}, wantErr: true},
		{name: "too long", sources: []TokenSource{bearerSrc},
			header: http.Header{"Authorization": {"Bearer " + strings.Repeat("x", maxTokenLen+1)}}, wantErr: true},
		{name: "control character", sources: []TokenSource{hdr},
			header: http.Header{"Sessionid": {"a\x00b"}}, wantErr: true},
		{name: "malformed does not fall through", sources: []TokenSource{hdr, bearerSrc},
			header: http.Header{"Sessionid": {"a\x7fb"}, "Authorization": {"Bearer good"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target == "" {
				target = "/"
			}
			r := httptest.NewRequest("GET", target, nil)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			got, err := extractToken(r, tt.sources)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("error %v does not wrap ErrUnauthenticated", err)
				}
				if strings.Contains(err.Error(), "good") {
					t.Fatalf("error %q repeats a token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Value != tt.want || got.Source.From != tt.wantSrc {
				t.Fatalf("got %q from %s, want %q from %s", got.Value, got.Source.From, tt.want, tt.wantSrc)
			}
		})
	}
}

func TestStrip(t *testing.T) {
	r := httptest.NewRequest("GET", "/p?a=1&sid=secret&b=2", nil)
	r.Header.Set("Cookie", "a=1; sid=secret; b=2")
	r.Header.Add("Cookie", "sid=again")
	r.Header.Set("Authorization", "Bearer secret")
	r.Header.Set("Sessionid", "secret")

	TokenSource{From: FromCookie, Name: "sid"}.Strip(r)
	TokenSource{From: FromQuery, Name: "sid"}.Strip(r)
	TokenSource{From: FromBearer}.Strip(r)
	TokenSource{From: FromHeader, Name: "Sessionid"}.Strip(r)

	if got := r.Header.Values("Cookie"); len(got) != 1 || got[0] != "a=1; b=2" {
		t.Errorf("cookies after strip: %q", got)
	}
	if r.URL.RawQuery != "a=1&b=2" || strings.Contains(r.RequestURI, "secret") {
		t.Errorf("query after strip: %q, RequestURI %q", r.URL.RawQuery, r.RequestURI)
	}
	if r.Header.Get("Authorization") != "" || r.Header.Get("Sessionid") != "" {
		t.Errorf("headers after strip: %v", r.Header)
	}

	// The spellings an upstream reads as the same variable go too; other
	// headers stay.
	spelled := httptest.NewRequest("GET", "/", nil)
	spelled.Header["Vmware-Api-Session-Id"] = []string{"secret"}
	spelled.Header["Vmware_api_session_id"] = []string{"secret2"}
	spelled.Header["vmware_API-session_ID"] = []string{"secret3"}
	spelled.Header["Vmware-Api-Session"] = []string{"kept"}
	TokenSource{From: FromHeader, Name: "vmware-api-session-id"}.Strip(spelled)
	if len(spelled.Header) != 1 || spelled.Header.Get("Vmware-Api-Session") != "kept" {
		t.Errorf("headers after strip: %v", spelled.Header)
	}

	only := httptest.NewRequest("GET", "/", nil)
	only.Header.Set("Cookie", "sid=secret")
	TokenSource{From: FromCookie, Name: "sid"}.Strip(only)
	if _, ok := only.Header["Cookie"]; ok {
		t.Errorf("an emptied Cookie header should be removed, got %q", only.Header["Cookie"])
	}
}

func TestTokenSourceValidate(t *testing.T) {
	good := []TokenSource{{From: FromBearer}, {From: FromCookie, Name: "c"}, {From: FromHeader, Name: "h", Prefix: "X "}, {From: FromQuery, Name: "q"}}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
	bad := []TokenSource{{From: "body"}, {From: FromCookie}, {From: FromBearer, Name: "x"}, {From: FromQuery, Name: "q", Prefix: "p"}}
	for _, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: want an error", s)
		}
	}
	if got := (TokenSource{From: FromHeader, Name: "sessionid"}).Canonical().Name; got != "Sessionid" {
		t.Errorf("Canonical: %q", got)
	}
}

// TestExtractHeaderSpellings: a token header is read in every spelling an
// upstream would take for its name, the configured one first, the others
// in a fixed order.
func TestExtractHeaderSpellings(t *testing.T) {
	src := TokenSource{From: FromHeader, Name: "vmware-api-session-id"}.Canonical()
	for _, tc := range []struct {
		header http.Header
		want   string
	}{
		{http.Header{"vmware_api_session_id": {"a"}}, "a"},
		{http.Header{"Vmware.Api.Session.Id": {"b"}}, "b"},
		{http.Header{"Vmware-Api-Session-Id": {"exact"}, "vmware_api_session_id": {"other"}}, "exact"},
		{http.Header{"vmware_api_session_id": {"z"}, "VMWARE_API_SESSION_ID": {"y"}}, "y"},
		{http.Header{"vmware_api_session_idx": {"no"}}, ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header = tc.header
		cred, err := extractToken(r, []TokenSource{src})
		if cred.Value != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("%v: got %q, %v; want %q", tc.header, cred.Value, err, tc.want)
		}
	}
}
