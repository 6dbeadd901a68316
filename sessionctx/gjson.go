package sessionctx

// Reading session-service answers with GJSON: what every dialect's
// decoder shares.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// serviceAnswer reports whether raw is a JSON object and, when path is
// set, holds path: the session service's own error body rather than a page
// of whatever stands in front of it.
func serviceAnswer(raw []byte, path string) bool {
	if !gjson.ValidBytes(raw) {
		return false
	}
	doc := gjson.ParseBytes(raw)
	return doc.IsObject() && (path == "" || doc.Get(path).Exists())
}

// parseObject checks that a session-service answer is a JSON object. An
// answer that is not says nothing about the token: the service (or what
// stands in front of it) is broken, so it wraps ErrUnavailable.
func parseObject(raw []byte, what string) (gjson.Result, error) {
	if !gjson.ValidBytes(raw) {
		return gjson.Result{}, fmt.Errorf("%w: %s is not JSON", ErrUnavailable, what)
	}
	doc := gjson.ParseBytes(raw)
	if !doc.IsObject() {
		return gjson.Result{}, fmt.Errorf("%w: %s is not a JSON object", ErrUnavailable, what)
	}
	return doc, nil
}

func orMissing(v gjson.Result) string {
	if !v.Exists() {
		return "missing"
	}
	return v.Raw
}

// str reads a scalar as text; numbers keep their JSON spelling, so a
// numeric id 1234567890123 does not turn into 1.234567890123e+12.
func str(doc gjson.Result, path string) string {
	if path == "" {
		return ""
	}
	return strOf(doc.Get(path))
}

// strOf is str of a value read already.
func strOf(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		return v.Str
	case gjson.Number:
		return v.Raw
	case gjson.True, gjson.False:
		return v.Raw
	}
	return ""
}

// list reads a JSON list of scalars, each element exactly as the
// service wrote it: "admin\u00a0" or " admin " is not the role admin, and
// an encoder downstream shows the difference rather than hiding it. A
// string is one name ("Sales admin" is one role), unless sep is set:
// then it is split on sep, exactly, and the empty parts dropped.
func list(doc gjson.Result, path string) []string { return splitList(doc, path, "") }

func splitList(doc gjson.Result, path, sep string) []string {
	if path == "" {
		return nil
	}
	return splitListOf(doc.Get(path), sep)
}

// splitListOf is splitList of a value read already.
func splitListOf(v gjson.Result, sep string) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s)
		}
	}
	switch {
	case v.IsArray():
		v.ForEach(func(_, e gjson.Result) bool {
			switch e.Type {
			case gjson.String:
				add(e.Str)
			case gjson.Number:
				add(e.Raw)
			}
			return true
		})
	case v.Type == gjson.String && sep != "":
		for _, f := range strings.Split(v.Str, sep) {
			add(f)
		}
	case v.Type == gjson.String:
		add(v.Str)
	}
	return out
}

func truthy(v gjson.Result) bool {
	switch v.Type {
	case gjson.True:
		return true
	case gjson.String:
		b, _ := strconv.ParseBool(v.Str)
		return b
	case gjson.Number:
		return v.Num != 0
	}
	return false
}

func number(v gjson.Result) (float64, bool) {
	switch v.Type {
	case gjson.Number:
		return v.Num, !math.IsNaN(v.Num) && !math.IsInf(v.Num, 0)
	case gjson.String:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.Str), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// timeValue reads RFC 3339 text, or epoch seconds (milliseconds when the
// number is too large to be seconds).
func timeValue(v gjson.Result) (time.Time, bool) {
	if v.Type == gjson.String {
		if t, err := time.Parse(time.RFC3339Nano, v.Str); err == nil {
			return t, true
		}
	}
	n, ok := number(v)
	if !ok || n <= 0 || n > 1e15 {
		return time.Time{}, false
	}
	t := epochTime(n)
	if t.Year() > 9999 {
		// Not a date a session could mean, and not one that JSON (or
		// session_info) can write back: no expiry rather than garbage.
		return time.Time{}, false
	}
	return t, true
}

// maxLifetime bounds a lifetime a session service states in seconds, so
// an absurd number cannot overflow a time.Duration into the past.
const maxLifetime = 100 * 365 * 24 * time.Hour

// secondsOf turns a stated number of seconds left into a duration,
// clamped to [0, maxLifetime].
func secondsOf(secs float64) time.Duration {
	if secs <= 0 {
		return 0
	}
	if secs >= maxLifetime.Seconds() {
		return maxLifetime
	}
	return time.Duration(secs * float64(time.Second))
}

// epochTime reads epoch seconds, or epoch milliseconds when the number is
// too large to be seconds (past the year 5138).
func epochTime(n float64) time.Time {
	if n > 1e11 {
		return time.UnixMilli(int64(n))
	}
	sec, frac := math.Modf(n)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// getAll reads the value of each of paths in doc into out ("" reads
// nothing). A path that is one plain key, as most mappings' are, is
// found in one pass over doc's keys shared by all of them, rather than
// one search of the answer per path; the first of duplicate keys wins,
// as with gjson's own search, which reads the other paths.
func getAll(doc gjson.Result, paths []string, out []gjson.Result) {
	plain := 0
	object := doc.IsObject()
	for i, p := range paths {
		switch {
		case p == "":
		case object && plainKey(p):
			plain++
		default:
			out[i] = doc.Get(p)
		}
	}
	if plain == 0 {
		return
	}
	doc.ForEach(func(k, v gjson.Result) bool {
		for i, p := range paths {
			if p != "" && !out[i].Exists() && k.Str == p && plainKey(p) {
				out[i] = v
				plain--
			}
		}
		return plain > 0
	})
}

// plainKey says whether a gjson path is one object key, with none of
// the characters gjson's path syntax gives a meaning to.
func plainKey(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return p != ""
}
