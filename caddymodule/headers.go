package caddymodule

import (
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"

	"github.com/sessiongate/caddy-sessiongate/internal/headername"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// DefaultHeaderPrefix starts every default injected header.
const DefaultHeaderPrefix = "X-Session-"

// field indexes the identity values that headers carry.
type field int

const (
	fieldUser field = iota
	fieldUserID
	fieldEmail
	fieldName
	fieldOrg
	fieldOrgID
	fieldRoles
	fieldPerms
	fieldAdmin
	fieldKind
	fieldApp
	fieldAppID
	numFields
)

// defaultSuffixes name the default headers after the prefix.
var defaultSuffixes = [numFields]string{
	fieldUser:   "User",
	fieldUserID: "User-Id",
	fieldEmail:  "Email",
	fieldName:   "Name",
	fieldOrg:    "Org",
	fieldOrgID:  "Org-Id",
	fieldRoles:  "Roles",
	fieldPerms:  "Perms",
	fieldAdmin:  "Admin",
	fieldKind:   "Kind",
	fieldApp:    "App",
	fieldAppID:  "App-Id",
}

// fieldNames are the names header_fields takes, in the order of the
// fields.
var fieldNames = [numFields]string{
	fieldUser:   "user",
	fieldUserID: "user_id",
	fieldEmail:  "email",
	fieldName:   "name",
	fieldOrg:    "org",
	fieldOrgID:  "org_id",
	fieldRoles:  "roles",
	fieldPerms:  "perms",
	fieldAdmin:  "admin",
	fieldKind:   "kind",
	fieldApp:    "app",
	fieldAppID:  "app_id",
}

// headerFields turns header_fields into the fields injected: every one
// when names is empty, none for ["none"].
func headerFields(names []string) ([]field, error) {
	if len(names) == 0 {
		all := make([]field, numFields)
		for f := range all {
			all[f] = field(f)
		}
		return all, nil
	}
	if len(names) == 1 && names[0] == "none" {
		return nil, nil
	}
	var fields []field
	seen := [numFields]bool{}
next:
	for _, n := range names {
		for f, fn := range fieldNames {
			if n == fn {
				if seen[f] {
					return nil, fmt.Errorf("header_fields: %s given twice", n)
				}
				seen[f] = true
				fields = append(fields, field(f))
				continue next
			}
		}
		return nil, fmt.Errorf("header_fields: unknown field %q (want %s, or none alone)", n, strings.Join(fieldNames[:], ", "))
	}
	return fields, nil
}

// presetStripped are the peers' headers that carry no session field, so
// they are never injected, but an upstream that trusts them must never get
// a client's forgery: oauth2-proxy's access token and basic-auth user.
var presetStripped = []string{
	"X-Forwarded-Access-Token",
	"X-Auth-Request-Access-Token",
	"GAP-Auth",
}

type presetHeader struct {
	name  string
	field field
}

// presets are the header conventions of peers whose upstreams people
// already have: oauth2-proxy (pass_user_headers and set_xauthrequest) and
// Authelia.
var presets = map[string][]presetHeader{
	"oauth2-proxy": {
		{"X-Forwarded-User", fieldUser},
		{"X-Forwarded-Email", fieldEmail},
		{"X-Forwarded-Preferred-Username", fieldUser},
		{"X-Forwarded-Groups", fieldRoles},
		{"X-Auth-Request-User", fieldUser},
		{"X-Auth-Request-Email", fieldEmail},
		{"X-Auth-Request-Preferred-Username", fieldUser},
		{"X-Auth-Request-Groups", fieldRoles},
	},
	"authelia": {
		{"Remote-User", fieldUser},
		{"Remote-Groups", fieldRoles},
		{"Remote-Email", fieldEmail},
		{"Remote-Name", fieldName},
	},
}

// presetList is the names of the presets, sorted.
func presetList() []string { return slices.Sorted(maps.Keys(presets)) }

// presetHeaderNames are the names every strip removes: all presets'
// headers, enabled or not, and the preset headers sessiongate never sets.
func presetHeaderNames() []string {
	names := slices.Clone(presetStripped)
	for _, hs := range presets {
		for _, ph := range hs {
			names = append(names, ph.name)
		}
	}
	return names
}

// notInHeaderName are the bytes that end or split a header name.
const notInHeaderName = " \t\r\n:"

// isHeaderName reports whether name can name a header sessiongate sets
// or strips.
func isHeaderName(name string) bool {
	return name != "" && !strings.ContainsAny(name, notInHeaderName)
}

// checkHeaderNames checks a header_prefix ("" for none or the default)
// and the header names configured beside it.
func checkHeaderNames(prefix string, names iter.Seq[string]) error {
	if strings.ContainsAny(prefix, notInHeaderName) {
		return fmt.Errorf("header_prefix %q is not a header name prefix", prefix)
	}
	if r := requestHeaderStartedBy(prefix); prefix != "" && r != "" {
		return fmt.Errorf("header_prefix %q would strip the request's own %s header from every request; choose another prefix", prefix, r)
	}
	for name := range names {
		if !isHeaderName(name) {
			return fmt.Errorf("header %q: not a header name", name)
		}
		if i := slices.IndexFunc(reservedAssertionHeaders, func(r string) bool { return foldName(r) == foldName(name) }); i >= 0 {
			r := reservedAssertionHeaders[i]
			return fmt.Errorf("header %q: the request's own %s header, which would be stripped from every request; choose another name", name, r)
		}
	}
	return nil
}

// requestHeaderStartedBy is the first of reservedAssertionHeaders (the
// request's own cookies, credentials and framing) that starts with
// prefix in any spelling, or "". An identity header of that name, or a
// header_prefix that starts it, would strip it from every request.
func requestHeaderStartedBy(prefix string) string {
	p := foldName(prefix)
	for _, r := range reservedAssertionHeaders {
		if strings.HasPrefix(foldName(r), p) {
			return r
		}
	}
	return ""
}

// identity holds a session's header values, encoded once per session
// rather than on every request, and what the replacer and the request's
// vars need of it, made once too: a cache hit then maps placeholders and
// carries the session without allocating. The values are kept per
// header_encoding (handlers sharing a cache may differ): the encodings a
// handler of this process uses are made when the session enters the
// cache, any other the first time one asks for it.
type identity struct {
	session    *sessionctx.Session
	encs       [numEncodings]atomic.Pointer[encoded]
	assertions assertions // signed for this session, by assertion blocks
}

// encoded is a session's identity in one header_encoding.
type encoded struct {
	vals [numFields]string
	// refused names the fields the encoding could not carry exactly,
	// which are not sent.
	refused      []string
	placeholders caddy.ReplacerFunc
}

// in is the identity in encoding e.
func (id *identity) in(e headerEncoding) *encoded {
	if v := id.encs[e].Load(); v != nil {
		return v
	}
	v := encode(id.session, e)
	if id.encs[e].CompareAndSwap(nil, v) {
		return v
	}
	return id.encs[e].Load()
}

// String is what {http.vars.sessiongate.session} shows: the user, never
// the session service's raw answer.
func (id *identity) String() string { return id.in(encodingRaw).vals[fieldUser] }

// identityOf is the identity prepared with the session res holds: the
// pool's clients prepare every session they cache, so it is made here
// only for a session from elsewhere.
func identityOf(res sessionctx.Result) *identity {
	if id, ok := res.Prepared.(*identity); ok && id.session == res.Session {
		return id
	}
	return newIdentity(res.Session)
}

// prepareIdentity is the clients' Prepare hook.
func prepareIdentity(s *sessionctx.Session) any { return newIdentity(s) }

// encodingsUsed has a bit set for each header_encoding a handler of this
// process was provisioned with (raw, the default, always): newIdentity
// makes those at once. A bit is never cleared: an encoding no handler
// uses any more costs a little work per new session, nothing more.
var encodingsUsed atomic.Uint32

func init() { encodingsUsed.Store(1 << encodingRaw) }

// useEncoding marks e as used by a handler.
func useEncoding(e headerEncoding) { encodingsUsed.Or(1 << e) }

// newIdentity makes a session's identity, with its values in every
// encoding in use.
func newIdentity(s *sessionctx.Session) *identity {
	id := &identity{session: s}
	used := encodingsUsed.Load()
	for e := headerEncoding(0); e < numEncodings; e++ {
		if used&(1<<e) != 0 {
			id.encs[e].Store(encode(s, e))
		}
	}
	return id
}

// encode sets the header values in encoding e. An application's session
// (kind app) names the application in the app fields and leaves the user
// fields empty: an upstream that reads X-Session-User must never take an
// application called alice for the user alice.
func encode(s *sessionctx.Session, e headerEncoding) *encoded {
	enc := &encoded{}
	scalars := [numFields]string{
		fieldKind: kindOf(s), fieldEmail: s.Email, fieldName: s.Name, fieldOrg: s.Org, fieldOrgID: s.OrgID,
	}
	if s.IsApp() {
		scalars[fieldApp], scalars[fieldAppID] = s.User, s.UserID
	} else {
		scalars[fieldUser], scalars[fieldUserID] = s.User, s.UserID
	}
	for f := field(0); f < numFields; f++ {
		var v string
		ok := true
		switch f {
		case fieldRoles:
			v, ok = e.list(s.Roles)
		case fieldPerms:
			v, ok = e.list(s.Perms)
		case fieldAdmin:
			v = strconv.FormatBool(s.Admin)
		default:
			v, ok = e.value(scalars[f])
		}
		if !ok {
			enc.refused = append(enc.refused, fieldNames[f])
			continue
		}
		enc.vals[f] = v
	}
	enc.placeholders = placeholders(s, e)
	return enc
}

// kindOf is the session's kind as headers and placeholders give it: user
// unless the session says otherwise.
func kindOf(s *sessionctx.Session) string {
	if s.Kind == "" {
		return "user"
	}
	return s.Kind
}

// headerFolder recognizes every spelling an upstream could read as one of
// the protected header names: any case, and any byte that is not a letter
// or digit for '-' (CGI, PHP, nginx with underscores_in_headers, and WSGI
// merge '-', '_' and '.' alike).
type headerFolder struct {
	prefixes []string        // folded
	names    map[string]bool // folded
	// first marks the folded first bytes of the prefix and the names, so
	// that most client headers (Accept, Cookie, User-Agent...) are passed
	// over on one byte, without folding or a map lookup.
	first [256]bool
}

func newHeaderFolder(prefix string, names []string) *headerFolder {
	return newHeaderFolderPrefixes([]string{prefix}, names)
}

// newStripFolder is the folder of what a strip removes where handlers
// inject under prefixes and names: those, every preset name, and the
// default prefix always: an app behind a session_auth with its own
// prefix may still read X-Session-* (its docs' default), and no
// client-sent name under it is ever sessiongate's.
func newStripFolder(prefixes, names []string) *headerFolder {
	return newHeaderFolderPrefixes(append([]string{DefaultHeaderPrefix}, prefixes...), append(presetHeaderNames(), names...))
}

// newHeaderFolderPrefixes is newHeaderFolder for several prefixes: the
// union of what several session_auth handlers inject.
func newHeaderFolderPrefixes(prefixes, names []string) *headerFolder {
	f := &headerFolder{names: make(map[string]bool, len(names))}
	for _, p := range prefixes {
		if p = foldName(p); p != "" && !slices.Contains(f.prefixes, p) {
			f.prefixes = append(f.prefixes, p)
			f.first[p[0]] = true
		}
	}
	for _, n := range names {
		n = foldName(n)
		f.names[n] = true
		if n != "" {
			f.first[n[0]] = true
		}
	}
	return f
}

func foldName(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = foldByte(c)
	}
	return string(b)
}

