package certinfo

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/incus-access/incus-access/internal/testlab"
)

func TestReadSSHKeysHostCertificatesAndKRL(t *testing.T) {
	dir := t.TempDir()
	caLine, _, caSigner := testlab.NewSSHKey(t, "lab-ca")
	keys := filepath.Join(dir, "trusted-user-ca-keys.pem")
	os.WriteFile(keys, []byte("# managed\n"+caLine+"\nnot a key\n"), 0o644)

	hostLine, _, _ := testlab.NewSSHKey(t, "host")
	hostPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostLine))
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(5 * 24 * time.Hour).Truncate(time.Second)
	cert := &ssh.Certificate{Key: hostPub, Serial: 7, CertType: ssh.HostCert, KeyId: "lab-host1",
		ValidPrincipals: []string{"lab-host1", "127.0.0.1"}, ValidAfter: 0, ValidBefore: uint64(until.Unix())}
	if err := cert.SignCert(rand.Reader, caSigner); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ssh_host_ed25519_key-cert.pub"), ssh.MarshalAuthorizedKey(cert), 0o644)
	os.WriteFile(filepath.Join(dir, "ssh_host_rsa_key-cert.pub"), []byte(hostLine+"\n"), 0o644)
	krl := filepath.Join(dir, "revoked_keys")
	os.WriteFile(krl, make([]byte, 44), 0o644)

	info, err := ReadSSH(keys, []string{filepath.Join(dir, "ssh_host_*-cert.pub"), filepath.Join(dir, "*ed25519*-cert.pub")}, krl)
	if err != nil {
		t.Fatal(err)
	}
	if !info.KeysFile.Exists || len(info.CAKeys) != 2 || info.CAKeys[0].Comment != "lab-ca" ||
		!strings.HasPrefix(info.CAKeys[0].Fingerprint, "SHA256:") || info.CAKeys[1].Line != 3 || info.CAKeys[1].Error == "" {
		t.Fatalf("ca keys: %+v", info.CAKeys)
	}
	if len(info.HostCertificates) != 2 {
		t.Fatalf("each matching file once: %+v", info.HostCertificates)
	}
	h := info.HostCertificates[0]
	if h.Type != "host" || h.KeyID != "lab-host1" || strings.Join(h.Principals, ",") != "lab-host1,127.0.0.1" ||
		h.NotAfter != until.UTC().Format(time.RFC3339) || h.NotBefore != "" || h.SigningCA != info.CAKeys[0].Fingerprint {
		t.Fatalf("host cert: %+v", h)
	}
	if info.HostCertificates[1].Error != "a public key, not a certificate" {
		t.Fatalf("plain key: %+v", info.HostCertificates[1])
	}
	if info.KRL == nil || !info.KRL.Exists || info.KRL.Size != 44 {
		t.Fatalf("krl: %+v", info.KRL)
	}
}

func TestReadSSHMissingFilesAreReportedNotFailed(t *testing.T) {
	dir := t.TempDir()
	info, err := ReadSSH(filepath.Join(dir, "none.pem"), []string{filepath.Join(dir, "*-cert.pub")}, "")
	if err != nil || info.KeysFile.Exists || len(info.CAKeys) != 0 || len(info.HostCertificates) != 0 || info.KRL != nil {
		t.Fatalf("%+v %v", info, err)
	}
	if _, err := ReadSSH("", []string{"[bad"}, ""); err == nil || !strings.Contains(err.Error(), `host_certificates "[bad"`) {
		t.Fatalf("bad pattern: %v", err)
	}
}
