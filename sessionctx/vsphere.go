package sessionctx

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

func init() {
	registerDialect(&dialect{
		name:    "vsphere",
		tokens:  []TokenSource{{From: FromHeader, Name: "vmware-api-session-id"}, {From: FromCookie, Name: "vmware-api-session-id"}},
		options: func() Options { return &VSphereOptions{} },
		backend: func(svc *service, opts Options) (backend, error) {
			return newVSphereBackend(svc, opts.(*VSphereOptions))
		},
		info: infoShape{render: renderVSphereInfo, handles: vsphereInfoHandles, productRead: vsphereProductRead},
	})
}

// Which vSphere session API to ask.
const (
	vsphereAPIAuto    = "auto"
	vsphereAPICurrent = "current"
	vsphereAPILegacy  = "legacy"
)

// defaultVSphereIdleTimeout is vCenter's default session idle timeout.
const defaultVSphereIdleTimeout = 30 * time.Minute

// VSphereOptions configure the vsphere dialect.
type VSphereOptions struct {
	// API is auto (the current /api/session, falling back to the legacy
	// /rest API on 404 and remembering which answered), current or
	// legacy. Default auto.
	API string `json:"api,omitempty"`
	// IdleTimeout is the vCenter's session idle timeout, as a Go duration
	// ("30m"). A cache hit does not refresh vCenter's idle timer, so a
	// session is cached no longer than this after its last access.
	// Default 30m.
	IdleTimeout string `json:"idle_timeout,omitempty"`
}

// SetOption implements Options: `api auto|current|legacy`,
// `idle_timeout <duration>`.
func (o *VSphereOptions) SetOption(name string, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes exactly one argument", name)
	}
	switch name {
	case "api":
		switch args[0] {
		case vsphereAPIAuto, vsphereAPICurrent, vsphereAPILegacy:
			o.API = args[0]
			return nil
		}
		return fmt.Errorf("api %q: want auto, current or legacy", args[0])
	case "idle_timeout":
		if _, err := parseIdleTimeout(args[0]); err != nil {
			return err
		}
		o.IdleTimeout = args[0]
		return nil
	}
	return fmt.Errorf("unrecognized vsphere backend option %q", name)
}

func parseIdleTimeout(s string) (time.Duration, error) {
	if s == "" {
		return defaultVSphereIdleTimeout, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("idle_timeout %q: want a positive duration such as 30m", s)
	}
	return d, nil
}

// vsphereBackend asks vCenter's session service.
type vsphereBackend struct {
	svc             *service
	api             string
	idle            time.Duration
	current, legacy string
	now             func() time.Time
	// useLegacy remembers, in auto mode, that the current API answered
	// 404, so later calls go straight to the legacy one.
	useLegacy atomic.Bool
}

func newVSphereBackend(svc *service, o *VSphereOptions) (*vsphereBackend, error) {
	api := o.API
	switch api {
	case "":
		api = vsphereAPIAuto
	case vsphereAPIAuto, vsphereAPICurrent, vsphereAPILegacy:
	default:
		return nil, fmt.Errorf("api %q: want auto, current or legacy", api)
	}
	idle, err := parseIdleTimeout(o.IdleTimeout)
	if err != nil {
		return nil, err
	}
	return &vsphereBackend{
		svc:     svc,
		api:     api,
		idle:    idle,
		current: svc.Endpoint("/api/session", ""),
		legacy:  svc.Endpoint("/rest/com/vmware/cis/session", "~action=get"),
		now:     time.Now,
	}, nil
}

