package sshca

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
	"golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) { testlab.ModuleMain(m) }

// runModule runs the built ssh_ca_trust binary as Ansible does.
func runModule(t *testing.T, args map[string]any) (map[string]any, string) {
	t.Helper()
	return testlab.RunModule(t, "ssh_ca_trust", args)
}

// labVault is the lab with its OpenBao server up.
func labVault(t *testing.T) *testlab.Lab {
	t.Helper()
	l := testlab.Get(t)
	l.RequireVault(t)
	return l
}

// moduleArgs are the module options that point it at this sshd.
func moduleArgs(s *testlab.SSHD, extra map[string]any) map[string]any {
	a := map[string]any{"sshd_config": s.Config, "keys_file": s.KeysFile, "principals_dir": s.PrincipalsDir,
		"pid_file": s.PIDFile, "principals": map[string]any{"root": []any{"root"}, "rocky": []any{"rocky"}}}
	for k, v := range extra {
		a[k] = v
	}
	return a
}

func fingerprintOf(t *testing.T, line string) string {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(pub)
}

// The module makes a real sshd trust the Vault CA; certificates OpenBao signs with the
// lab's roles log in as the user their principals name (root as root, rocky as rocky); a second run changes nothing and
// does not reload sshd.
func TestLabTrustVaultCAAndLogIn(t *testing.T) {
	lab := labVault(t)
	s := testlab.StartSSHD(t)
	caPub := lab.SSHCAPublicKey(t)
	vaultOpt := map[string]any{"addr": lab.VaultAddr, "auth": "none"}

	// check mode first: reports the change, writes nothing, does not reload
	before := s.Snapshot(t)
	res, out := runModule(t, moduleArgs(s, map[string]any{"vault": vaultOpt, "_ansible_check_mode": true, "_ansible_diff": true}))
	if res["changed"] != true || res["reloaded"] != false || s.Snapshot(t) != before || s.Reloads() != 0 {
		t.Fatalf("check mode: %s", out)
	}
	if diffs, _ := json.Marshal(res["diff"]); !strings.Contains(string(diffs), "TrustedUserCAKeys "+s.KeysFile) {
		t.Fatalf("check mode diff lacks the drop-in: %s", diffs)
	}

	res, out = runModule(t, moduleArgs(s, map[string]any{"vault": vaultOpt}))
	fp := fingerprintOf(t, caPub)
	if res["changed"] != true || res["reloaded"] != true || res["reload_required"] != false || res["config_mode"] != "drop-in" {
		t.Fatalf("first run: %s", out)
	}
	if fps := res["fingerprints"].([]any); len(fps) != 1 || fps[0] != fp {
		t.Fatalf("fingerprints %v, want [%s]", fps, fp)
	}
	if s.Reloads() != 1 {
		t.Fatalf("sshd reloaded %d times, want 1", s.Reloads())
	}
	s.WaitListening(t)

	user := testlab.NewUserKey(t)
	infra := user.WithCert(t, lab.SignSSHKey(t, "infra-role", user.Pub, "rocky", ""))
	admin := user.WithCert(t, lab.SignSSHKey(t, "admin-role", user.Pub, "root,rocky", ""))
	developer := user.WithCert(t, lab.SignSSHKey(t, "developer-role", user.Pub, "", ""))
	adminRockyOnly := user.WithCert(t, lab.SignSSHKey(t, "admin-role", user.Pub, "rocky", ""))
	unsigned := user.WithCert(t, "")
	short := user.WithCert(t, lab.SignSSHKey(t, "infra-role", user.Pub, "rocky", "1s"))

	s.MustLogin(t, "rocky", infra, "infra-role cert")
	s.MustLogin(t, "rocky", developer, "developer-role cert")
	s.MustLogin(t, "root", admin, "admin-role cert")
	s.MustBeRefused(t, "root", infra, "infra-role cert for root")
	s.MustBeRefused(t, "root", adminRockyOnly, "admin-role cert without the principal root")
	s.MustBeRefused(t, "rocky", unsigned, "unsigned key")
	time.Sleep(2500 * time.Millisecond)
	s.MustBeRefused(t, "rocky", short, "expired cert")
	if log, _ := os.ReadFile(s.Log); !strings.Contains(string(log), "expired") {
		t.Fatalf("sshd log does not say the certificate expired:\n%s", testlab.Tail(string(log), 10))
	}

	res, out = runModule(t, moduleArgs(s, map[string]any{"vault": vaultOpt}))
	if res["changed"] != false || res["reloaded"] != false || res["reload_required"] != false || s.Reloads() != 1 {
		t.Fatalf("second run: reloads %d, %s", s.Reloads(), out)
	}

	// state=reloaded reloads once more; state=absent removes the trust.
	res, out = runModule(t, moduleArgs(s, map[string]any{"state": "reloaded"}))
	if res["changed"] != true || res["reloaded"] != true || s.Reloads() != 2 {
		t.Fatalf("state=reloaded: reloads %d, %s", s.Reloads(), out)
	}
	s.WaitListening(t)
	res, out = runModule(t, moduleArgs(s, map[string]any{"state": "absent"}))
	if res["changed"] != true || res["reloaded"] != true {
		t.Fatalf("absent: %s", out)
	}
	s.WaitListening(t)
	if _, err := os.Stat(s.KeysFile); !os.IsNotExist(err) {
		t.Fatalf("keys file still there after absent: %v", err)
	}
	if entries, _ := os.ReadDir(s.DropIns); len(entries) != 0 {
		t.Fatalf("drop-ins left after absent: %v", entries)
	}
	s.MustBeRefused(t, "rocky", infra, "infra-role cert after state=absent")
}

