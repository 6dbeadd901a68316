package caddymodule

import (
	"net/http/httptest"
	"testing"
)

// A browser's Accept gets the HTML answers (redirect, error page); a
// client that lists text/html below another type, or not at all, does not.
func TestPrefersHTML(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"text/html", true},
		{"TEXT/HTML", true},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", true},
		{"application/xhtml+xml", true},
		{"text/html;level=1", true},
		{"", false},
		{"*/*", false},
		{"text/*", false},
		{"application/json", false},
		{"text/html;q=0", false},
		{"text/html;Q=0", false},
		{"text/html;level=1;q=0", false},
		{"text/html;q=0.000", false},
		{"text/html;q=junk", false},
		{"text/html;q=0, application/json", false},
		{"application/json, text/html;q=0.1", false},
		{"application/json;q=0.9, text/html;q=0.5", false},
		{"application/json;q=0.5, text/html;q=0.9", true},
		{"text/html, */*", true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.accept != "" {
			r.Header.Set("Accept", tt.accept)
		}
		if got := prefersHTML(r); got != tt.want {
			t.Errorf("Accept %q: prefersHTML %v, want %v", tt.accept, got, tt.want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("X-Requested-With", "XMLHttpRequest")
	if prefersHTML(r) {
		t.Error("an XHR with Accept text/html prefers HTML")
	}
}
