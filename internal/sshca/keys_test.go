package sshca

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/incus-access/incus-access/internal/testlab"
	"golang.org/x/crypto/ssh"
)

func TestParseCAKeysNormalizesAndFingerprints(t *testing.T) {
	a, _, signer := testlab.NewSSHKey(t, "ca-2026")
	b, _, _ := testlab.NewSSHKey(t, "")
	keys, err := ParseCAKeys("ca_keys[0]", "# two CAs\n\n  "+a+"  \r\ncert-authority "+b+"\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Line != a || keys[1].Line != b || keys[0].Comment != "ca-2026" {
		t.Fatalf("keys: %+v", keys)
	}
	if keys[0].Fingerprint != ssh.FingerprintSHA256(signer.PublicKey()) || !strings.HasPrefix(keys[0].Fingerprint, "SHA256:") {
		t.Fatalf("fingerprint %s", keys[0].Fingerprint)
	}
}

func TestParseCAKeysRejectsBadInputNamingSourceAndLine(t *testing.T) {
	pubLine, privPEM, signer := testlab.NewSSHKey(t, "ca")
	userLine, _, _ := testlab.NewSSHKey(t, "user")
	userPub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(userLine))
	cert := &ssh.Certificate{Key: userPub, CertType: ssh.UserCert, KeyId: "alice", ValidPrincipals: []string{"rocky"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	certLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
	body := strings.Fields(pubLine)[1]
	cases := map[string]struct{ text, want string }{
		"private key":   {pubLine + "\n" + privPEM, "ca_keys[1] line 2: is a private key (not shown)"},
		"certificate":   {certLine, `ca_keys[1] line 1: is an SSH certificate (ssh-ed25519-cert-v01@openssh.com, key id "alice"), not a CA public key`},
		"unknown type":  {"ssh-foo25519 " + body, `ca_keys[1] line 1: unknown key type "ssh-foo25519"`},
		"bad base64":    {"ssh-ed25519 AAAAnotakey", "ca_keys[1] line 1: is not a valid ssh-ed25519 public key"},
		"garbage":       {"# ok\nhello world", "ca_keys[1] line 2: is not an OpenSSH public key"},
		"empty":         {"  \n# only a comment\n", "ca_keys[1]: holds no public key"},
		"other options": {`from="10.0.0.1" ` + pubLine, `ca_keys[1] line 1: has the option "from=\"10.0.0.1\""`},
	}
	for name, tc := range cases {
		_, err := ParseCAKeys("ca_keys[1]", tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
			continue
		}
		for _, l := range strings.Split(privPEM, "\n") {
			if len(l) > 16 && strings.Contains(err.Error(), l) {
				t.Errorf("%s: the error quotes the private key", name)
			}
		}
		if strings.Contains(err.Error(), body[10:40]) {
			t.Errorf("%s: the error quotes the key text: %v", name, err)
		}
	}
}

func TestMergeKeysDedupesByFingerprintKeepingSources(t *testing.T) {
	a, _, _ := testlab.NewSSHKey(t, "from-inline")
	b, _, _ := testlab.NewSSHKey(t, "")
	inline, _ := ParseCAKeys("ca_keys[0]", a+"\n"+b)
	fromVault, _ := ParseCAKeys("vault ssh-client-signer", strings.Join(strings.Fields(a)[:2], " "))
	merged := MergeKeys(inline, fromVault)
	if len(merged) != 2 || strings.Join(merged[0].Sources, ",") != "ca_keys[0],vault ssh-client-signer" || merged[0].Comment != "from-inline" {
		t.Fatalf("merged: %+v", merged)
	}
}
