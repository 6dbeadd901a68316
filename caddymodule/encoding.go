package caddymodule

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// headerEncoding is how identity values are written into the injected
// headers and the {session.*} placeholders. Whatever the encoding, two
// different values never reach the app as one: a value that an encoding
// cannot carry exactly is refused (the field is not sent), never altered.
type headerEncoding int

const (
	// encodingRaw sends valid UTF-8 as it is: what users typed reaches
	// the app unchanged. It refuses what a header cannot carry exactly:
	// control characters (C0, DEL, C1), invalid UTF-8, and white space
	// at either end, which HTTP parsers and apps trim away.
	encodingRaw headerEncoding = iota
	// encodingPercent percent-encodes every byte outside printable ASCII,
	// '%' and '+' themselves, spaces at either end, and a comma inside a
	// list element, so that url.PathUnescape or decodeURIComponent (or
	// even a form decoder, as no '+' is left) gives back the exact value.
	encodingPercent
	// encodingRFC2047 sends values that need it as RFC 2047 encoded-words
	// (=?UTF-8?B?...?=), for mime.WordDecoder.DecodeHeader or Python's
	// email.header; plain ASCII goes as it is. Invalid UTF-8 is refused.
	encodingRFC2047
	numEncodings
)

// encodingNames are the names header_encoding takes, the default first.
var encodingNames = [numEncodings]string{
	encodingRaw:     "raw",
	encodingPercent: "percent",
	encodingRFC2047: "rfc2047",
}

func parseHeaderEncoding(name string) (headerEncoding, error) {
	if name == "" {
		return encodingRaw, nil
	}
	for e, n := range encodingNames {
		if n == name {
			return headerEncoding(e), nil
		}
	}
	return 0, fmt.Errorf("header_encoding %q: want %s", name, strings.Join(encodingNames[:], ", "))
}

// value is v as sent under e; ok is false, and the value "", when e
// cannot carry v exactly and the field must not be sent.
func (e headerEncoding) value(v string) (string, bool) {
	switch e {
	case encodingPercent:
		return percentEncode(v, true, false), true
	case encodingRFC2047:
		return rfc2047Encode(v, false)
	}
	if !rawOK(v, false) {
		return "", false
	}
	return v, true
}

// list joins items with commas, each encoded on its own; empty items are
// left out. ok is false when one item cannot be carried exactly (or,
// raw, holds a comma that would split it): the whole field is refused
// rather than sent with an item missing.
func (e headerEncoding) list(items []string) (string, bool) {
	n := 0
	for _, it := range items {
		if it != "" {
			n++
		}
	}
	if n == 0 {
		return "", true
	}
	enc := make([]string, 0, n)
	for _, it := range items {
		if it == "" {
			continue
		}
		var v string
		ok := true
		switch e {
		case encodingPercent:
			v = percentEncode(it, true, true)
		case encodingRFC2047:
			v, ok = rfc2047Encode(it, true)
		default:
			v, ok = it, rawOK(it, true)
		}
		if !ok {
			return "", false
		}
		enc = append(enc, v)
	}
	return strings.Join(enc, ","), true
}

// template checks a custom header's filled-in template: the {session.*}
// placeholders in it are encoded already, and what the template's other
// parts bring (request placeholders the client controls) must be able to
// go in a header as well. Under percent it is percent-encoded but for '%'
// (which the session placeholders brought); otherwise a value with a
// control character or invalid UTF-8 is refused.
func (e headerEncoding) template(v string) (string, bool) {
	if e == encodingPercent {
		return percentEncode(v, false, false), true
	}
	if !utf8.ValidString(v) {
		return "", false
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return "", false
		}
	}
	return v, true
}

// rawOK reports whether v can go in a header as it is and reach the app
// as exactly v.
func rawOK(v string, item bool) bool {
	if v == "" {
		return true
	}
	if !utf8.ValidString(v) {
		return false
	}
	first, _ := utf8.DecodeRuneInString(v)
	last, _ := utf8.DecodeLastRuneInString(v)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f || (item && c == ',') {
			return false
		}
	}
	for _, r := range v {
		if unicode.IsControl(r) { // C1 controls
			return false
		}
	}
	return true
}

