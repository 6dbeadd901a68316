package sessionctx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// InfoRequest is what a session_info client sent, as far as the shape of
// the answer depends on it: vSphere wraps answers under /rest/, TR50
// mirrors the command key of the body, ETERNUS filters by ?fields=.
type InfoRequest struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
	// Now is when the answer is rendered; remaining lifetimes (ETERNUS
	// lifetime, TR50 ttl) count from it. Zero means time.Now().
	Now time.Time
	// Rejection, for a request without a session, is why its token was
	// refused (Client.Authenticate's error). A product that answers some
	// rejections its own way gets that answer rendered in place of "no
	// session": Amplify's 400 with internalCode 232 for a session that
	// awaits device authorization, on which its SDK asks for it.
	Rejection error
}

// InfoAnswer is a rendered session_info answer: always JSON.
type InfoAnswer struct {
	Status int
	Body   []byte
}

// normalizedShape is the shape name of sessiongate's own session JSON,
// the default of session_info. It is the one shape that is no dialect.
const normalizedShape = "normalized"

// infoShape is a product's own session API as session_info answers it.
type infoShape struct {
	// render renders s in the product's shape; s nil means the request
	// has no session and gets the product's unauthenticated answer.
	render func(s *Session, req InfoRequest) InfoAnswer
	// handles reports whether req is one the product's clients send to
	// read their session; nil: every request is. Other requests to the
	// same paths (vSphere login and logout, ETERNUS DELETE) belong to the
	// product itself, and session_info passes them on.
	handles func(req InfoRequest) bool
	// productRead reports whether req, which handles accepted, is the
	// product's own session read on its own path; nil: none is.
	productRead func(req InfoRequest) bool
	// readsBody is set when handles looks at a POST's body (TR50's
	// command envelope).
	readsBody bool
}

var normalizedInfo = infoShape{render: renderNormalizedInfo}

func lookupShape(name string) (infoShape, bool) {
	if name == "" || name == normalizedShape {
		return normalizedInfo, true
	}
	if d, ok := dialects[name]; ok {
		return d.info, true
	}
	return infoShape{}, false
}

// InfoShapes lists the shapes RenderInfo knows, sorted: every dialect's,
// and "normalized", sessiongate's own.
func InfoShapes() []string {
	return slices.Sorted(slices.Values(append(dialectNames(), normalizedShape)))
}

// RenderInfo renders s (nil: no session) the way the session service of
// dialect shape would answer its own clients, so a front end written for
// that product keeps working behind sessiongate. A session that came from
// the same dialect is rendered from its raw answer, faithfully; one from
// another dialect is translated from the normalized fields. An empty shape
// is the normalized one.
func RenderInfo(shape string, s *Session, req InfoRequest) (InfoAnswer, error) {
	sh, ok := lookupShape(shape)
	if !ok {
		return InfoAnswer{}, fmt.Errorf("unknown session_info shape %q (known: %s)", shape, strings.Join(InfoShapes(), ", "))
	}
	if req.Now.IsZero() {
		req.Now = time.Now()
	}
	if s == nil {
		if answer, ok := rejectionAnswer(shape, req.Rejection); ok {
			return answer, nil
		}
	}
	return sh.render(s, req), nil
}

// InfoHandles reports whether req is one that shape's clients send to
// read their session. Other requests to the same paths (vSphere login
// and logout, ETERNUS DELETE) belong to the product itself: session_info
// passes them on. sessiongate's own shapes (normalized, http) read the
// session whatever the method.
func InfoHandles(shape string, req InfoRequest) bool {
	sh, ok := lookupShape(shape)
	return ok && (sh.handles == nil || sh.handles(req))
}

// IsProductSessionRead reports whether req is the product's own request
// for the session, on the product's own path (vSphere /api/session and
// the legacy /rest/com/vmware/cis/session, ETERNUS /api/v1/session/<id>,
// Trifacta /v2/session, Amplify findSession, a TR50 session.info). A
// session_auth with no session for it answers in the product's shape.
func IsProductSessionRead(shape string, req InfoRequest) bool {
	sh, ok := lookupShape(shape)
	return ok && sh.productRead != nil && InfoHandles(shape, req) && sh.productRead(req)
}

