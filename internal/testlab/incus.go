package testlab

// What tests of Incus trust need (internal/incustrust, internal/clientcerts,
// modules/incus_trust): client certificates made on the spot, and a snapshot of a real
// daemon's trust store that is put back when a test ends.

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

// IncusClientCert is a self-signed client certificate with its key, like the ones
// `incus remote generate-certificate` makes.
type IncusClientCert struct {
	CertPEM string
	KeyPEM  string
	DER     []byte
	FP      string // hex SHA-256 of DER, as Incus reports it
}

// NewIncusClientCert makes a certificate valid from an hour ago for a year.
func NewIncusClientCert(t testing.TB, cn string) IncusClientCert {
	return NewIncusClientCertValid(t, cn, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
}

// NewIncusClientCertValid makes a certificate with the given validity.
func NewIncusClientCertValid(t testing.TB, cn string, notBefore, notAfter time.Time) IncusClientCert {
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
	return IncusClientCert{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		DER:     der,
		FP:      hex.EncodeToString(sum[:]),
	}
}

// KeyLine is one base64 line of the private key: if it shows up in output, the key leaked.
func (c IncusClientCert) KeyLine() string { return strings.Split(c.KeyPEM, "\n")[1] }

// TrustIncusClient adds the certificate to the trust store directly, bypassing the module.
func TrustIncusClient(t testing.TB, srv incus.InstanceServer, name string, c IncusClientCert) {
	t.Helper()
	err := srv.CreateCertificate(api.CertificatesPost{CertificatePut: api.CertificatePut{
		Name: name, Type: api.CertificateTypeClient, Certificate: base64.StdEncoding.EncodeToString(c.DER),
	}})
	if err != nil {
		t.Fatalf("trust %s: %v", name, err)
	}
}

// IncusTrustStore reads the trust store keyed by fingerprint.
func IncusTrustStore(t testing.TB, srv incus.InstanceServer) map[string]api.Certificate {
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

// IncusTrustLine renders one entry with every field the module manages.
func IncusTrustLine(c api.Certificate) string {
	p := append([]string{}, c.Projects...)
	sort.Strings(p)
	return fmt.Sprintf("%s|%s|%s|%t|%s|%s", c.Fingerprint, c.Name, c.Type, c.Restricted, strings.Join(p, ","), c.Description)
}

// IncusTrustState is the whole trust store as comparable text.
func IncusTrustState(t testing.TB, srv incus.InstanceServer) string {
	t.Helper()
	var lines []string
	for _, c := range IncusTrustStore(t, srv) {
		lines = append(lines, IncusTrustLine(c))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// IncusTrustedFingerprints lists what is trusted now (for keep, so that a test that
// prunes leaves the lab's own entries alone).
func IncusTrustedFingerprints(t testing.TB, srv incus.InstanceServer) []string {
	var out []string
	for fp := range IncusTrustStore(t, srv) {
		out = append(out, fp)
	}
	return out
}

// IncusTrustLockPath is the lock file that serializes tests that change a lab trust
// store: Go packages run in parallel (go test -p 2) and pytest may run beside them, and
// one test's prune or restore must not meet another test's entries. tests/conftest.py
// takes it too.
var IncusTrustLockPath = filepath.Join(os.TempDir(), "incus-access-lab-trust-store.lock")

// LockIncusTrustStore holds the trust store lock until the test ends.
func LockIncusTrustStore(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(IncusTrustLockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("trust store lock %s: %v", IncusTrustLockPath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("trust store lock %s: %v", IncusTrustLockPath, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// RestoreIncusTrustStoreAfter takes the trust store lock, snapshots the trust store and
// puts it back exactly at cleanup: entries the test added go, entries it removed or
// changed come back.
func RestoreIncusTrustStoreAfter(t testing.TB, srv incus.InstanceServer) {
	t.Helper()
	LockIncusTrustStore(t)
	before := IncusTrustStore(t, srv)
	t.Cleanup(func() {
		now := IncusTrustStore(t, srv)
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
				if IncusTrustLine(cur) != IncusTrustLine(c) {
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

// UniqueIncusPrefix gives a test's entries names no other test or lab entry uses.
func UniqueIncusPrefix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "gotest-" + hex.EncodeToString(b) + "-"
}

// IncusHost1 connects to the lab's first incusd over its unix socket (returned too, for
// module arguments) and puts its trust store back, exactly as it was, when the test ends.
func IncusHost1(t testing.TB) (incus.InstanceServer, string) {
	t.Helper()
	l := Get(t)
	srv, err := incus.ConnectIncusUnix(l.Host1Socket, nil)
	if err != nil {
		t.Fatalf("lab incusd at %s: %v", l.Host1Socket, err)
	}
	RestoreIncusTrustStoreAfter(t, srv)
	return srv, l.Host1Socket
}
