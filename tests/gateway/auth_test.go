package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newKey(t *testing.T) (ssh.PublicKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer.PublicKey(), signer
}

func testAccounts(t *testing.T) (HostAccounts, string) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "passwd"), strings.Join([]string{
		"root:x:0:0:root:" + dir + "/root:/bin/bash",
		"ops:x:1000:1000::" + dir + "/ops:/bin/bash",
		"dev:x:1001:1001::" + dir + "/dev:/bin/bash",
		"admin:x:1002:1002::" + dir + "/admin:/bin/bash",
		"nobody:x:65534:65534::" + dir + "/nobody:/usr/sbin/nologin",
	}, "\n")+"\n")
	writeFile(t, filepath.Join(dir, "group"), strings.Join([]string{
		"root:x:0:",
		"ops:x:1000:",
		"dev:x:1001:",
		"incus:x:990:dev,someone",
		"incus-admin:x:1002:",
	}, "\n")+"\n")
	return HostAccounts{
		Passwd: filepath.Join(dir, "passwd"), Group: filepath.Join(dir, "group"),
		KeysDir: filepath.Join(dir, "authorized_keys.d"), AllowedGroups: []string{"incus", "incus-admin"},
	}, dir
}

func TestHostUserGroupRule(t *testing.T) {
	h, _ := testAccounts(t)
	for name, allowed := range map[string]bool{
		"root":   true,  // uid 0
		"dev":    true,  // supplementary member of incus
		"admin":  true,  // primary group incus-admin
		"ops":    false, // in no allowed group
		"nobody": false,
	} {
		u, err := h.Lookup(name)
		if err != nil {
			t.Fatalf("Lookup(%q): %v", name, err)
		}
		if err := h.Allowed(u); (err == nil) != allowed {
			t.Errorf("Allowed(%q) = %v, want allowed=%v", name, err, allowed)
		}
	}
	if _, err := h.Lookup("someone"); err == nil {
		t.Error("Lookup of a user missing from passwd succeeded")
	}
}

func TestKeyAuthorized(t *testing.T) {
	h, dir := testAccounts(t)
	good, _ := newKey(t)
	other, _ := newKey(t)
	ca, caSigner := newKey(t)
	line := func(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }

	// options are ignored; the key itself must match
	writeFile(t, filepath.Join(dir, "root", ".ssh", "authorized_keys"),
		"# comment\nfrom=\"10.0.0.1\" "+line(good)+" me@laptop\ncert-authority "+line(ca)+"\n")
	root, _ := h.Lookup("root")
	if ok, err := h.KeyAuthorized(root, good); !ok {
		t.Errorf("listed key (with options) refused: %v", err)
	}
	if ok, _ := h.KeyAuthorized(root, other); ok {
		t.Error("unlisted key accepted")
	}
	// a certificate signed by a cert-authority key is not a listed key
	cert := &ssh.Certificate{Key: other, CertType: ssh.UserCert, ValidPrincipals: []string{"root"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, caSigner); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.KeyAuthorized(root, cert); ok {
		t.Error("CA-signed certificate accepted")
	}

	// no ~/.ssh/authorized_keys: fall back to authorized_keys.d/<user>
	writeFile(t, filepath.Join(h.KeysDir, "dev"), line(other)+"\n")
	dev, _ := h.Lookup("dev")
	if ok, err := h.KeyAuthorized(dev, other); !ok {
		t.Errorf("key from authorized_keys.d refused: %v", err)
	}
	admin, _ := h.Lookup("admin")
	if ok, _ := h.KeyAuthorized(admin, other); ok {
		t.Error("user without any authorized keys accepted")
	}
}

func TestParseGetent(t *testing.T) {
	u, err := ParseGetent("app:x:1001:1001:App,,,:/home/app:/bin/bash\n")
	if err != nil {
		t.Fatal(err)
	}
	if u != (InstanceUser{"app", 1001, 1001, "/home/app", "/bin/bash"}) {
		t.Errorf("got %+v", u)
	}
	u, err = ParseGetent("svc:x:5:5:::\n")
	if err != nil || u.Home != "/" || u.Shell != "/bin/sh" {
		t.Errorf("empty home/shell: got %+v, %v", u, err)
	}
	for _, bad := range []string{"", "garbage", "a:x:notanumber:1::/:/bin/sh"} {
		if _, err := ParseGetent(bad); err == nil {
			t.Errorf("ParseGetent(%q) succeeded", bad)
		}
	}
}
