package caddymodule

import (
	"reflect"

	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// siteStrippedKey is the adapter state that remembers the site blocks
// whose every request a strip or a session_auth already sees.
const siteStrippedKey = "sessiongate.site_stripped"

// claimSiteStrip reports whether a top-level session_auth of a site block
// must emit the site's strip: only the first one of the site does, so
// the adapted config holds one strip, before every session_auth, and
// none after one. A nested directive always emits its own, for its
// block. When the site cannot be told apart (a Caddy whose adapter is
// built otherwise), every one emits a strip: that is still safe, since a
// strip leaves alone a request a session_auth has handled.
func claimSiteStrip(h httpcaddyfile.Helper) bool {
	site, ok := siteOf(h)
	if !ok || !topLevel(h) {
		return true
	}
	claimed, _ := h.State[siteStrippedKey].(map[uintptr]bool)
	if claimed == nil {
		claimed = map[uintptr]bool{}
		h.State[siteStrippedKey] = claimed
	}
	if claimed[site] {
		return false
	}
	claimed[site] = true
	return true
}

// markSiteStripped records that every request of the directive's site
// goes through a strip or a session_auth at the top of the site.
func markSiteStripped(h httpcaddyfile.Helper) {
	if site, ok := siteOf(h); ok && topLevel(h) {
		claimed, _ := h.State[siteStrippedKey].(map[uintptr]bool)
		if claimed == nil {
			claimed = map[uintptr]bool{}
			h.State[siteStrippedKey] = claimed
		}
		claimed[site] = true
	}
}

// topLevel reports whether the directive sits at the top of its site:
// Caddy hands top-level directives the adaptation's State as their
// BlockState, and every nested block a copy of its own.
func topLevel(h httpcaddyfile.Helper) bool {
	return h.State != nil && reflect.ValueOf(h.BlockState).Pointer() == reflect.ValueOf(h.State).Pointer()
}

// siteOf identifies the site block a directive belongs to. Caddy's
// Helper does not expose it: the block's segments, which every Helper of
// one block shares, are read through reflection, and a Helper without
// them yields no identity.
func siteOf(h httpcaddyfile.Helper) (uintptr, bool) {
	block := reflect.ValueOf(h).FieldByName("parentBlock")
	if !block.IsValid() || block.Kind() != reflect.Struct {
		return 0, false
	}
	segs := block.FieldByName("Segments")
	if !segs.IsValid() || segs.Kind() != reflect.Slice || segs.Len() == 0 {
		return 0, false
	}
	return segs.Pointer(), true
}
