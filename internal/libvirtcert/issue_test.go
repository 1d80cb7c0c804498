package libvirtcert

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/incus-access/incus-access/internal/testlab"
)

// FuzzVaultSignResponse: any HTTP body Vault could answer sign/<role> with decodes to a
// certificate or an error, never a panic.
func FuzzVaultSignResponse(f *testing.F) {
	f.Add([]byte(`{"data":{"certificate":` + quoteJSON(testlab.FuzzSeedCertPEM) + `,"issuing_ca":"x","serial_number":"01"}}`))
	f.Add([]byte(`{"data":{"certificate":42}}`))
	f.Add([]byte(`{"data":null,"warnings":["w"]}`))
	f.Add([]byte(`{"errors":["permission denied"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		secret, err := api.ParseSecret(bytes.NewReader(body))
		if err != nil || secret == nil {
			return
		}
		c, err := SignedCertificate(secret.Data)
		if err == nil && c == nil {
			t.Fatal("no error and no certificate")
		}
	})
}

func quoteJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '\n' {
			b.WriteString(`\n`)
			continue
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// Each unusable inline CA is refused with a message naming it, never quoting the key.
func TestNewInlineCARefuses(t *testing.T) {
	now := time.Now()
	good := testlab.NewTestCA(t, "good CA", testlab.TestCAOptions{})
	other := testlab.NewTestCA(t, "other CA", testlab.TestCAOptions{})
	expired := testlab.NewTestCA(t, "expired CA", testlab.TestCAOptions{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	future := testlab.NewTestCA(t, "future CA", testlab.TestCAOptions{NotBefore: now.Add(time.Hour)})
	notCA := testlab.NewTestCA(t, "not a CA", testlab.TestCAOptions{NotCA: true})
	for _, tc := range []struct {
		name, cert, key, msg string
	}{
		{"key of another CA", good.CertPEM, other.KeyPEM, "ca_key does not match ca_cert (O=libvirt.org,CN=good CA)"},
		{"not a CA", notCA.CertPEM, notCA.KeyPEM, "ca_cert (O=libvirt.org,CN=not a CA) is not a CA certificate"},
		{"expired", expired.CertPEM, expired.KeyPEM, "ca_cert (O=libvirt.org,CN=expired CA) expired on"},
		{"not valid yet", future.CertPEM, future.KeyPEM, "ca_cert (O=libvirt.org,CN=future CA) is not valid before"},
		{"certificate garbage", "junk", good.KeyPEM, "ca_cert: no PEM certificate"},
		{"key garbage", good.CertPEM, "junk", "ca_key: no PEM private key block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewInlineCA(tc.cert, tc.key, now)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want it to contain %q", err, tc.msg)
			}
			for _, line := range strings.Split(tc.key, "\n") {
				if len(line) > 20 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
					t.Fatal("the error quotes the key")
				}
			}
		})
	}
}

// A certificate never outlives its inline CA, and CheckIssued accepts what Issue made
// and refuses one for another key.
func TestInlineCAIssue(t *testing.T) {
	now := time.Now()
	short := testlab.NewTestCA(t, "short CA", testlab.TestCAOptions{NotAfter: now.Add(100 * 24 * time.Hour)})
	ca, err := NewInlineCA(short.CertPEM, short.KeyPEM, now)
	if err != nil {
		t.Fatal(err)
	}
	want, err := NewDesired("server", exampleSubject("host1"), KeySpec{"ecdsa", 256}, 365, 30)
	if err != nil {
		t.Fatal(err)
	}
	want.CA = ca.Chain()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := ca.Issue(context.Background(), key, want, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.NotAfter.After(short.Cert.NotAfter) {
		t.Fatalf("not_after %v is after the CA's %v", c.NotAfter, short.Cert.NotAfter)
	}
	if err := CheckIssued(c, key, want, ca); err != nil {
		t.Fatalf("CheckIssued refused a fitting certificate: %v", err)
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := CheckIssued(c, otherKey, want, ca); err == nil || !strings.Contains(err.Error(), "it is not for the generated key") ||
		!strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("CheckIssued with another key: %v", err)
	}
}
