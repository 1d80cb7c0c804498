// Package trusttest has what tests of Incus trust need: client certificates made on the
// spot, and a snapshot of a real daemon's trust store that is put back when a test ends.
// Only tests import it.
package trusttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
)

// Cert is a self-signed client certificate with its key, like the ones
// `incus remote generate-certificate` makes.
type Cert struct {
	CertPEM string
	KeyPEM  string
	DER     []byte
	FP      string // hex SHA-256 of DER, as Incus reports it
}

// NewCert makes a certificate valid from an hour ago for a year.
func NewCert(t testing.TB, cn string) Cert {
	return NewCertValid(t, cn, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
}

// NewCertValid makes a certificate with the given validity.
func NewCertValid(t testing.TB, cn string, notBefore, notAfter time.Time) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return Cert{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		DER:     der,
		FP:      hex.EncodeToString(sum[:]),
	}
}

// KeyLine is one base64 line of the private key: if it shows up in output, the key leaked.
func (c Cert) KeyLine() string { return strings.Split(c.KeyPEM, "\n")[1] }

// Trust adds the certificate to the trust store directly, bypassing the module.
func Trust(t testing.TB, srv incus.InstanceServer, name string, c Cert) {
	t.Helper()
	err := srv.CreateCertificate(api.CertificatesPost{CertificatePut: api.CertificatePut{
		Name: name, Type: api.CertificateTypeClient, Certificate: base64.StdEncoding.EncodeToString(c.DER),
	}})
	if err != nil {
		t.Fatalf("trust %s: %v", name, err)
	}
}

// ByFingerprint reads the trust store keyed by fingerprint.
func ByFingerprint(t testing.TB, srv incus.InstanceServer) map[string]api.Certificate {
	t.Helper()
	certs, err := srv.GetCertificates()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]api.Certificate{}
	for _, c := range certs {
		out[c.Fingerprint] = c
	}
	return out
}

// Line renders one entry with every field the module manages.
func Line(c api.Certificate) string {
	p := append([]string{}, c.Projects...)
	sort.Strings(p)
	return fmt.Sprintf("%s|%s|%s|%t|%s|%s", c.Fingerprint, c.Name, c.Type, c.Restricted, strings.Join(p, ","), c.Description)
}

// State is the whole trust store as comparable text.
func State(t testing.TB, srv incus.InstanceServer) string {
	t.Helper()
	var lines []string
	for _, c := range ByFingerprint(t, srv) {
		lines = append(lines, Line(c))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Fingerprints lists what is trusted now (for keep, so that a test that prunes leaves
// the lab's own entries alone).
func Fingerprints(t testing.TB, srv incus.InstanceServer) []string {
	var out []string
	for fp := range ByFingerprint(t, srv) {
		out = append(out, fp)
	}
	return out
}

// LockPath is the lock file that serializes tests that change a lab trust store: Go
// packages run in parallel (go test -p 2) and pytest may run beside them, and one test's
// prune or restore must not meet another test's entries. tests/conftest.py takes it too.
var LockPath = filepath.Join(os.TempDir(), "incus-access-lab-trust-store.lock")

// Exclusive holds the trust store lock until the test ends.
func Exclusive(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(LockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("trust store lock %s: %v", LockPath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("trust store lock %s: %v", LockPath, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// RestoreAfter takes the trust store lock, snapshots the trust store and puts it back
// exactly at cleanup: entries the test added go, entries it removed or changed come back.
func RestoreAfter(t testing.TB, srv incus.InstanceServer) {
	t.Helper()
	Exclusive(t)
	before := ByFingerprint(t, srv)
	t.Cleanup(func() {
		now := ByFingerprint(t, srv)
		for fp := range now {
			if _, ok := before[fp]; !ok {
				if err := srv.DeleteCertificate(fp); err != nil {
					t.Errorf("restore trust store: delete %s: %v", fp, err)
				}
			}
		}
		for fp, c := range before {
			cur, ok := now[fp]
			if ok && cur.Type == c.Type {
				if Line(cur) != Line(c) {
					if err := srv.UpdateCertificate(fp, c.Writable(), ""); err != nil {
						t.Errorf("restore trust store: update %s: %v", fp, err)
					}
				}
				continue
			}
			if ok {
				_ = srv.DeleteCertificate(fp)
			}
			block, _ := pem.Decode([]byte(c.Certificate))
			if block == nil {
				t.Errorf("restore trust store: %s has no PEM certificate", fp)
				continue
			}
			w := c.Writable()
			w.Certificate = base64.StdEncoding.EncodeToString(block.Bytes)
			if err := srv.CreateCertificate(api.CertificatesPost{CertificatePut: w}); err != nil {
				t.Errorf("restore trust store: re-add %s: %v", fp, err)
			}
		}
	})
}

// UniquePrefix gives a test's entries names no other test or lab entry uses.
func UniquePrefix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "gotest-" + hex.EncodeToString(b) + "-"
}
