package testlab

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"testing"
	"time"
)

// TestCA is a certificate authority made for one test: an ECDSA P-256 key and a
// self-signed certificate, both also as PEM text.
type TestCA struct {
	Cert            *x509.Certificate
	Key             crypto.Signer
	CertPEM, KeyPEM string
}

// TestCAOptions make a CA that a test expects to be refused or to expire.
type TestCAOptions struct {
	NotCA     bool      // basicConstraints CA:FALSE
	NotBefore time.Time // default: an hour ago
	NotAfter  time.Time // default: in ten years
}

// NewTestCA makes a CA named CN=cn,O=libvirt.org.
func NewTestCA(t testing.TB, cn string, o TestCAOptions) *TestCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = time.Now().Add(10 * 365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"libvirt.org"}},
		NotBefore: o.NotBefore, NotAfter: o.NotAfter,
		BasicConstraintsValid: true, IsCA: !o.NotCA,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &TestCA{Cert: cert, Key: key, CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM: string(PrivateKeyPEM(t, key))}
}

// Args are the libvirt_cert arguments that sign with this CA inline.
func (c *TestCA) Args() map[string]any {
	return map[string]any{"ca_cert": c.CertPEM, "ca_key": c.KeyPEM}
}

// CertWith signs a certificate for key from a template the test controls (expired ones,
// wrong extensions, a subject in another RDN order) and returns its PEM text.
func (c *TestCA) CertWith(t testing.TB, key crypto.Signer, tmpl *x509.Certificate) []byte {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert, key.Public(), c.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// PrivateKeyPEM is key as unencrypted PKCS #8 PEM.
func PrivateKeyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// SeedSubject is the libvirt TLS guide's template fields for host cn, as libvirt_cert's
// subject option.
func SeedSubject(cn string) map[string]any {
	return map[string]any{"country": "AU", "state": "Queensland", "locality": "Brisbane", "organization": "libvirt.org", "common_name": cn}
}

// VaultPKIArgs are the libvirt_cert arguments that sign through the lab's OpenBao PKI
// role (libvirt-client or libvirt-server) with the lab's AppRole; the test fails or skips
// (LAB_REQUIRED) when OpenBao does not answer.
func (l *Lab) VaultPKIArgs(t testing.TB, role string) map[string]any {
	t.Helper()
	l.RequireVault(t)
	id, secret := os.Getenv("LAB_VAULT_ROLE_ID"), os.Getenv("LAB_VAULT_SECRET_ID")
	if id == "" || secret == "" {
		t.Fatal("LAB_VAULT_ROLE_ID / LAB_VAULT_SECRET_ID are not set: eval \"$(lab/lab.sh env)\"")
	}
	return map[string]any{"vault_pki": map[string]any{"addr": l.VaultAddr, "role": role, "auth": "approle", "role_id": id, "secret_id": secret, "timeout": 10}}
}
