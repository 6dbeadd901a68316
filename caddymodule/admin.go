package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sessiongate/caddy-sessiongate/sessionctx"
	"github.com/sessiongate/caddy-sessiongate/sessionctx/cluster"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves sessiongate's endpoints on Caddy's admin API:
// GET /sessiongate/stats and POST /sessiongate/purge. Caddy loads every
// admin.api module by itself; there is nothing to configure.
type AdminAPI struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.sessiongate",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision sets up the module's logger.
func (a *AdminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger(a) // admin modules have no ancestry to name them
	return nil
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/sessiongate/stats", Handler: caddy.AdminHandlerFunc(a.handleStats)},
		{Pattern: "/sessiongate/purge", Handler: caddy.AdminHandlerFunc(a.handlePurge)},
	}
}

// BackendStats is one cache's line in GET /sessiongate/stats.
type BackendStats struct {
	// ID tells apart two caches of one backend with different cache
	// settings: a prefix of the pool key.
	ID      string `json:"id"`
	Dialect string `json:"dialect"`
	// URL is the backend URL without user info, query or fragment.
	URL string `json:"url"`
	sessionctx.Stats
	// Cluster is the Redis tier's view, when the backend has one.
	Cluster *cluster.Stats `json:"cluster,omitempty"`
}

func (a *AdminAPI) handleStats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(w, r, http.MethodGet)
	}
	out := []BackendStats{}
	for _, p := range liveResolvers() {
		bs := BackendStats{ID: p.key[:12], Dialect: p.dialect, URL: p.url, Stats: p.Stats()}
		if p.tier != nil {
			st := p.tier.Stats()
			bs.Cluster = &st
		}
		out = append(out, bs)
	}
	return writeJSON(w, map[string]any{"backends": out, "assertions": assertionStats()})
}

// purgeRequest is the body of POST /sessiongate/purge.
type purgeRequest struct {
	// Token is a token as clients send it (for eternus: the whole
	// "<session_id>:<token>" credential).
	Token string `json:"token,omitempty"`
	All   bool   `json:"all,omitempty"`
}

// maxPurgeBody bounds a purge body: a token and some JSON around it.
const maxPurgeBody = 64 << 10

func (a *AdminAPI) handlePurge(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, r, http.MethodPost)
	}
	req, err := decodePurge(r.Body)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	purged := 0
	var clusterFailed []string
	backends := liveResolvers()
	for _, p := range backends {
		n := 0
		if req.All {
			var err error
			n, err = p.PurgeAll()
			if err != nil {
				// The tier has logged a warning of its own.
				clusterFailed = append(clusterFailed, p.key[:12])
			}
		} else {
			n = p.ForgetToken(req.Token)
		}
		purged += n
		if p.metricsUsers.Load() > 0 {
			observeEvictions("purge", n)
		}
	}
	if ce := a.logger.Check(zapcore.InfoLevel, "sessiongate cache purged"); ce != nil {
		// Never the token: a purge log line is as readable as any other.
		ce.Write(zap.Bool("all", req.All), zap.Int("purged", purged), zap.Int("backends", len(backends)))
	}
	return writeJSON(w, purgeAnswer(purged, len(backends), clusterFailed))
}

// decodePurge reads a purge body, which must say exactly one of "token"
// and "all": an empty or ambiguous body purging everything by accident
// would be a bad surprise.
func decodePurge(body io.Reader) (purgeRequest, error) {
	var req purgeRequest
	raw, err := io.ReadAll(io.LimitReader(body, maxPurgeBody+1))
	if err != nil {
		return req, fmt.Errorf("reading body: %w", err)
	}
	if len(raw) > maxPurgeBody {
		return req, fmt.Errorf("body larger than %d bytes", maxPurgeBody)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return req, errors.New(`empty body: want {"token": "..."} or {"all": true}`)
	}
	keys, err := decodePurgeFields(raw, &req)
	if err != nil {
		return req, fmt.Errorf(`body is not {"token": "..."} or {"all": true}: %w`, err)
	}
	switch {
	case keys["token"] && keys["all"]:
		// Whatever their values ("token": "", "all": false): a body
		// naming both says two things, and neither is taken.
		return req, errors.New(`give "token" or "all", not both`)
	case !req.All && req.Token == "":
		return req, errors.New(`want a non-empty "token", or "all": true`)
	}
	return req, nil
}

// decodePurgeFields reads one JSON object whose keys are exactly "token"
// or "all", each at most once, and returns the keys it named. encoding/json matches keys without regard
// to case, so {"All": true} once purged every cache; a key that is not
// ours, in any case, is refused rather than ignored.
func decodePurgeFields(raw []byte, req *purgeRequest) (map[string]bool, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil {
		return nil, err
	} else if tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, fmt.Errorf("key %q given twice", key)
		}
		seen[key] = true
		switch key {
		case "token":
			err = dec.Decode(&req.Token)
		case "all":
			err = dec.Decode(&req.All)
		default:
			return nil, fmt.Errorf("unknown key %q (keys are case-sensitive)", key)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("body holds more than one JSON value")
	}
	return seen, nil
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) error {
	w.Header().Set("Allow", allow)
	return caddy.APIError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err:        fmt.Errorf("method %s not allowed, use %s", r.Method, allow),
	}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var (
	_ caddy.Provisioner = (*AdminAPI)(nil)
	_ caddy.AdminRouter = (*AdminAPI)(nil)
)

// purgeAnswer is the body of a purge's answer: how many entries this
// node dropped, across how many backends, and, when a purge of all could
// not reach the other nodes through Redis yet (they are told when Redis
// takes it), which backends' cluster part failed.
func purgeAnswer(purged, backends int, clusterFailed []string) any {
	if len(clusterFailed) == 0 {
		return map[string]int{"purged": purged, "backends": backends}
	}
	return map[string]any{"purged": purged, "backends": backends, "cluster_failed": clusterFailed}
}
