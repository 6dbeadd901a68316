package sessionctx

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// FuzzExtract feeds arbitrary header, cookie and query input through every
// kind of token source. Whatever a client sends, Extract must not panic,
// must either find a token or say the request is unauthenticated, and a
// token it returns must be one a session service can safely be asked
// about: non-empty, bounded, free of control characters.
func FuzzExtract(f *testing.F) {
	f.Add("Bearer abc", "sid=abc; other=1", "token=abc&x=1", "abc")
	f.Add("bearer   abc  ", `sid="quoted"; sid=second`, "token=%41%42&token=2", "")
	f.Add("Bearer ", "sid=", "token=&token=x", "Token xyz")
	f.Add("Bearer a\x00b", "sid=a\x7fb", "token=%00", "\xff\xfe")
	f.Add(strings.Repeat("Bearer x", 1000), strings.Repeat("sid=x;", 2000), "token=%zz", "Token "+strings.Repeat("y", maxTokenLen+1))
	f.Add("Bearer tok\r\nX-Evil: 1", "=; ;=;sid", "%74oken=abc", "token abc")
	// Found by hand, then kept: url.Values drops a pair with a ';', so
	// Strip once left a token that Extract had read.
	f.Add("", "", "token=abc;x&y=1", "")

	sources := [][]TokenSource{
		{{From: FromBearer}},
		{{From: FromCookie, Name: "sid"}},
		{{From: FromQuery, Name: "token"}},
		{TokenSource{From: FromHeader, Name: "x-api-token", Prefix: "Token "}.Canonical()},
		{
			TokenSource{From: FromHeader, Name: "x-api-token", Prefix: "Token "}.Canonical(),
			{From: FromCookie, Name: "sid"},
			{From: FromBearer},
			{From: FromQuery, Name: "token"},
		},
	}
	f.Fuzz(func(t *testing.T, auth, cookie, rawQuery, custom string) {
		r := &http.Request{
			Header: http.Header{
				"Authorization": {auth},
				"Cookie":        {cookie, auth},
				"X-Api-Token":   {custom, auth},
			},
			URL: &url.URL{Path: "/", RawQuery: rawQuery},
		}
		for _, srcs := range sources {
			cred, err := extractToken(r, srcs)
			if err != nil {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("Extract(%v) error %v does not wrap ErrUnauthenticated", srcs, err)
				}
				if cred.Value != "" {
					t.Fatalf("Extract(%v) returned token %q with error %v", srcs, cred.Value, err)
				}
				// A malformed token names its source, and Strip must be
				// able to take it out all the same.
				if cred.Source.From != "" {
					stripped := r.Clone(r.Context())
					cred.Source.Strip(stripped)
					if v, ok := lookup(stripped, cred.Source); ok && v != "" {
						t.Fatalf("after Strip of %v the malformed token is still there: %q", cred.Source, v)
					}
				}
				continue
			}
			v := cred.Value
			if v == "" {
				t.Fatalf("Extract(%v) returned an empty token without an error", srcs)
			}
			if len(v) > maxTokenLen {
				t.Fatalf("Extract(%v) returned a %d-byte token, max %d", srcs, len(v), maxTokenLen)
			}
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < 0x20 || c == 0x7f {
					t.Fatalf("Extract(%v) returned a token with control byte %#x: %q", srcs, c, v)
				}
			}
			found := false
			for _, s := range srcs {
				if s == cred.Source {
					found = true
				}
			}
			if !found {
				t.Fatalf("Extract(%v) names source %v, which is not configured", srcs, cred.Source)
			}
			// Stripping the source that carried the token must not panic
			// and must leave no token there to be found again.
			stripped := r.Clone(r.Context())
			cred.Source.Strip(stripped)
			if again, err := extractToken(stripped, []TokenSource{cred.Source}); err == nil {
				t.Fatalf("after Strip of %v the request still carries token %q", cred.Source, again.Value)
			}
		}
	})
}

// FuzzTR50Envelope: whatever envelope a client POSTs, the session id
// sessionctx resolves is the one every JSON parser reads. When the
// envelope reader names a session, Go's encoding/json (last key, any
// case, Unicode folding: the emulator's and many apps' parser) and GJSON
// (first key, exact case) read that same session, or none at all; when
// they would read different ones, the reader refuses the envelope.
func FuzzTR50Envelope(f *testing.F) {
	f.Add(`{"auth":{"sessionId":"A"},"1":{"command":"session.info"}}`)
	f.Add(`{"auth":{"sessionId":"A","sessionId":"B"}}`)
	f.Add(`{"auth":{"sessionId":"A","SessionID":"B"}}`)
	f.Add(`{"auth":{"sessionId":"A","ſessionId":"B"}}`)
	f.Add(`{"auth":{"sessionId":"A","session\u0049d":"B"}}`)
	f.Add(`{"auth":{"sessionId":"A"},"AUTH":{"sessionId":"B"}}`)
	f.Add(`{"auth":{"SESSIONID":"A"}}`)
	f.Add(`{"auth":{"sessionId":7}}`)
	f.Add(`{"auth":{"sessionId":"\ud800x"}}`)
	f.Add("{\"auth\":{\"sessionId\":\"a\xffb\"}}")
	f.Fuzz(func(t *testing.T, body string) {
		id, found, err := tr50EnvelopeSessionID([]byte(body))
		if err != nil || !found {
			return
		}
		var env struct {
			Auth struct {
				SessionID string `json:"sessionId"`
			} `json:"auth"`
		}
		if json.Unmarshal([]byte(body), &env) == nil && env.Auth.SessionID != id {
			t.Fatalf("read %q, Go's encoding/json reads %q", id, env.Auth.SessionID)
		}
		if v := gjson.Get(body, "auth.sessionId"); v.Type == gjson.String && v.Str != id {
			t.Fatalf("read %q, GJSON reads %q", id, v.Str)
		}
	})
}