// Rotation: exclusive=false adds a second CA and both sign valid logins; exclusive=true
// with the new CA alone drops the old one.
func TestLabRotationWithExclusiveFalse(t *testing.T) {
	lab := labVault(t)
	s := testlab.StartSSHD(t)
	caFile := filepath.Join(t.TempDir(), "new_ca")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "new-ca", "-f", caFile).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	newCA, _ := os.ReadFile(caFile + ".pub")

	if res, out := runModule(t, moduleArgs(s, map[string]any{"vault": map[string]any{"addr": lab.VaultAddr}})); res["changed"] != true {
		t.Fatalf("first run: %s", out)
	}
	res, out := runModule(t, moduleArgs(s, map[string]any{"ca_keys": []any{string(newCA)}, "exclusive": false}))
	if res["changed"] != true || len(res["fingerprints"].([]any)) != 2 {
		t.Fatalf("rotation step 1: %s", out)
	}
	s.WaitListening(t)

	user := testlab.NewUserKey(t)
	fromVault := user.WithCert(t, lab.SignSSHKey(t, "infra-role", user.Pub, "rocky", ""))
	if out, err := exec.Command("ssh-keygen", "-q", "-s", caFile, "-I", "rotation-test", "-n", "rocky", "-V", "-5m:+1h", user.Path+".pub").CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -s: %v %s", err, out)
	}
	localCert, _ := os.ReadFile(user.Path + "-cert.pub")
	fromNew := user.WithCert(t, string(localCert))
	s.MustLogin(t, "rocky", fromVault, "old (Vault) CA during rotation")
	s.MustLogin(t, "rocky", fromNew, "new CA during rotation")

	res, out = runModule(t, moduleArgs(s, map[string]any{"ca_keys": []any{string(newCA)}}))
	if res["changed"] != true || len(res["fingerprints"].([]any)) != 1 || !strings.Contains(strings.Join(toStrings(res["changes"]), "\n"), "stop trusting ssh-rsa") {
		t.Fatalf("rotation step 2: %s", out)
	}
	s.WaitListening(t)
	s.MustLogin(t, "rocky", fromNew, "new CA after rotation")
	s.MustBeRefused(t, "rocky", fromVault, "old CA after rotation")
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

