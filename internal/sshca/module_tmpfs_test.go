package sshca

import (
	"fmt"
	"os"
	"os/exec"
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

// The built binary with sshd's files on a small tmpfs: a write the full disk refuses
// fails in one result naming the file and the reason, the old files stay byte for
// byte, no temp file; on the same disk read-only a converged run (and check mode) passes
// with changed=false, a pending change fails naming the file and "read-only". No lock
// file is ever left. Needs root (mount) and sshd (it checks the candidate).
func TestTmpfsFullThenReadOnly(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		if os.Getenv("LAB_REQUIRED") == "1" {
			t.Fatal("/usr/sbin/sshd is not installed (lab/deps.sh installs it)")
		}
		t.Skip("/usr/sbin/sshd is not installed")
	}
	root := testlab.Tmpfs(t, "256k")
	etc := filepath.Join(root, "ssh")
	os.MkdirAll(filepath.Join(etc, "sshd_config.d"), 0o755)
	os.MkdirAll("/run/sshd", 0o755)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(etc, "host_ed25519")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	conf := fmt.Sprintf("Include %s/sshd_config.d/*.conf\nHostKey %s/host_ed25519\nUsePAM yes\n", etc, etc)
	if err := os.WriteFile(filepath.Join(etc, "sshd_config"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _, _ := testlab.NewSSHKey(t, "ca-a")
	b, _, _ := testlab.NewSSHKey(t, "ca-b")
	keysFile := filepath.Join(etc, "trusted-user-ca-keys.pem")
	args := map[string]any{"sshd_config": filepath.Join(etc, "sshd_config"), "keys_file": keysFile,
		"principals_dir": filepath.Join(etc, "auth_principals"), "principals": map[string]any{"root": []any{"root"}},
		"reload": false, "ca_keys": []any{a}}
	pending := map[string]any{}
	for k, v := range args {
		pending[k] = v
	}
	pending["ca_keys"] = []any{a, b}
	check := func(m map[string]any) map[string]any {
		out := map[string]any{"_ansible_check_mode": true}
		for k, v := range m {
			out[k] = v
		}
		return out
	}

	if res, out := testlab.RunModule(t, "ssh_ca_trust", args); res["failed"] == true || res["changed"] != true {
		t.Fatalf("first run: %s", out)
	}
	installed := testlab.Tree(t, etc)
	for _, bad := range []string{".lock", ".tmp-"} {
		if strings.Contains(installed, bad) {
			t.Fatalf("left behind (%s):\n%s", bad, installed)
		}
	}

	filler := fill(t, root)
	res, out := testlab.RunModule(t, "ssh_ca_trust", pending)
	if res["failed"] != true || !strings.Contains(testlab.Msg(res), keysFile) || !strings.Contains(testlab.Msg(res), "no space left on device") {
		t.Fatalf("a change on a full disk: %s", out)
	}
	if now := testlab.Tree(t, etc); now != installed {
		t.Fatalf("the full disk run changed the files:\n%s\nwant\n%s", now, installed)
	}
	t.Logf("full: %s", testlab.Msg(res))
	os.Remove(filler)

	testlab.RemountReadOnly(t, root, true)
	defer testlab.RemountReadOnly(t, root, false)
	for _, a := range []map[string]any{args, check(args)} {
		if res, out := testlab.RunModule(t, "ssh_ca_trust", a); res["failed"] == true || res["changed"] != false {
			t.Fatalf("converged run on a read-only disk: %s", out)
		}
	}
	if res, out := testlab.RunModule(t, "ssh_ca_trust", check(pending)); res["failed"] == true || res["changed"] != true {
		t.Fatalf("check mode of a pending change on a read-only disk: %s", out)
	}
	res, out = testlab.RunModule(t, "ssh_ca_trust", pending)
	if res["failed"] != true || !strings.Contains(testlab.Msg(res), keysFile) || !strings.Contains(testlab.Msg(res), "read-only") {
		t.Fatalf("a pending change on a read-only disk: %s", out)
	}
	t.Logf("read-only: %s", testlab.Msg(res))
	if now := testlab.Tree(t, etc); now != installed {
		t.Fatalf("the read-only run changed the files:\n%s", now)
	}
}