// InfoReadsBody reports whether shape tells its session reads by the body
// of a POST (TR50's command envelope), so that InfoRequest.Body must be
// filled for InfoHandles to decide; the other shapes decide by method,
// path and query alone.
func InfoReadsBody(shape string) bool {
	sh, ok := lookupShape(shape)
	return ok && sh.readsBody
}

// isRead is a GET or HEAD: how most products' clients read a session.
func isRead(req InfoRequest) bool { return req.Method == "GET" || req.Method == "HEAD" }

func renderNormalizedInfo(s *Session, _ InfoRequest) InfoAnswer {
	if s == nil {
		return infoJSON(401, map[string]any{"error": "unauthenticated"})
	}
	return infoJSON(200, s)
}

// renderHTTPInfo answers what an http-dialect service answered, or the
// normalized JSON (which is what the http dialect reads by default).
func renderHTTPInfo(s *Session, req InfoRequest) InfoAnswer {
	raw, ok := infoRawObject(s, "http")
	if !ok && s != nil && s.Dialect == "" {
		// Mapping.Decode keeps the answer without naming a dialect:
		// that is the http dialect's own.
		raw, ok = infoRawObject(&Session{Dialect: "http", Raw: s.Raw}, "http")
	}
	if ok {
		return InfoAnswer{Status: 200, Body: raw}
	}
	return renderNormalizedInfo(s, req)
}

// infoRawObject returns the service's own session object when s came from
// dialect and kept a JSON object.
func infoRawObject(s *Session, dialect string) (json.RawMessage, bool) {
	if s == nil || s.Dialect != dialect {
		return nil, false
	}
	raw := bytes.TrimSpace(s.Raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil, false
	}
	return json.RawMessage(raw), true
}

// infoRawFields decodes the raw session object into its fields, numbers kept
// as written.
func infoRawFields(raw json.RawMessage) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

func infoJSON(status int, v any) InfoAnswer {
	body, err := json.Marshal(v)
	if err != nil {
		// Every value rendered here is built from strings, numbers and
		// raw JSON that was checked valid; this cannot happen.
		return InfoAnswer{Status: 500, Body: []byte(`{"error":"rendering failed"}`)}
	}
	return InfoAnswer{Status: status, Body: body}
}

// infoNumberOrString renders an identifier as a JSON number when it is a
// decimal integer (ETERNUS session ids, Trifacta person ids), else as a
// string, so a translated id keeps the type clients expect when it can.
func infoNumberOrString(id string) any {
	if id == "" {
		return nil
	}
	if _, err := strconv.ParseInt(id, 10, 64); err == nil && infoIsJSONInteger(id) {
		return json.Number(id)
	}
	return id
}

// infoIsJSONInteger reports whether id is written the way JSON writes an
// integer: an optional minus, then 0 or digits without a leading zero.
// strconv accepts more ("+1", "-012"), which json.Marshal refuses.
func infoIsJSONInteger(id string) bool {
	digits := strings.TrimPrefix(id, "-")
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

// infoMillisLayout is the timestamp format vSphere and TR50 answer with.
const infoMillisLayout = "2006-01-02T15:04:05.000Z07:00"

func infoMillis(t time.Time) string {
	return t.UTC().Format(infoMillisLayout)
}

// infoSecondsLeft is how long s has left at now, in whole seconds, never
// negative; ok is false when the session says nothing of its expiry.
func infoSecondsLeft(s *Session, now time.Time) (int64, bool) {
	if s.ExpiresAt.IsZero() {
		return 0, false
	}
	left := int64(s.ExpiresAt.Sub(now) / time.Second)
	return max(left, 0), true
}

// infoSplitName splits a display name into first and last names at the first
// space, for shapes that keep them apart.
func infoSplitName(name string) (first, last string) {
	first, last, _ = strings.Cut(strings.TrimSpace(name), " ")
	return first, strings.TrimSpace(last)
}
