package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// npmInstalls makes one `npm ci` per package directory, however many
// tests need it.
var npmInstalls sync.Map // dir -> func() error

// needNodePackage makes sure the npm package module is installed under
// dir, pinned by dir's package-lock.json: where it is missing, it runs
// `npm ci --ignore-scripts` there, as .ci/run does. Without node or npm
// the test skips, except in CI, where it fails.
func needNodePackage(t *testing.T, dir, module string) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing in CI (.ci/run installs nodejs and npm): %v", tool, err)
			}
			t.Skipf("%s not installed (apt-get install nodejs npm): %v", tool, err)
		}
	}
	installed := filepath.Join(dir, "node_modules", module, "package.json")
	once, _ := npmInstalls.LoadOrStore(dir, sync.OnceValue(func() error {
		if _, err := os.Stat(installed); err == nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// --ignore-scripts: no package's install script runs (the Amplify
		// SDK's keytar would need libsecret to build, and is not used).
		cmd := exec.CommandContext(ctx, "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		return nil
	}))
	if err := once.(func() error)(); err != nil {
		t.Fatalf("npm ci in %s: %v", dir, err)
	}
	if _, err := os.Stat(installed); err != nil {
		t.Fatalf("npm ci in %s installed no %s: %v", dir, module, err)
	}
}
