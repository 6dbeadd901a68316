//go:build unix

package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestBrowserSeesErrorPages: a real Chromium that gets sessiongate's 401
// (no redirect configured) or 503 shows a page saying to sign in or to
// try again, not a blank one.
func TestBrowserSeesErrorPages(t *testing.T) {
	svc := newSessionService(t)
	down := newSessionService(t)
	down.setFault(func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusInternalServerError)
		return true
	})
	up := newUpstream(t)
	startCaddy(t, fmt.Sprintf(`
:%d {
	@down path /down*
	session_auth @down http %s {
		token query tok
	}
	session_auth http %s
	reverse_proxy %s
}`, httpPort, down.URL, svc.URL, up.URL))
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)

	if dom := dumpDOM(t, base+"/"); !strings.Contains(dom, "<h1>Sign in required</h1>") {
		t.Errorf("without a session the browser should show the sign-in page; DOM:\n%s", dom)
	}
	if dom := dumpDOM(t, base+"/down?tok=anything"); !strings.Contains(dom, "<h1>Please try again</h1>") || !strings.Contains(dom, "5 seconds") {
		t.Errorf("with the session service down the browser should show the retry page; DOM:\n%s", dom)
	}
}