// Every bad input fails with one clear message, leaves every file as it was, does not
// reload sshd, and never prints the token or the secret_id.
func TestLabBadInputsChangeNothingAndHideSecrets(t *testing.T) {
	lab := labVault(t)
	s := testlab.StartSSHD(t)
	token := lab.ChildToken(t, "incus-access")
	if res, out := runModule(t, moduleArgs(s, map[string]any{"vault": map[string]any{"addr": lab.VaultAddr, "auth": "token", "token": token}})); res["changed"] != true {
		t.Fatalf("setup run: %s", out)
	}
	s.WaitListening(t)

	user := testlab.NewUserKey(t)
	privKey, _ := os.ReadFile(user.Path)
	cert := lab.SignSSHKey(t, "infra-role", user.Pub, "rocky", "")
	body := strings.Fields(user.Pub)[1]
	emptySSH := lab.VaultMount(t, "ssh")
	kv := lab.VaultMount(t, "kv")
	lab.Vault(t, "POST", kv+"/config/ca", map[string]any{"public_key": ""})
	rootish := lab.ChildToken(t, "root")
	wrong := "hvs.wrong-" + strings.ReplaceAll(body[20:44], "/", "x")
	secretID := "0bad5ec2-e71d-4c2e-9f0d-" + "8f2d6a1b3c4d"

	vault := func(kv ...any) map[string]any {
		m := map[string]any{"addr": lab.VaultAddr}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name string
		args map[string]any
		want string
	}{
		{"private key", map[string]any{"ca_keys": []any{user.Pub, string(privKey)}}, "ca_keys[1] line 1: is a private key (not shown)"},
		{"certificate", map[string]any{"ca_keys": []any{cert}}, "ca_keys[0] line 1: is an SSH certificate (ssh-ed25519-cert-v01@openssh.com"},
		{"unknown type", map[string]any{"ca_keys": []any{"ssh-foo " + body}}, `ca_keys[0] line 1: unknown key type "ssh-foo"`},
		{"garbage", map[string]any{"ca_keys": []any{user.Pub + "\nnot a key at all"}}, "ca_keys[0] line 2: is not an OpenSSH public key"},
		{"unreachable", map[string]any{"vault": vault("addr", "http://127.0.0.1:1", "auth", "token", "token", token)}, "vault ssh-client-signer: cannot reach Vault at http://127.0.0.1:1"},
		{"403", map[string]any{"vault": vault("auth", "token", "token", wrong)}, "permission denied (HTTP 403) on GET"},
		{"no CA", map[string]any{"vault": vault("auth", "token", "token", rootish, "mount", emptySSH)}, "vault " + emptySSH + " at " + lab.VaultAddr + ": no CA configured on mount " + emptySSH + " (HTTP 400"},
		{"no CA, public_key", map[string]any{"vault": vault("mount", emptySSH)}, "no CA configured on mount " + emptySSH},
		{"empty body", map[string]any{"vault": vault("auth", "token", "token", rootish, "mount", kv)}, "config/ca returned an empty public_key"},
		{"approle bad secret_id", map[string]any{"vault": vault("auth", "approle", "role_id", os.Getenv("LAB_VAULT_ROLE_ID"), "secret_id", secretID)}, "approle login failed"},
		{"approle without secret_id", map[string]any{"vault": vault("auth", "approle", "role_id", "x")}, "auth is approle but all of the following are missing: secret_id found in vault"},
	}
	for _, tc := range cases {
		before, reloads := s.Snapshot(t), s.Reloads()
		res, out := runModule(t, moduleArgs(s, tc.args))
		if res["failed"] != true || !strings.Contains(testlab.Msg(res), tc.want) {
			t.Errorf("%s: want %q in the message: %s", tc.name, tc.want, out)
		}
		if res["changed"] != false || s.Snapshot(t) != before || s.Reloads() != reloads {
			t.Errorf("%s: something changed (changed=%v, reloads %d -> %d)", tc.name, res["changed"], reloads, s.Reloads())
		}
		for _, secret := range []string{token, wrong, rootish, secretID, strings.Split(string(privKey), "\n")[2]} {
			if strings.Contains(out, secret) {
				t.Errorf("%s: a secret appears in the output: %s", tc.name, out)
			}
		}
	}

	// sshd -t rejects the candidate (an admin's broken drop-in, the running sshd still has
	// the old configuration): the module shows sshd's message with the real path.
	broken := filepath.Join(s.DropIns, "05-local.conf")
	os.WriteFile(broken, []byte("PermitRootLogin maybe-later\n"), 0o644)
	before, reloads := s.Snapshot(t), s.Reloads()
	res, out := runModule(t, moduleArgs(s, map[string]any{"ca_keys": []any{user.Pub}}))
	if res["failed"] != true || !strings.Contains(testlab.Msg(res), "rejected by `/usr/sbin/sshd -t`") ||
		!strings.Contains(testlab.Msg(res), broken+" line 1") || !strings.Contains(testlab.Msg(res), "the old files stay") {
		t.Errorf("sshd -t failure: %s", out)
	}
	if s.Snapshot(t) != before || s.Reloads() != reloads {
		t.Errorf("sshd -t failure: files or sshd changed")
	}
	os.Remove(broken)

	// The approle that works: its login token is masked too (it is not known here, but
	// the run must succeed and print neither role credential's secret half).
	res, out = runModule(t, moduleArgs(s, map[string]any{"vault": vault("auth", "approle", "role_id", os.Getenv("LAB_VAULT_ROLE_ID"), "secret_id", os.Getenv("LAB_VAULT_SECRET_ID"))}))
	if res["failed"] == true || strings.Contains(out, os.Getenv("LAB_VAULT_SECRET_ID")) {
		t.Errorf("approle: %s", out)
	}
}

