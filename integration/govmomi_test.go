package integration

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"

	"github.com/sessiongate/caddy-sessiongate/internal/emulator"
)

// govmomiRest is govmomi's vAPI REST client pointed at the test Caddy's
// site at base. Its Session call is POST
// /rest/com/vmware/cis/session?~action=get with the vmware-api-session-id
// header; it needs no SOAP endpoint for that.
func govmomiRest(t *testing.T, base, token string) *rest.Client {
	t.Helper()
	u, err := url.Parse(base + "/sdk")
	if err != nil {
		t.Fatal(err)
	}
	c := rest.NewClient(&vim25.Client{Client: soap.NewClient(u, false)})
	c.SessionID(token)
	return c
}

// TestGovmomiReadsSessionInfo: a vSphere client nobody on this project
// wrote reads Caddy's session_info vsphere as it would read vCenter.
func TestGovmomiReadsSessionInfo(t *testing.T) {
	vs := emulator.NewVSphere()
	created := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	vs.AddSession("vc-token", `VSPHERE.LOCAL\Administrator`, created.Add(time.Minute)) // the emulator dates creation a minute before
	svc := httptest.NewServer(vs)
	t.Cleanup(svc.Close)

	site := func(port int, optional string) string {
		return fmt.Sprintf(`
:%d {
	session_auth vsphere %s {
		%s
	}
	route /rest/com/vmware/cis/session {
		session_info vsphere
	}
	route /api/session {
		session_info vsphere
	}
	respond "not vCenter" 404
}`, port, svc.URL, optional)
	}
	startCaddy(t, site(httpPort, "")+site(altPort, "optional"))

	for _, c := range []struct{ name, base string }{{"optional=false", siteURL}, {"optional=true", altURL}} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			s, err := govmomiRest(t, c.base, "vc-token").Session(ctx)
			if err != nil {
				t.Fatalf("Session: %v", err)
			}
			if s == nil {
				t.Fatal("Session returned no session for a live token")
			}
			if s.User != `VSPHERE.LOCAL\Administrator` {
				t.Errorf("user %q", s.User)
			}
			if !s.Created.Equal(created) {
				t.Errorf("created_time %v, want %v", s.Created, created)
			}
			if s.LastAccessed.IsZero() {
				t.Errorf("last_accessed_time not parsed")
			}

			s, err = govmomiRest(t, c.base, "unknown-token").Session(ctx)
			if err != nil || s != nil {
				t.Fatalf("unknown token: session %+v, error %v; want no session and no error", s, err)
			}
		})
	}
}

// TestGovmomiLifecycleThroughCaddy: govmomi logs in, reads its session and
// logs out through Caddy. session_info answers only the read; the login
// and the logout go on to the (emulated) vCenter, and the logout evicts
// the cached session, so the next read finds none.
func TestGovmomiLifecycleThroughCaddy(t *testing.T) {
	vs := emulator.NewVSphere()
	svc := httptest.NewServer(vs)
	t.Cleanup(svc.Close)
	startCaddy(t, fmt.Sprintf(`
:%d {
	session_auth vsphere %s {
		optional
		logout DELETE /rest/com/vmware/cis/session
	}
	route /rest/com/vmware/cis/session {
		session_info vsphere
	}
	reverse_proxy %s
}`, httpPort, svc.URL, svc.Listener.Addr()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c := govmomiRest(t, siteURL, "")
	if err := c.Login(ctx, url.UserPassword("administrator@vsphere.local", "secret")); err != nil {
		t.Fatalf("Login through Caddy: %v", err)
	}
	if c.SessionID() == "" {
		t.Fatal("Login gave no session id")
	}
	before := vs.LegacyCalls() + vs.CurrentCalls()
	for i := 0; i < 3; i++ {
		s, err := c.Session(ctx)
		if err != nil || s == nil || s.User != "administrator@vsphere.local" {
			t.Fatalf("Session after login: %+v, %v", s, err)
		}
	}
	if calls := vs.LegacyCalls() + vs.CurrentCalls() - before; calls > 1 {
		t.Errorf("three session reads cost %d vCenter calls; want at most one (the cache answers)", calls)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatalf("Logout through Caddy: %v", err)
	}
	s, err := c.Session(ctx)
	if err != nil || s != nil {
		t.Fatalf("Session after logout: %+v, %v; want none", s, err)
	}
}
