package caddymodule

import (
	"mime"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestHeaderEncoding(t *testing.T) {
	type want struct {
		raw, percent, rfc2047 string // "!" for refused
	}
	tests := map[string]want{
		"alice":                 {"alice", "alice", "alice"},
		"josé":                  {"josé", "jos%C3%A9", "=?UTF-8?B?am9zw6k=?="},
		"zoë ångström":          {"zoë ångström", "zo%C3%AB %C3%A5ngstr%C3%B6m", "=?UTF-8?B?em/DqyDDpW5nc3Ryw7Zt?="},
		"山田太郎":                  {"山田太郎", "%E5%B1%B1%E7%94%B0%E5%A4%AA%E9%83%8E", "=?UTF-8?B?5bGx55Sw5aSq6YOO?="},
		"a+b":                   {"a+b", "a%2Bb", "a+b"},
		"100%":                  {"100%", "100%25", "100%"},
		"in side":               {"in side", "in side", "in side"},
		" padded ":              {"!", "%20padded%20", "=?UTF-8?B?IHBhZGRlZCA=?="},
		"line\r\nX-Admin: true": {"!", "line%0D%0AX-Admin: true", "=?UTF-8?B?bGluZQ0KWC1BZG1pbjogdHJ1ZQ==?="},
		"nul\x00byte":           {"!", "nul%00byte", "=?UTF-8?B?bnVsAGJ5dGU=?="},
		"\x7f":                  {"!", "%7F", "=?UTF-8?B?fw==?="},
		"tab\there":             {"!", "tab%09here", "=?UTF-8?B?dGFiCWhlcmU=?="},
		"c1\u0085ctl":           {"!", "c1%C2%85ctl", "=?UTF-8?B?YzHChWN0bA==?="},
		"\u3000admin":           {"!", "%E3%80%80admin", "=?UTF-8?B?44CAYWRtaW4=?="},
		"bad\xffutf8":           {"!", "bad%FFutf8", "!"},
		"=?UTF-8?B?YWRtaW4=?=":  {"=?UTF-8?B?YWRtaW4=?=", "=?UTF-8?B?YWRtaW4=?=", "=?UTF-8?B?PT9VVEYtOD9CP1lXUnRhVzQ9Pz0=?="},
		"DOMAIN\\user":          {"DOMAIN\\user", "DOMAIN\\user", "DOMAIN\\user"},
	}
	for in, w := range tests {
		for e, exp := range map[headerEncoding]string{encodingRaw: w.raw, encodingPercent: w.percent, encodingRFC2047: w.rfc2047} {
			got, ok := e.value(in)
			if exp == "!" {
				if ok || got != "" {
					t.Errorf("%s(%q) = %q, %v: want refused", encodingNames[e], in, got, ok)
				}
				continue
			}
			if !ok || got != exp {
				t.Errorf("%s(%q) = %q, %v: want %q", encodingNames[e], in, got, ok, exp)
			}
		}
	}

	lists := []struct {
		in                    []string
		raw, percent, rfc2047 string
	}{
		{[]string{"admin", "", "dev"}, "admin,dev", "admin,dev", "admin,dev"},
		{[]string{"a,b", "c"}, "!", "a%2Cb,c", "=?UTF-8?B?YSxi?=,c"},
		{[]string{"ops", "d\n"}, "!", "ops,d%0A", "ops,=?UTF-8?B?ZAo=?="},
		{[]string{"admin\u00a0", "x"}, "!", "admin%C2%A0,x", "=?UTF-8?B?YWRtaW7CoA==?=,x"},
		{[]string{"équipe"}, "équipe", "%C3%A9quipe", "=?UTF-8?B?w6lxdWlwZQ==?="},
	}
	for _, l := range lists {
		for e, exp := range map[headerEncoding]string{encodingRaw: l.raw, encodingPercent: l.percent, encodingRFC2047: l.rfc2047} {
			got, ok := e.list(l.in)
			if exp == "!" {
				if ok {
					t.Errorf("%s list %q = %q: want refused", encodingNames[e], l.in, got)
				}
				continue
			}
			if !ok || got != exp {
				t.Errorf("%s list %q = %q, %v: want %q", encodingNames[e], l.in, got, ok, exp)
			}
		}
	}

	// A long value becomes several encoded-words, each within RFC 2047's
	// 75 characters and split between runes, that decode as one.
	long := strings.Repeat("ångström ", 20)
	long = long[:len(long)-1]
	enc, ok := encodingRFC2047.value(long)
	if !ok {
		t.Fatal("long value refused")
	}
	for _, w := range strings.Fields(enc) {
		if len(w) > 75 {
			t.Errorf("encoded-word of %d characters: %q", len(w), w)
		}
	}
	if dec, err := new(mime.WordDecoder).DecodeHeader(enc); err != nil || dec != long {
		t.Errorf("long value decodes to %q (%v)", dec, err)
	}
}

// FuzzHeaderEncoding checks what every header_encoding promises: the
// value sent holds no byte that could end or split the header (CR, LF,
// NUL, another control byte), the named decoder gives back exactly the
// session's value, and a value that cannot be carried exactly is refused,
// never altered, so two values never reach the app as one.
func FuzzHeaderEncoding(f *testing.F) {
	for _, s := range []string{
		"alice", "Alice Ä", "a\r\nX-Evil: 1", "nul\x00byte", "100%", "%41", " padded ", "a+b",
		"\xff\xfe invalid utf-8", "tab\there", "\x7fdel", "日本語", "a,b", "", "=?UTF-8?Q?x?=", "\u0085",
	} {
		f.Add(s)
	}
	dec := new(mime.WordDecoder)
	f.Fuzz(func(t *testing.T, in string) {
		for e := headerEncoding(0); e < numEncodings; e++ {
			out, ok := e.value(in)
			list, lok := e.list([]string{in, "x"})
			for _, v := range []string{out, list} {
				for i := 0; i < len(v); i++ {
					if c := v[i]; c < 0x20 || c == 0x7f {
						t.Fatalf("%s(%q) = %q: control byte %#x", encodingNames[e], in, v, c)
					}
				}
				if v != strings.TrimSpace(v) {
					t.Fatalf("%s(%q) = %q: surrounding spaces", encodingNames[e], in, v)
				}
			}
			if !ok {
				if out != "" || e == encodingPercent {
					t.Fatalf("%s(%q) refused as %q", encodingNames[e], in, out)
				}
				continue
			}
			var got string
			var err error
			switch e {
			case encodingRaw:
				got = out
				for _, r := range in {
					if unicode.IsControl(r) || !utf8.ValidString(in) {
						t.Fatalf("raw(%q) sent", in)
					}
				}
			case encodingPercent:
				got, err = url.PathUnescape(out)
				if form, ferr := url.QueryUnescape(out); ferr != nil || form != in {
					t.Fatalf("percent(%q) = %q: a form decoder reads %q (%v)", in, out, form, ferr)
				}
			case encodingRFC2047:
				got, err = dec.DecodeHeader(out)
			}
			if err != nil || got != in {
				t.Fatalf("%s(%q) = %q decodes to %q (%v)", encodingNames[e], in, out, got, err)
			}
			if !lok {
				continue
			}
			items := strings.Split(list, ",")
			if in == "" {
				if len(items) != 1 {
					t.Fatalf("%s list [%q x] = %q", encodingNames[e], in, list)
				}
				continue
			}
			if len(items) != 2 {
				t.Fatalf("%s list [%q x] = %q: %d items", encodingNames[e], in, list, len(items))
			}
		}
	})
}
