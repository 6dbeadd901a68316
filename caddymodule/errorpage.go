package caddymodule

import (
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// hasErrorRoutes reports whether the request's site has handle_errors
// routes, which then render sessiongate's errors themselves. A request
// from outside a Caddy server counts as having them: the error is
// returned as it is.
func hasErrorRoutes(r *http.Request) bool {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	return srv == nil || (srv.Errors != nil && len(srv.Errors.Routes) > 0)
}

// errorPage answers a browser navigation that gets one of sessiongate's
// own errors (no session, the session service down) with a minimal page
// saying what to do, where Caddy alone would show a blank one. It is
// written only when the site has no handle_errors (which renders the
// error itself) and the client prefers HTML; API clients keep an empty
// body. The status and the headers set before (WWW-Authenticate,
// Retry-After) stay. It reports whether it answered.
func errorPage(w http.ResponseWriter, r *http.Request, status int) bool {
	if hasErrorRoutes(r) {
		return false
	}
	addVary(w.Header(), "Accept")
	if !prefersHTML(r) {
		return false
	}
	title, text := "Sign in required", "You need to sign in to see this page. Sign in, then open it again."
	if status == http.StatusServiceUnavailable {
		title, text = "Please try again", "Signing you in is not possible right now: the sign-in service is not answering. Please try again in a moment."
		if secs, err := strconv.Atoi(w.Header().Get("Retry-After")); err == nil {
			text = fmt.Sprintf("Signing you in is not possible right now: the sign-in service is not answering. Please try again in %d seconds.", secs)
		}
	}
	page := fmt.Sprintf(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>%[1]s</title></head>
<body><h1>%[1]s</h1><p>%[2]s</p><p><a href="">Try again</a></p></body>
</html>
`, html.EscapeString(title), html.EscapeString(text))
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(page)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(page)) // a write error is a gone client
	}
	return true
}

// addVary adds name to the Vary header unless it is there already.
func addVary(h http.Header, name string) {
	for _, v := range h.Values("Vary") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return
			}
		}
	}
	h.Add("Vary", name)
}