// A conflicting TrustedUserCAKeys before the Include would win in sshd: the module
// comments it out, says so, and sshd then trusts the Vault CA.
func TestLabConflictingLineBeforeIncludeIsDisabled(t *testing.T) {
	lab := labVault(t)
	s := testlab.StartSSHD(t)
	conf, _ := os.ReadFile(s.Config)
	old := "TrustedUserCAKeys " + filepath.Join(s.Dir, "old-ca.pub") + "\n"
	os.WriteFile(s.Config, append([]byte(old), conf...), 0o644)
	res, out := runModule(t, moduleArgs(s, map[string]any{"vault": map[string]any{"addr": lab.VaultAddr}, "backup": true}))
	changes := strings.Join(toStrings(res["changes"]), "\n")
	if res["changed"] != true || !strings.Contains(changes, s.Config+" line 1: comment out \"TrustedUserCAKeys") {
		t.Fatalf("result: %s", out)
	}
	if backups := res["backup_files"].([]any); len(backups) != 1 {
		t.Fatalf("backup_files: %v", backups)
	}
	s.WaitListening(t)
	user := testlab.NewUserKey(t)
	s.MustLogin(t, "rocky", user.WithCert(t, lab.SignSSHKey(t, "infra-role", user.Pub, "rocky", "")), "after disabling the conflicting line")
	effective, _ := exec.Command("/usr/sbin/sshd", "-T", "-f", s.Config).Output()
	if !strings.Contains(string(effective), "trustedusercakeys "+s.KeysFile) {
		t.Fatalf("sshd -T: %s", effective)
	}
}

// After ssh_ca_trust ends, successful or failed, no token its AppRole login made is alive.
func TestLabApproleTokenDoesNotOutliveTheModule(t *testing.T) {
	l := testlab.Get(t)
	s := testlab.StartSSHD(t)
	role, roleID, secretID := l.OwnAppRole(t)
	vaultOpt := map[string]any{"addr": l.VaultAddr, "auth": "approle", "role_id": roleID, "secret_id": secretID}
	res, _ := runModule(t, moduleArgs(s, map[string]any{"vault": vaultOpt, "reload": false}))
	if res["failed"] == true {
		t.Fatalf("module failed: %v", res["msg"])
	}
	if fps, _ := res["fingerprints"].([]any); len(fps) != 1 {
		t.Fatalf("the module did not read the CA through its login: %v", res)
	}
	if n := l.LiveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) of the module's approle login are alive after it ended", n)
	}
	// A failure after the login (a mount without an SSH CA) revokes too.
	bad := map[string]any{"addr": l.VaultAddr, "auth": "approle", "role_id": roleID, "secret_id": secretID, "mount": "no-such-mount"}
	res, _ = runModule(t, moduleArgs(s, map[string]any{"vault": bad, "reload": false}))
	if res["failed"] != true {
		t.Fatalf("a missing mount did not fail: %v", res)
	}
	if n := l.LiveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) alive after a failed run", n)
	}
}