// Resolve implements Backend.
func (b *vsphereBackend) Resolve(ctx context.Context, cred credential) (*Session, error) {
	legacy := b.api == vsphereAPILegacy || (b.api == vsphereAPIAuto && b.useLegacy.Load())
	if !legacy {
		status, raw, err := b.call(ctx, http.MethodGet, b.current, cred)
		if err != nil {
			return nil, err
		}
		if status != http.StatusNotFound || b.api == vsphereAPICurrent {
			return b.classify(status, raw)
		}
	}
	status, raw, err := b.call(ctx, http.MethodPost, b.legacy, cred)
	if err != nil {
		return nil, err
	}
	if b.api == vsphereAPIAuto && (status == http.StatusOK || status == http.StatusUnauthorized) {
		// Only an answer in the legacy API's own terms proves it is the
		// one to use; a 404 on both is a wrong URL, not a legacy vCenter.
		b.useLegacy.Store(true)
	}
	return b.classify(status, raw)
}

func (b *vsphereBackend) call(ctx context.Context, method, target string, cred credential) (int, []byte, error) {
	req, err := b.svc.NewRequest(ctx, method, target, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("vmware-api-session-id", cred.Value)
	return b.svc.Do(req)
}

func (b *vsphereBackend) classify(status int, raw []byte) (*Session, error) {
	if status != http.StatusOK {
		if status == http.StatusUnauthorized && !vsphereUnauthenticated(raw) {
			return nil, statusError(status)
		}
		return nil, statusError(status, http.StatusUnauthorized)
	}
	return decodeVSphere(raw, b.now(), b.idle)
}

// decodeVSphere maps a session object (current API) or its {"value": ...}
// wrapper (legacy API) to a session; Raw is the unwrapped object. The
// session is cached no longer than vCenter would keep it idle.
func decodeVSphere(raw []byte, now time.Time, idle time.Duration) (*Session, error) {
	doc, err := parseObject(raw, "vsphere answer")
	if err != nil {
		return nil, err
	}
	if v := doc.Get("value"); v.IsObject() && !doc.Get("user").Exists() {
		doc = v
	}
	user := doc.Get("user")
	if user.Type != gjson.String || strings.TrimSpace(user.Str) == "" {
		return nil, fmt.Errorf("%w: vsphere session names no user", ErrUnavailable)
	}
	s := &Session{
		UserID:  user.Str,
		User:    user.Str,
		Org:     vsphereDomain(user.Str),
		Kind:    kindUser,
		Dialect: "vsphere",
		Raw:     []byte(doc.Raw),
	}
	s.CreatedAt, _ = timeValue(doc.Get("created_time"))
	s.LastAccessedAt, _ = timeValue(doc.Get("last_accessed_time"))
	if idle <= 0 {
		idle = defaultVSphereIdleTimeout
	}
	s.ExpiresAt = idleExpiry(s.LastAccessedAt, idle, now)
	return s, nil
}

// vsphereDomain is the domain of a DOMAIN\name or name@domain user.
func vsphereDomain(user string) string {
	if d, _, ok := strings.Cut(user, `\`); ok {
		return d
	}
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		return user[i+1:]
	}
	return ""
}

// idleExpiry is when a session idle since last expires, for a service
// whose sessions die after idle without use and whose timer a cache hit
// does not reset. The service has just said the session is alive, so a
// last access in the future or longer than idle ago can only be clock skew
// between it and us: the session then counts from now, rather than being
// rejected by our clock while the service's says it lives.
func idleExpiry(last time.Time, idle time.Duration, now time.Time) time.Time {
	if last.IsZero() {
		return now.Add(idle)
	}
	elapsed := now.Sub(last)
	if elapsed < 0 || elapsed >= idle {
		elapsed = 0
	}
	return now.Add(idle - elapsed)
}

// vsphereUnauthenticated reports whether a 401 body is vSphere's own:
// UNAUTHENTICATED (current API), the legacy unauthenticated error type, or
// vcsim's empty body. An HTML page is from something in front of vCenter.
func vsphereUnauthenticated(raw []byte) bool {
	if len(bytes.TrimSpace(raw)) == 0 {
		return true
	}
	if !serviceAnswer(raw, "") {
		return false
	}
	doc := gjson.ParseBytes(raw)
	return doc.Get("error_type").String() == "UNAUTHENTICATED" ||
		strings.Contains(doc.Get("type").String(), "unauthenticated")
}
