package libvirtcert

import (
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/testlab"
)

// files is a test's three target files under a temp dir, owned by the test's user.
type files struct {
	Dir, Cert, Key, CA string
}

func newFiles(t testing.TB, dir string) files {
	return files{Dir: dir, Cert: filepath.Join(dir, "clientcert.pem"), Key: filepath.Join(dir, "private", "clientkey.pem"), CA: filepath.Join(dir, "cacert.pem")}
}

func (f files) args() map[string]any {
	return map[string]any{"cert_path": f.Cert, "key_path": f.Key, "ca_cert_path": f.CA,
		"owner": strconv.Itoa(os.Getuid()), "group": strconv.Itoa(os.Getgid())}
}

// snapshot is every file under dir with its content, to show that a failed run touched nothing.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = fi.Mode().String() + ":" + string(b)
		}
		return nil
	})
	return out
}

var sidecar []byte

// run executes the module in-process exactly as the binary does (args file in, one
// masked result out).
func run(t testing.TB, args map[string]any, flags ...string) (map[string]any, bool) {
	t.Helper()
	if sidecar == nil {
		var err error
		if sidecar, err = os.ReadFile(filepath.Join(testlab.RepoRoot(), "modules", "libvirt_cert", "libvirt_cert.yml")); err != nil {
			t.Fatal(err)
		}
	}
	all := map[string]any{}
	for k, v := range args {
		all[k] = v
	}
	for _, f := range flags {
		all["_ansible_"+f] = true
	}
	data, _ := json.Marshal(all)
	path := filepath.Join(t.TempDir(), "args.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return ansible.Execute(sidecar, path, Run)
}

func merge(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// mustRun runs the module and fails the test when it fails.
func mustRun(t testing.TB, args map[string]any, flags ...string) map[string]any {
	t.Helper()
	res, failed := run(t, args, flags...)
	if failed {
		t.Fatalf("module failed: %v", res["msg"])
	}
	return res
}

// noSecret fails when any line of a PEM secret shows up in a result.
func noSecret(t testing.TB, res map[string]any, secretPEM string) {
	t.Helper()
	out, _ := json.Marshal(res)
	for _, line := range strings.Split(secretPEM, "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") && strings.Contains(string(out), line) {
			t.Fatalf("a line of a secret is in the result: %s", out)
		}
	}
}

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ParseCerts(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}
