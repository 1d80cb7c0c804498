package testlab

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// One build per module per test binary, in one temporary directory RemoveBuilt deletes.
var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// ModuleBinary builds modules/<name> as `make build` does (static, trimmed), once per
// test run, and returns the binary's path.
func ModuleBinary(t testing.TB, name string) string {
	t.Helper()
	return build(t, name, "./modules/"+name)
}

// MultiCallBinary builds ./modules (every module in one binary) for GOARCH goarch, as
// `make build` does, once per test run per architecture.
func MultiCallBinary(t testing.TB, goarch string) string {
	t.Helper()
	return build(t, "incus-access-modules-"+goarch, "./modules", "GOOS=linux", "GOARCH="+goarch)
}

// build runs go build for pkg once per test binary, keyed by name, in buildDir.
func build(t testing.TB, name, pkg string, env ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if path, ok := built[name]; ok {
		return path
	}
	if buildDir == "" {
		dir, err := os.MkdirTemp("", "incus-access-modules-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = dir
	}
	path := filepath.Join(buildDir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", path, pkg)
	cmd.Dir = RepoRoot()
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[name] = path
	return path
}

// RunModule runs the module's binary as Ansible does (one args file in argv[1]) and
// returns the one JSON object it printed and the raw output. The exit status must agree
// with the result's `failed`.
func RunModule(t testing.TB, name string, args map[string]any) (map[string]any, string) {
	t.Helper()
	data, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	argsFile := filepath.Join(t.TempDir(), "args")
	if err := os.WriteFile(argsFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, runErr := exec.Command(ModuleBinary(t, name), argsFile).Output()
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("output is not one JSON object (%v): %s", err, out)
	}
	if failed, _ := res["failed"].(bool); failed != (runErr != nil) {
		t.Fatalf("failed=%v but exit error %v", failed, runErr)
	}
	return res, string(out)
}

// RemoveBuilt deletes the binaries ModuleBinary built; call it from TestMain after m.Run.
func RemoveBuilt() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// ModuleMain is the TestMain of a package whose tests run built module binaries: the
// tests, then the binaries removed.
func ModuleMain(m *testing.M) {
	code := m.Run()
	RemoveBuilt()
	os.Exit(code)
}

// Msg is a module result's msg ("" when it has none).
func Msg(res map[string]any) string { s, _ := res["msg"].(string); return s }
