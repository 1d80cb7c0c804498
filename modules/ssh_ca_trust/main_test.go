package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/incus-access/incus-access/internal/testlab"
)

func TestMain(m *testing.M) { testlab.ModuleMain(m) }

// runModule runs the built ssh_ca_trust binary as Ansible does.
func runModule(t *testing.T, args map[string]any) (map[string]any, string) {
	t.Helper()
	return testlab.RunModule(t, "ssh_ca_trust", args)
}

// sshdDir is a Debian-like sshd configuration in a temp dir (main file including a
// drop-in directory, its own host key, so `sshd -t` accepts it); no sshd runs.
type sshdDir struct{ dir, config, keysFile, principalsDir string }

func newSSHDDir(t *testing.T) sshdDir {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Skip("/usr/sbin/sshd is not installed (the module checks its candidate with sshd -t)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_ed25519")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	os.MkdirAll(filepath.Join(dir, "sshd_config.d"), 0o755)
	s := sshdDir{dir: dir, config: filepath.Join(dir, "sshd_config"), keysFile: filepath.Join(dir, "trusted-user-ca-keys.pem"),
		principalsDir: filepath.Join(dir, "auth_principals")}
	conf := fmt.Sprintf("Include %s/sshd_config.d/*.conf\nHostKey %s/host_ed25519\nPasswordAuthentication no\n", dir, dir)
	if err := os.WriteFile(s.config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// args point the module at this directory; reload off (no sshd runs) unless extra says.
func (s sshdDir) args(extra map[string]any) map[string]any {
	a := map[string]any{"sshd_config": s.config, "keys_file": s.keysFile, "principals_dir": s.principalsDir,
		"pid_file": filepath.Join(s.dir, "sshd.pid"), "principals": map[string]any{"root": []any{"root"}}, "reload": false}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

// caKey is a new CA: its public key line and fingerprint, and its private key.
func caKey(t *testing.T, comment string) (line, fingerprint, private string) {
	t.Helper()
	line, private, signer := testlab.NewSSHKey(t, comment)
	return line, ssh.FingerprintSHA256(signer.PublicKey()), private
}

// Inline CA key: check mode reports the change (fingerprint, diff of the drop-in) and
// writes nothing; the real run writes exactly that; the next run changes nothing.
func TestBinaryInlineKeyCheckModeThenApplyThenNothing(t *testing.T) {
	s := newSSHDDir(t)
	line, fp, _ := caKey(t, "inline-ca")
	before := testlab.Tree(t, s.dir)

	res, out := runModule(t, s.args(map[string]any{"ca_keys": []any{line}, "_ansible_check_mode": true, "_ansible_diff": true}))
	if res["changed"] != true || res["reload_required"] != true || res["reloaded"] != false {
		t.Fatalf("check mode: %s", out)
	}
	if fps, _ := res["fingerprints"].([]any); len(fps) != 1 || fps[0] != fp {
		t.Fatalf("check mode fingerprints %v, want [%s]", res["fingerprints"], fp)
	}
	if diff, _ := json.Marshal(res["diff"]); !strings.Contains(string(diff), "TrustedUserCAKeys "+s.keysFile) {
		t.Fatalf("check mode diff does not show the TrustedUserCAKeys line: %s", diff)
	}
	if after := testlab.Tree(t, s.dir); after != before {
		t.Fatalf("check mode wrote files:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	res, out = runModule(t, s.args(map[string]any{"ca_keys": []any{line}}))
	if res["changed"] != true || res["failed"] == true || res["reload_required"] != true {
		t.Fatalf("apply: %s", out)
	}
	keys, err := os.ReadFile(s.keysFile)
	if err != nil || !strings.Contains(string(keys), strings.Fields(line)[1]) {
		t.Fatalf("keys file %s lacks the CA key (%v): %s", s.keysFile, err, keys)
	}
	if res["config_file"] != filepath.Join(s.dir, "sshd_config.d", filepath.Base(res["config_file"].(string))) {
		t.Fatalf("the configuration went to %v, not a drop-in of %s", res["config_file"], s.dir)
	}
	applied := testlab.Tree(t, s.dir)
	res, out = runModule(t, s.args(map[string]any{"ca_keys": []any{line}}))
	if res["changed"] != false || testlab.Tree(t, s.dir) != applied {
		t.Fatalf("second run changed something: %s", out)
	}
}

// A bad key among good ones: one failed result naming ca_keys[i] and its line, and not a
// file written (nor a lock or temp file left in the way of the next run).
func TestBinaryBadKeyFailsNamingItAndChangesNothing(t *testing.T) {
	s := newSSHDDir(t)
	good, _, _ := caKey(t, "good-ca")
	before := testlab.Tree(t, s.dir)
	res, out := runModule(t, s.args(map[string]any{"ca_keys": []any{good, "# rotated in\nssh-ed25519 AAAAnotakey bad-ca"}}))
	if res["failed"] != true || res["changed"] != false {
		t.Fatalf("a bad key did not fail cleanly: %s", out)
	}
	msg, _ := res["msg"].(string)
	if !strings.HasPrefix(msg, "ca_keys[1] line 2: ") || !strings.Contains(msg, "nothing was changed") || strings.Count(msg, "\n") != 0 {
		t.Fatalf("msg %q: want one line naming ca_keys[1] line 2", msg)
	}
	if after := testlab.Tree(t, s.dir); after != before {
		t.Fatalf("a failed run wrote files:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// A private key given as a CA key: refused, naming where it is, and no line of it appears
// anywhere in the output (msg, invocation, anything).
func TestBinaryPrivateKeyIsRefusedAndNeverPrinted(t *testing.T) {
	s := newSSHDDir(t)
	good, _, _ := caKey(t, "good-ca")
	_, _, private := caKey(t, "leaked-ca")
	before := testlab.Tree(t, s.dir)
	res, out := runModule(t, s.args(map[string]any{"ca_keys": []any{good, private}, "_ansible_diff": true}))
	msg, _ := res["msg"].(string)
	if res["failed"] != true || !strings.HasPrefix(msg, "ca_keys[1] line 1: ") || !strings.Contains(msg, "private key") {
		t.Fatalf("a private key was not refused by name: %s", out)
	}
	for _, l := range strings.Split(private, "\n") {
		if len(l) >= 16 && !strings.HasPrefix(l, "-----") && strings.Contains(out, l) {
			t.Fatalf("the output shows a line of the private key: %s", out)
		}
	}
	if after := testlab.Tree(t, s.dir); after != before {
		t.Fatalf("a refused run wrote files:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
