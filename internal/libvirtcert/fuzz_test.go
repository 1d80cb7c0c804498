package libvirtcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"github.com/incus-access/incus-access/internal/testlab"
	"math/big"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/vault/api"
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

// globMatch is GLib's g_pattern_match_simple, which libvirt matches tls_allowed_dn_list
// with: "*" any run of characters, "?" one character, nothing escapes.
func globMatch(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	p, n := utf8.DecodeRuneInString(pattern)
	switch p {
	case '*':
		for i := 0; ; {
			if globMatch(pattern[n:], s[i:]) {
				return true
			}
			if i == len(s) {
				return false
			}
			_, w := utf8.DecodeRuneInString(s[i:])
			i += w
		}
	case '?':
		if s == "" {
			return false
		}
		_, w := utf8.DecodeRuneInString(s)
		return globMatch(pattern[n:], s[w:])
	}
	c, w := utf8.DecodeRuneInString(s)
	return s != "" && c == p && globMatch(pattern[n:], s[w:])
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

// FuzzPrintedDN: arbitrary DER never panics the DN printer.
func FuzzPrintedDN(f *testing.F) {
	seed, err := ParseCerts([]byte(testlab.FuzzSeedCertPEM))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed[0].RawSubject)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		dn, err := PrintedDN(raw)
		if err == nil && strings.Contains(dn, "\x00") && !bytes.Contains(raw, []byte{0}) {
			t.Fatalf("a NUL appeared from nowhere: %q", dn)
		}
	})
}

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
