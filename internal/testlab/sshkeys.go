package testlab

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// NewSSHKey is a fresh ed25519 key: its public key line (authorized_keys format, with
// comment when not empty), its private key in OpenSSH PEM (what a user pastes by mistake
// for a CA's public key) and a signer (to sign certificates as a CA).
func NewSSHKey(t testing.TB, comment string) (line, privatePEM string, signer ssh.Signer) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err = ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	line = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))
	if comment != "" {
		line += " " + comment
	}
	return line, string(pem.EncodeToMemory(block)), signer
}