// percentEncode encodes control characters, bytes outside ASCII, '+',
// spaces at either end, with pct '%' itself, and with item ','. A value
// that needs none of this is returned as is, without allocating.
func percentEncode(v string, pct, item bool) string {
	lead := len(v) - len(strings.TrimLeft(v, " "))
	trail := len(strings.TrimRight(v, " "))
	needs := func(i int) bool {
		c := v[i]
		return c < 0x20 || c >= 0x7f || c == '+' || (pct && c == '%') || (item && c == ',') ||
			(c == ' ' && (i < lead || i >= trail))
	}
	i := 0
	for i < len(v) && !needs(i) {
		i++
	}
	if i == len(v) {
		return v
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(v) + 8)
	b.WriteString(v[:i])
	for ; i < len(v); i++ {
		if !needs(i) {
			b.WriteByte(v[i])
			continue
		}
		c := v[i]
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// rfc2047MaxInput is the most bytes of a value in one encoded-word:
// base64 of 45 bytes is 60 characters, and with "=?UTF-8?B?" and "?="
// the word stays within RFC 2047's 75.
const rfc2047MaxInput = 45

// rfc2047Encode returns v as it is when an RFC 2047 decoder reads it
// back unchanged, else as B-encoded words separated by spaces (which
// decoders drop between adjacent encoded-words). Words are split on rune
// boundaries, as RFC 2047 asks. Invalid UTF-8 cannot be labeled UTF-8,
// so it is refused.
func rfc2047Encode(v string, item bool) (string, bool) {
	if !utf8.ValidString(v) {
		return "", false
	}
	if !rfc2047Needs(v, item) {
		return v, true
	}
	var b strings.Builder
	for v != "" {
		n := len(v)
		if n > rfc2047MaxInput {
			n = rfc2047MaxInput
			for n > 0 && !utf8.RuneStart(v[n]) {
				n--
			}
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("=?UTF-8?B?")
		b.WriteString(base64.StdEncoding.EncodeToString([]byte(v[:n])))
		b.WriteString("?=")
		v = v[n:]
	}
	return b.String(), true
}

// rfc2047Needs reports whether v must be encoded: it holds a byte outside
// printable ASCII, white space at either end, something a decoder would
// read as an encoded-word ("=?"), or, in a list, a comma.
func rfc2047Needs(v string, item bool) bool {
	if v == "" {
		return false
	}
	if v[0] == ' ' || v[len(v)-1] == ' ' || strings.Contains(v, "=?") {
		return true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c >= 0x7f || (item && c == ',') {
			return true
		}
	}
	return false
}

// encodingVar is the key, in the request's Caddy vars, of the
// header_encoding of the session_auth that carried the session: the
// placeholders answer in it.
const encodingVar = "sessiongate.header_encoding"

func carryEncoding(r *http.Request, enc headerEncoding) {
	caddyhttp.SetVar(r.Context(), encodingVar, enc)
}

// requestEncoding is the header_encoding the request's session was
// carried with; raw when none was.
func requestEncoding(ctx context.Context) headerEncoding {
	enc, _ := caddyhttp.GetVar(ctx, encodingVar).(headerEncoding)
	return enc
}

// logRefused tells the operator that a session's value was not sent
// because header_encoding cannot carry it exactly. It names the fields
// and the token's hash, never the value (which may be what a session
// service was made to say) nor the token.
func (h *SessionAuth) logRefused(key sessionctx.Key, fields []string) {
	warned := false
	h.refusedLog.Do(func() {
		if ce := h.logger.Check(zapcore.WarnLevel, "identity value not sent: header_encoding cannot carry it exactly"); ce != nil {
			ce.Write(zap.String("header_encoding", encodingNames[h.encoding]), zap.Strings("fields", fields),
				zap.String("token_hash", h.tokenHash(key)))
			warned = true
		}
	})
	if ce := h.logger.Check(zapcore.DebugLevel, "identity value not sent"); !warned && ce != nil {
		ce.Write(zap.Strings("fields", fields), zap.String("token_hash", h.tokenHash(key)))
	}
}

// String is the setting's name, as {http.vars.sessiongate.header_encoding}
// shows it.
func (e headerEncoding) String() string { return encodingNames[e] }
