package sessionctx

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiongate/caddy-sessiongate/internal/dialecttest"
)

// conformanceCases is the conformance table for every registered
// dialect, in the registry's order: the one list the cross-dialect tests
// of this package range over.
func conformanceCases(t testing.TB) []dialecttest.Case {
	t.Helper()
	cases, err := dialecttest.For(dialectNames())
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

// TestConformanceTableCoversRegistry: every registered dialect has its
// conformance case, and every case a dialect.
func TestConformanceTableCoversRegistry(t *testing.T) {
	if got := conformanceCases(t); len(got) == 0 {
		t.Fatal("no dialect registered")
	}
	// A dialect registered without its case is named, with the file
	// its case goes in.
	if _, err := dialecttest.For(append(dialectNames(), "seventh")); err == nil || !strings.Contains(err.Error(), "internal/dialecttest/seventh.go") {
		t.Errorf("a dialect without a conformance case: %v", err)
	}
	var names []string
	for _, c := range dialecttest.Cases() {
		names = append(names, c.Dialect)
	}
	if !slices.Equal(names, dialectNames()) {
		t.Errorf("conformance cases %v, registry %v", names, dialectNames())
	}
}

// TestDialectTokensDeclared: each dialect declares the token sources
// its conformance case expects, and a client with no tokens configured
// reads those, body sources apart (no configuration may name them).
func TestDialectTokensDeclared(t *testing.T) {
	for _, c := range conformanceCases(t) {
		d := dialects[c.Dialect]
		var declared []dialecttest.Source
		for _, src := range d.declaredTokens() {
			declared = append(declared, dialecttest.Source{From: src.From, Name: src.Name})
		}
		if !slices.Equal(declared, c.Sources) {
			t.Errorf("%s declares token sources %v, its conformance case %v", c.Dialect, declared, c.Sources)
		}
		cl, err := New(Config{Dialect: c.Dialect, URL: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		var configurable []TokenSource
		for _, src := range d.declaredTokens() {
			if src.From == fromBody {
				if src.Validate() == nil {
					t.Errorf("%s: body source %v passes as a configurable one", c.Dialect, src)
				}
				continue
			}
			configurable = append(configurable, src.Canonical())
		}
		if got := cl.Tokens(); !slices.Equal(got, configurable) {
			t.Errorf("%s: client reads %v, dialect declares %v", c.Dialect, got, configurable)
		}
	}
}

// TestPurgeReachesEverySource: for every dialect, a token read through
// any source the dialect declares (TR50's envelope body included) is one
// cache entry, and a purge of the token by itself ends it in all of them:
// with the session revoked at the service, each source is refused.
func TestPurgeReachesEverySource(t *testing.T) {
	for _, c := range conformanceCases(t) {
		t.Run(c.Dialect, func(t *testing.T) {
			svc := c.NewService()
			srv := httptest.NewServer(svc.Handler)
			t.Cleanup(srv.Close)
			cl, err := New(Config{Dialect: c.Dialect, URL: srv.URL, Cache: CacheConfig{TTL: time.Hour, RefreshAhead: -1}})
			if err != nil {
				t.Fatal(err)
			}
			srcs := c.Sources
			auth := func(src dialecttest.Source, token string) (Result, error) {
				t.Helper()
				r, err := dialecttest.Carry("http://app.test/x", src, token, svc.Parts)
				if err != nil {
					t.Fatal(err)
				}
				return cl.Authenticate(r)
			}
			for _, src := range srcs {
				if res, err := auth(src, svc.Token); err != nil || res.Session == nil {
					t.Fatalf("live token in %s: %v", src, err)
				}
				if _, err := auth(src, svc.Unknown); !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("unknown token in %s: %v, want a rejection", src, err)
				}
			}
			if calls := svc.Calls(); calls != 2 {
				t.Errorf("a live and an unknown token, each in %d sources: %d service calls, want 2 (one entry per token)", len(srcs), calls)
			}
			svc.Revoke()
			if n := cl.ForgetToken(svc.Token); n < 1 {
				t.Fatalf("ForgetToken purged %d entries, want the token's", n)
			}
			for _, src := range srcs {
				if _, err := auth(src, svc.Token); !errors.Is(err, ErrUnauthenticated) {
					t.Errorf("after the purge, the token in %s: %v, want a rejection", src, err)
				}
			}
		})
	}
}

// conformanceInfoRequest is the InfoRequest of a product client's request.
func conformanceInfoRequest(t *testing.T, r dialecttest.Request) InfoRequest {
	t.Helper()
	u, err := url.Parse(r.Target)
	if err != nil {
		t.Fatal(err)
	}
	return InfoRequest{Method: r.Method, Path: u.Path, Query: u.Query(), Body: []byte(r.Body), Now: renderNow}
}

// TestInfoShapeConformance: every dialect's session reads are answered
// in its shape (without a session: the product's own answer), every
// other request to its paths is passed on, and only the shapes that say
// so read the body.
func TestInfoShapeConformance(t *testing.T) {
	for _, c := range conformanceCases(t) {
		sh := infoShapeOf(t, c.Dialect)
		if got := sh.ReadsBody(); got != c.InfoReadsBody {
			t.Errorf("%s: ReadsBody() = %v, want %v", c.Dialect, got, c.InfoReadsBody)
		}
		if len(c.InfoReads) == 0 {
			t.Errorf("%s: no session read in its conformance case", c.Dialect)
		}
		for _, read := range c.InfoReads {
			req := conformanceInfoRequest(t, read.Request)
			if !sh.Handles(req) {
				t.Errorf("%s %s %s: not handled", c.Dialect, read.Method, read.Target)
			}
			if got := sh.IsProductRead(req); got != c.ProductReads {
				t.Errorf("%s %s %s: product session read %v, want %v", c.Dialect, read.Method, read.Target, got, c.ProductReads)
			}
			for _, s := range []*Session{nil, infoSession()} {
				a := sh.Render(s, req)
				var m map[string]any
				if err := json.Unmarshal(a.Body, &m); err != nil {
					t.Errorf("%s %s %s: %v %s", c.Dialect, read.Method, read.Target, err, a.Body)
					continue
				}
				if s == nil && (a.Status != read.Status || !hasKey(m, read.Key)) {
					t.Errorf("%s %s %s without a session: %d %s, want %d with %q", c.Dialect, read.Method, read.Target, a.Status, a.Body, read.Status, read.Key)
				}
				if s != nil && a.Status >= 500 {
					t.Errorf("%s %s %s with a session: %d %s", c.Dialect, read.Method, read.Target, a.Status, a.Body)
				}
			}
		}
		for _, pass := range c.InfoPasses {
			if sh.Handles(conformanceInfoRequest(t, pass)) {
				t.Errorf("%s %s %s: answered, want it passed on", c.Dialect, pass.Method, pass.Target)
			}
		}
	}
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}
