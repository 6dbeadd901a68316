package cluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sessiongate/caddy-sessiongate/internal/redistest"
	"github.com/sessiongate/caddy-sessiongate/sessionctx"
)

// documentedACL is the ACL SETUSER line of docs/cluster.md, as its rules
// (after the user name).
func documentedACL(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "ACL SETUSER sessiongate "); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatal("docs/cluster.md has no line starting ACL SETUSER sessiongate")
	return nil
}

const aclPassword = "acl-test-password"

// setACL sets the sessiongate user to rules (its password replaced by the
// test's) and empties the ACL log.
func setACL(t *testing.T, admin *redis.Client, rules []string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", "sessiongate"}
	for _, r := range rules {
		if strings.HasPrefix(r, ">") {
			r = ">" + aclPassword
		}
		args = append(args, r)
	}
	ctx := context.Background()
	if err := admin.Do(ctx, args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER %v: %v", rules, err)
	}
	// Connections of the previous round keep their user's old rights
	// until they close; none are left, but make sure.
	if err := admin.Do(ctx, "CLIENT", "KILL", "USER", "sessiongate").Err(); err != nil && !strings.Contains(err.Error(), "No such user") {
		t.Logf("client kill: %v", err)
	}
	// A Redis that knows no script yet (just started, or restarted): a
	// script is then sent whole before it runs by its hash.
	if err := admin.Do(ctx, "SCRIPT", "FLUSH").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, "ACL", "LOG", "RESET").Err(); err != nil {
		t.Fatal(err)
	}
}

// aclDenials is what Redis refused the sessiongate user since the last
// reset: command or key or channel, with the context.
func aclDenials(t *testing.T, admin *redis.Client) []string {
	t.Helper()
	entries, err := admin.Do(context.Background(), "ACL", "LOG").Slice()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// tlsTierConfig is the tier's Redis part for the TLS server: rediss://
// with the ACL user, the test CA trusted, the client certificate.
func tlsTierConfig(t *testing.T, srv *redistest.TLSServer) Config {
	t.Helper()
	ca, err := os.ReadFile(srv.Files.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(srv.Files.ClientCert, srv.Files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		URL: "rediss://sessiongate:" + aclPassword + "@" + srv.TLSAddr + "/0",
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}
}

// everyOperation runs, on two nodes, every Redis operation the tier makes:
// connect and subscribe, a miss with its lock and fill, a shared read, a
// stampede waiter, a rejection, a forget, a purge of all, and the
// subscriber's ping on a quiet channel. With denied nil, it also checks
// the nodes shared and revoked as they should. Otherwise the user's rules
// lack something, a refused command may break the nodes, and only what
// Redis logged is of interest: it returns as soon as denied reports that
// Redis refused something, as the operations left would only take time.
func everyOperation(t *testing.T, cfg Config, denied func() bool) {
	t.Helper()
	check := denied == nil
	refused := func() bool { return denied != nil && denied() }
	b := newCounting(t, 150*time.Millisecond)
	mk := func() node {
		c := cfg
		c.Secret, c.Backend, c.Timeout = testSecret, "backend1", 500*time.Millisecond
		tier, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tier.Close() })
		cl, err := sessionctx.New(sessionctx.Config{Dialect: "http", URL: b.url, Tokens: []sessionctx.TokenSource{tokenSource}, Tier: tier})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for !tier.Stats().Connected && !refused() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if check && !tier.Stats().Connected {
			t.Fatal("tier did not connect through TLS with the ACL user")
		}
		return node{cl, tier}
	}
	a := mk()
	if refused() {
		return
	}
	c := mk()
	if refused() {
		return
	}
	ctx := context.Background()
	// A stampede: both nodes at once, one takes the lock, the other
	// waits for its fill.
	done := make(chan error, 2)
	for _, n := range []node{a, c} {
		go func() { _, err := n.Resolve(ctx, "good-acl"); done <- err }()
	}
	for range 2 {
		if err := <-done; err != nil && check {
			t.Fatal(err)
		}
	}
	_, _ = c.Resolve(ctx, "good-acl")
	_, _ = a.Resolve(ctx, "bad-acl")
	_, _ = c.Resolve(ctx, "bad-acl")
	if refused() {
		return
	}
	if check {
		if got := b.calls.Load(); got != 2 {
			t.Fatalf("service calls = %d, want 2 (one per token across two nodes)", got)
		}
		if st := c.tier.Stats(); st.L2Hits == 0 {
			t.Fatalf("node B stats %+v: no L2 hit", st)
		}
	}
	recv := c.tier.Stats().InvalidationsReceived
	a.Forget(key("good-acl"))
	a.Purge()
	deadline := time.Now().Add(2 * time.Second)
	for c.tier.Stats().InvalidationsReceived < recv+2 && !refused() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if refused() {
		return
	}
	if check && c.tier.Stats().InvalidationsReceived < recv+2 {
		t.Fatalf("node B heard %d of 2 invalidations", c.tier.Stats().InvalidationsReceived-recv)
	}
	// A quiet channel: the subscriber pings after a second of silence.
	for quiet := time.Now().Add(1500 * time.Millisecond); time.Now().Before(quiet) && !refused(); {
		time.Sleep(10 * time.Millisecond)
	}
	if check && !c.tier.Stats().Connected {
		t.Fatal("node B lost its subscription on a quiet channel")
	}
}

