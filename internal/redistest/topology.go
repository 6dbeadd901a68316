package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// CLIPath is where Debian's redis-tools package installs redis-cli, which
// creates a Redis Cluster from its nodes.
const CLIPath = "/usr/bin/redis-cli"

// Cluster is a Redis Cluster of three masters (no replicas), each a
// redis-server of the test with cluster mode on, its slots assigned by
// `redis-cli --cluster create`. Nothing is persisted.
type Cluster struct {
	Nodes []*Server
}

// StartCluster runs a three-master Redis Cluster for the test and waits
// until every node serves every slot. args are extra redis-server options
// given to each node.
func StartCluster(t testing.TB, args ...string) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Redis Cluster: not part of the fast gate (go test -short)")
	}
	cli := requireTool(t, CLIPath, "redis-tools")
	c := &Cluster{}
	for range 3 {
		nodeArgs := append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			// The bus port is its own free port: the default, port+10000,
			// may be past 65535 or taken.
			"--cluster-port", strconv.Itoa(freePort(t)),
			"--cluster-node-timeout", "2000",
		}, args...)
		c.Nodes = append(c.Nodes, Start(t, nodeArgs...))
	}
	create := []string{"--cluster", "create"}
	for _, n := range c.Nodes {
		create = append(create, n.Addr)
	}
	create = append(create, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, create...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Every node must know the whole map before a client asks it.
	for _, n := range c.Nodes {
		cl := n.Client(nil)
		waitUntil(t, 15*time.Second, fmt.Sprintf("cluster node %s sees the cluster whole", n.Addr), func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			shards, err := cl.ClusterShards(ctx).Result()
			if err != nil || len(shards) != 3 {
				return false
			}
			for _, sh := range shards {
				if len(sh.Slots) == 0 {
					return false
				}
			}
			return true
		})
	}
	return c
}

// URLs are the redis:// URLs of the nodes, database 0, without
// credentials.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL()
	}
	return urls
}

// Client is a go-redis cluster client of the nodes, closed at the end of
// the test.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { cl.Close() })
	return cl
}

// SentinelPath is where Debian's redis-sentinel package installs the
// Sentinel.
const SentinelPath = "/usr/bin/redis-sentinel"

// MasterName is the name the test's Sentinels monitor the master by.
const MasterName = "sessiongate-test"

// Sentinel is a master, one replica of it, and Sentinels watching them,
// configured to fail over quickly: the master is taken down 500ms after
// it stops answering.
type Sentinel struct {
	Master, Replica *Server
	Sentinels       []*Server
}

// StartSentinel runs a master, its replica and n Sentinels (1 or 3) for
// the test, and waits until every Sentinel knows the replica (and the
// other Sentinels), so that a failover can start as soon as the master
// dies. args are extra redis-server options for the master and replica.
func StartSentinel(t testing.TB, n int, args ...string) *Sentinel {
	t.Helper()
	// The replica's sync starts at once: by default Redis 7 waits 5
	// seconds for more replicas to share a diskless transfer, and here
	// there is only one.
	args = append([]string{"--repl-diskless-sync-delay", "0"}, args...)
	s := &Sentinel{Master: Start(t, args...)}
	host, port, _ := net.SplitHostPort(s.Master.Addr)
	s.Replica = Start(t, append(append([]string{}, args...), "--replicaof", host, port)...)
	replica := s.Replica.Client(nil)
	waitUntil(t, 15*time.Second, "the replica in sync with the master", func() bool {
		info, err := replica.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	quorum := n/2 + 1
	for range n {
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		lines := []string{
			"sentinel monitor " + MasterName + " " + host + " " + port + " " + strconv.Itoa(quorum),
			"sentinel down-after-milliseconds " + MasterName + " 500",
			"sentinel failover-timeout " + MasterName + " 3000",
			"sentinel parallel-syncs " + MasterName + " 1",
		}
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.Sentinels = append(s.Sentinels, start(t, conf, nil))
	}
	for _, sn := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr})
		t.Cleanup(func() { sc.Close() })
		waitUntil(t, 20*time.Second, "sentinel "+sn.Addr+" knows the replica and the other sentinels", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			replicas, err := sc.Replicas(ctx, MasterName).Result()
			if err != nil || len(replicas) != 1 || strings.Contains(fmt.Sprint(replicas[0]), "s_down") {
				return false
			}
			others, err := sc.Sentinels(ctx, MasterName).Result()
			return err == nil && len(others) == n-1
		})
	}
	return s
}

// URLs are the redis:// URLs of the Sentinels.
func (s *Sentinel) URLs() []string {
	urls := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		urls[i] = "redis://" + sn.Addr
	}
	return urls
}

// MasterAddr is the master's address as the first Sentinel names it now.
func (s *Sentinel) MasterAddr(t testing.TB) string {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0].Addr})
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	addr, err := sc.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		t.Fatalf("sentinel get-master-addr-by-name: %v", err)
	}
	return net.JoinHostPort(addr[0], addr[1])
}

// KillMaster kills the master (SIGKILL) and waits until the Sentinels
// have promoted the replica and it answers as master. It returns how long
// that took.
func (s *Sentinel) KillMaster(t testing.TB) time.Duration {
	t.Helper()
	start := time.Now()
	s.Master.Kill()
	waitUntil(t, 30*time.Second, "the sentinels promote the replica", func() bool {
		return s.MasterAddr(t) == s.Replica.Addr
	})
	replica := s.Replica.Client(nil)
	waitUntil(t, 10*time.Second, "the promoted replica answers as master", func() bool {
		info, err := replica.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	})
	return time.Since(start)
}

// requireTool is the path of a tool the test needs, which skips the test
// when it is missing (and fails it under CI).
func requireTool(t testing.TB, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI (install the %s package): %v", path, pkg, err)
		}
		t.Skipf("%s not installed (apt-get install %s); the cluster tests run in CI", path, pkg)
	}
	return path
}

func waitUntil(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
