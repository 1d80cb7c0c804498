package libvirtcert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
)

// fill writes a file into dir until the filesystem is full, and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			return path
		}
	}
}

// noLockOrTemp fails when tree (testlab.Tree) names a lock or temp file.
func noLockOrTemp(t *testing.T, tree string) {
	t.Helper()
	for _, line := range strings.Split(tree, "\n") {
		name := filepath.Base(strings.Fields(line + " x")[0])
		if strings.HasSuffix(name, ".lock") || strings.Contains(name, ".tmp-") {
			t.Errorf("left behind: %s", line)
		}
	}
}

// The built binary on a small tmpfs under the managed files: a write the full disk
// refuses fails in one result naming the file and the reason, the old files stay byte
// for byte, no temp file; on the same disk read-only a converged run (and check mode)
// passes with changed=false, a pending change fails naming the file and "read-only".
// No lock file is ever left. Needs root (mount).
func TestTmpfsFullThenReadOnly(t *testing.T) {
	root := testlab.Tmpfs(t, "256k")
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	f := files{Dir: root, Cert: filepath.Join(root, "pki/libvirt/clientcert.pem"), Key: filepath.Join(root, "pki/libvirt/private/clientkey.pem"),
		CA: filepath.Join(root, "pki/CA/cacert.pem")}
	args := merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1"), "install_ca_cert": true})
	renamed := merge(args, map[string]any{"subject": testlab.SeedSubject("host1-renamed")})

	if res, _ := testlab.RunModule(t, "libvirt_cert", args); res["failed"] == true || res["changed"] != true {
		t.Fatalf("first run: %v", res["msg"])
	}
	installed := testlab.Tree(t, filepath.Join(root, "pki"))
	noLockOrTemp(t, installed)

	filler := fill(t, root)
	res, out := testlab.RunModule(t, "libvirt_cert", renamed)
	if res["failed"] != true || !strings.Contains(testlab.Msg(res), f.Key) || !strings.Contains(testlab.Msg(res), "no space left on device") {
		t.Fatalf("a reissue on a full disk: %s", out)
	}
	if now := testlab.Tree(t, filepath.Join(root, "pki")); now != installed {
		t.Fatalf("the full disk run changed the files:\n%s\nwant\n%s", now, installed)
	}
	t.Logf("full: %s", testlab.Msg(res))
	os.Remove(filler)

	testlab.RemountReadOnly(t, root, true)
	defer testlab.RemountReadOnly(t, root, false)
	for _, flags := range [][]string{nil, {"check_mode"}} {
		a := args
		if flags != nil {
			a = merge(args, map[string]any{"_ansible_check_mode": true})
		}
		if res, out := testlab.RunModule(t, "libvirt_cert", a); res["failed"] == true || res["changed"] != false {
			t.Fatalf("converged run %v on a read-only disk: %s", flags, out)
		}
	}
	if res, out := testlab.RunModule(t, "libvirt_cert", merge(renamed, map[string]any{"_ansible_check_mode": true})); res["failed"] == true || res["changed"] != true {
		t.Fatalf("check mode of a pending change on a read-only disk: %s", out)
	}
	res, out = testlab.RunModule(t, "libvirt_cert", renamed)
	if res["failed"] != true || !strings.Contains(testlab.Msg(res), f.Key) || !strings.Contains(testlab.Msg(res), "read-only") {
		t.Fatalf("a pending change on a read-only disk: %s", out)
	}
	t.Logf("read-only: %s", testlab.Msg(res))
	if now := testlab.Tree(t, filepath.Join(root, "pki")); now != installed {
		t.Fatalf("the read-only run changed the files:\n%s", now)
	}
}
