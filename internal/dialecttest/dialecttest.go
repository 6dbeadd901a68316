// Package dialecttest is the conformance table of sessiongate's dialects:
// one Case per dialect, each in the file named after it, that every
// cross-dialect test ranges over (sessionctx, caddymodule, integration,
// docs). A test finds the dialects in the sessionctx registry and asks
// this table how to exercise each; a dialect registered without a Case
// fails those tests by name, instead of being left out.
//
// Like internal/emulator, the package does not import sessionctx: it is
// what the tests hold against the dialects, not a copy of them. Where a
// test needs what a dialect declares (its default token sources), it
// reads sessionctx and uses Carry to put a token there.
package dialecttest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Case is what the cross-dialect tests need to know of one dialect
// beyond what the sessionctx registry says.
type Case struct {
	// Dialect is the name the dialect registers under.
	Dialect string
	// Sources are where the dialect reads a token when none are
	// configured, in order, then where it reads one in the request body
	// whatever is configured (From "body"): what the dialect declares,
	// which sessionctx's tests hold its registration to.
	Sources []Source
	// NewService starts a model of the product's session service that
	// knows one live session.
	NewService func() *Service
	// InfoReads are the requests the product's own clients send to read
	// their session (what session_info <dialect> answers, and what a
	// session_auth with no session answers in the product's shape),
	// each with the product's answer when there is no session.
	InfoReads []InfoRead
	// ProductReads is set when the InfoReads are the product's own
	// session reads, on its own paths, which a session_auth with no
	// session answers in the product's shape (every dialect but http).
	ProductReads bool
	// InfoPasses are requests to the product's paths that are not
	// session reads (a login, a logout, another API call): session_info
	// hands them to the next handler.
	InfoPasses []Request
	// InfoReadsBody is set when telling a session read from another
	// request takes the body (TR50's command envelope).
	InfoReadsBody bool
	// DocsSnippet is what the JSON adapted from the dialect's Caddyfile
	// snippet in docs/dialects.md must contain besides its dialect (its
	// option block); empty when the snippet has none.
	DocsSnippet string
}

// Source is a place a token is read from, as sessionctx.TokenSource
// (from: cookie, header, bearer, query or body; name: the cookie,
// header or query parameter, or the body's dotted JSON path).
type Source struct {
	From, Name string
}

func (s Source) String() string { return strings.TrimSpace(s.From + " " + s.Name) }

// Service is a running model of a session service with one live session.
type Service struct {
	Handler http.Handler
	// Token is the live session's token: what a client sends in any
	// token source, and what the admin purge takes.
	Token string
	// Parts are the request headers that carry the rest of the
	// credential (ETERNUS: the session id), sent with the token.
	Parts http.Header
	// Unknown is a token the service rejects.
	Unknown string
	// Revoke makes the service forget the live session, as a logout on
	// the product itself does; only the cache can then still let it in.
	Revoke func()
	// Calls counts the requests the service received.
	Calls func() int64
}

// Request is a request of a product's client, on the product's paths.
type Request struct {
	Method, Target, Body string
}

// InfoRead is a product's session read and what the product answers it
// without a session: the status and a top-level key of its JSON body.
type InfoRead struct {
	Request
	Status int
	Key    string
}

var (
	mu    sync.Mutex
	cases = map[string]Case{}
)

// Cases returns every case, sorted by dialect. sessionctx's tests hold
// them to its registry (one case per registered dialect, and the token
// sources it declares); tests outside sessionctx range over them.
func Cases() []Case {
	mu.Lock()
	defer mu.Unlock()
	return slices.SortedFunc(maps.Values(cases), func(a, b Case) int { return strings.Compare(a.Dialect, b.Dialect) })
}

// Register adds the case of a dialect; it panics on a second case for
// the same dialect. Each dialect's file registers its own from init, and
// a test that registers a dialect of its own registers its case too.
func Register(c Case) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := cases[c.Dialect]; dup || c.Dialect == "" || c.NewService == nil {
		panic("dialecttest: bad or duplicate case: " + c.Dialect)
	}
	cases[c.Dialect] = c
}

// Lookup returns the case of dialect.
func Lookup(dialect string) (Case, bool) {
	mu.Lock()
	defer mu.Unlock()
	c, ok := cases[dialect]
	return c, ok
}

// Names returns the dialects that have a case, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	return slices.Sorted(maps.Keys(cases))
}

// For returns the case of every dialect in dialects (the registry's
// list), in that order. A dialect without a case, or a case without a
// dialect, is an error that names it and says where the case goes.
func For(dialects []string) ([]Case, error) {
	mu.Lock()
	defer mu.Unlock()
	var out []Case
	var errs []string
	for _, d := range dialects {
		c, ok := cases[d]
		if !ok {
			errs = append(errs, fmt.Sprintf("dialect %s has no conformance case (internal/dialecttest/%s.go)", d, d))
			continue
		}
		out = append(out, c)
	}
	for _, d := range slices.Sorted(maps.Keys(cases)) {
		if !slices.Contains(dialects, d) {
			errs = append(errs, fmt.Sprintf("conformance case %s names no registered dialect", d))
		}
	}
	if errs != nil {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

// Carry returns a request for target that carries token in src (a body
// source: a JSON object POSTed with the token at its dotted path), with
// parts added.
func Carry(target string, src Source, token string, parts http.Header) (*http.Request, error) {
	from, name := src.From, src.Name
	method, body := http.MethodGet, ""
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	switch from {
	case "cookie":
		h.Set("Cookie", name+"="+token)
	case "header":
		h.Set(name, token)
	case "bearer":
		h.Set("Authorization", "Bearer "+token)
	case "query":
		q := u.Query()
		q.Set(name, token)
		u.RawQuery = q.Encode()
	case "body":
		method, body = http.MethodPost, BodyAt(name, token)
		h.Set("Content-Type", "application/json")
	default:
		return nil, fmt.Errorf("dialecttest: no way to carry a token in %q", from)
	}
	r, err := http.NewRequest(method, u.String(), strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body == "" {
		r.Body, r.ContentLength = http.NoBody, 0
	}
	for k, v := range h {
		r.Header[k] = v
	}
	for k, v := range parts {
		r.Header[k] = append([]string(nil), v...)
	}
	return r, nil
}

// BodyAt is a JSON object holding value at the dotted path:
// BodyAt("auth.sessionId", "x") is {"auth":{"sessionId":"x"}}.
func BodyAt(path, value string) string {
	var v any = value
	keys := strings.Split(path, ".")
	for i := len(keys) - 1; i >= 0; i-- {
		v = map[string]any{keys[i]: v}
	}
	b, _ := json.Marshal(v)
	return string(b)
}