// TestTierTLSWithDocumentedACL runs the tier through a TLS-only Redis
// port (client certificate required) as the ACL user of docs/cluster.md:
// everything works and Redis refuses nothing. Then each rule of the line
// is taken out in turn, and Redis must refuse something each time: the
// documented line is enough and has nothing spare.
func TestTierTLSWithDocumentedACL(t *testing.T) {
	t.Parallel()
	files := redistest.NewTLSFiles(t)
	srv := redistest.StartTLS(t, files)
	admin := srv.Client(nil)
	rules := documentedACL(t)
	cfg := tlsTierConfig(t, srv)

	setACL(t, admin, rules)
	everyOperation(t, cfg, nil)
	if denied := aclDenials(t, admin); len(denied) > 0 {
		t.Fatalf("with the documented ACL %v, Redis refused:\n%s", rules, strings.Join(denied, "\n"))
	}

	if testing.Short() {
		return
	}
	for i, r := range rules {
		if r == "reset" || r == "on" || strings.HasPrefix(r, ">") {
			continue
		}
		t.Run("without "+r, func(t *testing.T) {
			less := append(append([]string{}, rules[:i]...), rules[i+1:]...)
			setACL(t, admin, less)
			everyOperation(t, cfg, func() bool { return len(aclDenials(t, admin)) > 0 })
			if denied := aclDenials(t, admin); len(denied) == 0 {
				t.Fatalf("without %s, Redis refused nothing: the rule is spare in the documented ACL", r)
			}
		})
	}
}

// TestTierTLSRefusesWrongPeers: a server certificate from a CA the tier
// does not trust, or a client certificate the server does not, leaves
// the tier disconnected (the node goes on alone), never connected to a
// server it cannot verify.
func TestTierTLSRefusesWrongPeers(t *testing.T) {
	t.Parallel()
	files := redistest.NewTLSFiles(t)
	srv := redistest.StartTLS(t, files)
	setACL(t, srv.Client(nil), documentedACL(t))
	good := tlsTierConfig(t, srv)
	other, err := os.ReadFile(files.OtherCA)
	if err != nil {
		t.Fatal(err)
	}
	otherPool := x509.NewCertPool()
	otherPool.AppendCertsFromPEM(other)
	otherCert, err := tls.LoadX509KeyPair(files.OtherClient, files.OtherKey)
	if err != nil {
		t.Fatal(err)
	}
	// Every wrong peer's tier tries at once, and is looked at after the
	// same 700ms.
	tiers := map[string]*Tier{}
	for name, tc := range map[string]*tls.Config{
		"server CA not trusted":        {RootCAs: otherPool, Certificates: good.TLS.Certificates},
		"client certificate refused":   {RootCAs: good.TLS.RootCAs, Certificates: []tls.Certificate{otherCert}},
		"no client certificate":        {RootCAs: good.TLS.RootCAs},
		"server name does not match":   {RootCAs: good.TLS.RootCAs, Certificates: good.TLS.Certificates, ServerName: "other.test"},
		"system roots (no trust pool)": nil,
	} {
		cfg := good
		cfg.TLS = tc
		cfg.Secret, cfg.Backend = testSecret, "backend1"
		tier, err := New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		defer tier.Close()
		tiers[name] = tier
	}
	time.Sleep(700 * time.Millisecond)
	for name, tier := range tiers {
		t.Run(name, func(t *testing.T) {
			if tier.Stats().Connected {
				t.Fatal("the tier connected")
			}
		})
	}
	// The server name the certificate does carry works with an address
	// that is not it.
	cfg := good
	cfg.TLS = good.TLS.Clone()
	cfg.TLS.ServerName = files.ServerName
	cfg.Secret, cfg.Backend = testSecret, "backend1"
	tier, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tier.Close()
	waitFor(t, 3*time.Second, "connected with tls server name "+files.ServerName, func() bool { return tier.Stats().Connected })
}

