package libvirtcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/incus-access/incus-access/internal/testlab"
)

// FuzzParseCerts: arbitrary PEM text never panics; what parses encodes and parses back
// to the same certificates (compared by DER).
func FuzzParseCerts(f *testing.F) {
	f.Add([]byte(testlab.FuzzSeedCertPEM))
	f.Add([]byte(testlab.FuzzSeedCertPEM + testlab.FuzzSeedCertPEM))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n" + testlab.FuzzSeedCertPEM))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCerts(data)
		if err != nil {
			return
		}
		again, err := ParseCerts(EncodeCerts(certs))
		if err != nil || !SameCerts(certs, again) {
			t.Fatalf("encode and parse again: %v", err)
		}
	})
}

// FuzzDNBuilder: any subject the module accepts gives a DN that (1) is what the issued
// certificate's subject prints as, so a fresh certificate never looks like it needs
// renewal, and (2) is matched by its own tls_allowed_dn_list entry.
func FuzzDNBuilder(f *testing.F) {
	f.Add("AU", "Queensland", "Brisbane", "libvirt.org", "", "host1")
	f.Add("", "", "", "a,b+c", "=x\\", " lead trail ")
	f.Add("", "", "", "", "*?[", "#cn")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, country, state, locality, org, ou, cn string) {
		want, err := NewDesired("client", Subject{Country: country, State: state, Locality: locality,
			Organization: org, OrganizationalUnit: ou, CommonName: cn}, KeySpec{Type: "ecdsa", Size: 256}, 365, 30)
		if err != nil {
			return
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: want.Name, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return // x509 refuses some strings (invalid UTF-8 in a PrintableString field)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		if got := certDN(c); got != want.PrintedDN {
			t.Fatalf("the certificate prints as %q, the module expects %q", got, want.PrintedDN)
		}
		if utf8.ValidString(want.PrintedDN) && !globMatch(AllowedDNEntry(want.PrintedDN), want.PrintedDN) {
			t.Fatalf("the allowed-DN entry %q does not match %q", AllowedDNEntry(want.PrintedDN), want.PrintedDN)
		}
	})
}