func foldByte(c byte) byte { return headername.Fold(c) }

// protected reports whether a client-sent header name is one the plugin
// owns.
func (f *headerFolder) protected(name string) bool {
	if name != "" && !f.first[foldByte(name[0])] {
		return false
	}
	for _, prefix := range f.prefixes {
		if len(name) < len(prefix) {
			continue
		}
		match := true
		for i := 0; i < len(prefix); i++ {
			if foldByte(name[i]) != prefix[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	var buf [128]byte
	if len(name) > len(buf) {
		return f.names[foldName(name)]
	}
	b := buf[:len(name)]
	for i := 0; i < len(name); i++ {
		b[i] = foldByte(name[i])
	}
	return f.names[string(b)]
}

// strip removes every protected header the client sent, and every
// protected name the client listed in Connection: a proxy deletes the
// headers Connection names as hop-by-hop, so listing one would let a
// client delete the trusted value injected after this.
func (f *headerFolder) strip(h http.Header) {
	for name := range h {
		if f.protected(name) {
			delete(h, name)
		}
	}
	if conn, ok := h["Connection"]; ok {
		if kept, changed := f.stripConnection(conn); changed {
			if len(kept) == 0 {
				delete(h, "Connection")
			} else {
				h["Connection"] = kept
			}
		}
	}
}

// stripConnection drops protected names from Connection values; it
// allocates only when it finds one, as a plain "keep-alive" is common.
func (f *headerFolder) stripConnection(vals []string) ([]string, bool) {
	found := false
	for _, v := range vals {
		for rest := v; rest != "" && !found; {
			var tok string
			tok, rest, _ = strings.Cut(rest, ",")
			found = f.protected(strings.TrimSpace(tok))
		}
	}
	if !found {
		return vals, false
	}
	var kept []string
	for _, v := range vals {
		var toks []string
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !f.protected(tok) {
				toks = append(toks, tok)
			}
		}
		if len(toks) > 0 {
			kept = append(kept, strings.Join(toks, ", "))
		}
	}
	return kept, true
}

// stripRequest strips protected names from the request's headers and
// trailers.
func (f *headerFolder) stripRequest(r *http.Request) {
	f.strip(r.Header)
	if r.Trailer != nil && r.Body != nil {
		// Only trailers announced in a Trailer header reach a proxied
		// request: net/http fills in this very map at the end of the body.
		f.strip(r.Trailer)
		r.Body = &trailerStripper{ReadCloser: r.Body, trailer: r.Trailer, folder: f}
	}
}

// trailerStripper strips protected names from the request trailers once
// the body has been read: net/http fills in the trailers only at the end
// of a chunked body, long after ServeHTTP stripped the headers, and
// reverse_proxy forwards them.
type trailerStripper struct {
	io.ReadCloser
	trailer http.Header
	folder  *headerFolder
}

func (t *trailerStripper) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err != nil {
		t.folder.strip(t.trailer)
	}
	return n, err
}

type customHeader struct {
	name, template string
	keys           []string // the sessiongate placeholders it uses
}

// injectHeaders sets the identity headers. One backing array holds every
// value so the hot path allocates once, not once per header.
func (h *SessionAuth) injectHeaders(hdr http.Header, id *identity, repl *caddy.Replacer) {
	vals := make([]string, h.nvals)
	j := 0
	enc := &id.in(h.encoding).vals
	for f := field(0); f < numFields; f++ {
		if v := enc[f]; v != "" && h.inject[f] != "" {
			vals[j] = v
			hdr[h.inject[f]] = vals[j : j+1 : j+1]
			j++
		}
	}
	for _, ph := range h.extra {
		if v := enc[ph.field]; v != "" {
			vals[j] = v
			hdr[ph.name] = vals[j : j+1 : j+1]
			j++
		}
	}
	for _, c := range h.custom {
		if refusedKeys(id.session, h.encoding, c.keys) {
			// A value the encoding cannot carry is no header of its
			// own, and no hole in another one either.
			continue
		}
		v := c.template
		if repl != nil {
			v = repl.ReplaceAll(v, "")
		}
		if v, ok := h.encoding.template(v); ok && v != "" {
			hdr[c.name] = []string{v}
		}
	}
}