// clusterModeRules are what docs/cluster.md says mode cluster adds to
// the ACL line.
var clusterModeRules = []string{"+cluster|slots", "+command"}

// TestTierClusterModeWithDocumentedACL: on a Redis Cluster every master
// has the documented ACL user plus the rules the docs add for mode
// cluster; the tier works with Redis refusing nothing, and without any
// one of the added rules Redis refuses something.
func TestTierClusterModeWithDocumentedACL(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/cluster.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range clusterModeRules {
		if !strings.Contains(string(doc), "`"+r+"`") {
			t.Fatalf("docs/cluster.md does not give %s for mode cluster", r)
		}
	}
	rc := redistest.StartCluster(t)
	rules := documentedACL(t)
	var admins []*redis.Client
	var urls []string
	for _, n := range rc.Nodes {
		admins = append(admins, n.Client(nil))
		urls = append(urls, "redis://sessiongate:"+aclPassword+"@"+n.Addr)
	}
	set := func(rules []string) {
		for _, a := range admins {
			setACL(t, a, rules)
		}
	}
	denials := func() []string {
		var all []string
		for _, a := range admins {
			all = append(all, aclDenials(t, a)...)
		}
		return all
	}
	cfg := Config{URLs: urls, Mode: ModeCluster}
	set(append(append([]string{}, rules...), clusterModeRules...))
	everyOperation(t, cfg, nil)
	if d := denials(); len(d) > 0 {
		t.Fatalf("with the documented ACL for mode cluster, Redis refused:\n%s", strings.Join(d, "\n"))
	}
	for i, r := range clusterModeRules {
		less := append(append([]string{}, rules...), clusterModeRules[:i]...)
		set(append(less, clusterModeRules[i+1:]...))
		everyOperation(t, cfg, func() bool { return len(denials()) > 0 })
		if d := denials(); len(d) == 0 {
			t.Fatalf("without %s, Redis refused nothing: the docs add a spare rule for mode cluster", r)
		}
	}
}

// TestTierSentinelModeWithDocumentedACL: in mode sentinel the URLs'
// credentials are the master's: with the documented ACL user on the
// master and its replica, the tier finds the master through the
// Sentinel and works with Redis refusing nothing.
func TestTierSentinelModeWithDocumentedACL(t *testing.T) {
	t.Parallel()
	rs := redistest.StartSentinel(t, 1)
	rules := documentedACL(t)
	admins := []*redis.Client{rs.Master.Client(nil), rs.Replica.Client(nil)}
	for _, a := range admins {
		setACL(t, a, rules)
	}
	var urls []string
	for _, u := range rs.URLs() {
		urls = append(urls, strings.Replace(u, "redis://", "redis://sessiongate:"+aclPassword+"@", 1))
	}
	everyOperation(t, Config{URLs: urls, Mode: ModeSentinel, MasterName: redistest.MasterName}, nil)
	for _, a := range admins {
		if d := aclDenials(t, a); len(d) > 0 {
			t.Fatalf("in mode sentinel with the documented ACL, Redis refused:\n%s", strings.Join(d, "\n"))
		}
	}
}
