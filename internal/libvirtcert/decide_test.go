package libvirtcert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"slices"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
)

// decidePaths are where Decide is told the files are; it only compares them with Attrs.
var decidePaths = Paths{Cert: "/pki/libvirt/clientcert.pem", Key: "/pki/libvirt/private/clientkey.pem", CA: "/pki/CA/cacert.pem"}

// exampleSubject is the subject of libvirt's TLS guide's examples (C=AU, ST=Queensland,
// L=Brisbane, O=libvirt.org) for the common name cn, as the module's Subject.
func exampleSubject(cn string) Subject {
	return Subject{Country: "AU", State: "Queensland", Locality: "Brisbane", Organization: "libvirt.org", CommonName: cn}
}

// decideFixture is a converged client certificate in memory: a CA, the desired
// certificate (exampleSubject for host1, rsa 2048, 365 days, renewed 30 days before)
// and a key and certificate the inline CA issued for it.
type decideFixture struct {
	ca                     *testlab.TestCA
	key                    crypto.Signer
	keyPEM, certPEM, caPEM []byte
	now                    time.Time
}

func newDecideFixture(t *testing.T) *decideFixture {
	t.Helper()
	f := &decideFixture{ca: testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{}), now: time.Now()}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f.key, f.keyPEM = key, testlab.PrivateKeyPEM(t, key)
	f.caPEM = []byte(f.ca.CertPEM)
	f.certPEM = f.issue(t, f.ca, f.want(t, nil), key)
	return f
}

// want is the desired certificate; change edits the options first.
func (f *decideFixture) want(t *testing.T, change func(typ *string, s *Subject, k *KeySpec, validity, renew *int)) *Desired {
	t.Helper()
	typ, s, k, validity, renew := "client", exampleSubject("host1"), KeySpec{"rsa", 2048}, 365, 30
	if change != nil {
		change(&typ, &s, &k, &validity, &renew)
	}
	d, err := NewDesired(typ, s, k, validity, renew)
	if err != nil {
		t.Fatal(err)
	}
	d.CA = []*x509.Certificate{f.ca.Cert}
	d.CAPEM = f.caPEM
	return d
}

// issue has ca sign want for key, as a run does.
func (f *decideFixture) issue(t *testing.T, ca *testlab.TestCA, want *Desired, key crypto.Signer) []byte {
	t.Helper()
	inline, err := NewInlineCA(ca.CertPEM, ca.KeyPEM, f.now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := inline.Issue(context.Background(), key, want, f.now)
	if err != nil {
		t.Fatal(err)
	}
	return EncodeCerts([]*x509.Certificate{c})
}

// leaf is a certificate for the fixture's key with exampleSubject("host1") that the test
// shapes: the template's fields replace the fitting defaults.
func (f *decideFixture) leaf(t *testing.T, shape func(*x509.Certificate)) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{Country: []string{"AU"}, Province: []string{"Queensland"}, Locality: []string{"Brisbane"}, Organization: []string{"libvirt.org"}, CommonName: "host1"},
		NotBefore: f.now.Add(-time.Hour), NotAfter: f.now.Add(300 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true,
	}
	shape(tmpl)
	return f.ca.CertWith(t, f.key, tmpl)
}

// Every reason a run gives, decided directly: each row is one thing that differs from
// a converged installation (the CA file managed unless the row says otherwise).
func TestDecide(t *testing.T) {
	f := newDecideFixture(t)
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherCA := testlab.NewTestCA(t, "other CA", testlab.TestCAOptions{})
	expired := f.leaf(t, func(c *x509.Certificate) { c.NotBefore, c.NotAfter = f.now.Add(-48*time.Hour), f.now.Add(-time.Hour) })
	notYet := f.leaf(t, func(c *x509.Certificate) { c.NotBefore = f.now.Add(time.Hour) })
	certtoolOrder, _ := asn1.Marshal(pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 6}, Value: "AU"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "libvirt.org"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 7}, Value: "Brisbane"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 8}, Value: "Queensland"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "host1"}},
	})
	// A CA that expires in 100 days, and a certificate that already lasts as long.
	shortCA := testlab.NewTestCA(t, "short CA", testlab.TestCAOptions{NotAfter: f.now.Add(100 * 24 * time.Hour)})
	shortWant := f.want(t, func(_ *string, _ *Subject, _ *KeySpec, _, renew *int) { *renew = 200 })
	shortWant.CA, shortWant.CAPEM = []*x509.Certificate{shortCA.Cert}, []byte(shortCA.CertPEM)
	shortCert := f.issue(t, shortCA, shortWant, f.key)

	cases := []struct {
		name           string
		cert, key, ca  []byte // nil: the fixture's; use missing for a missing file
		attrs          []string
		notManagedCA   bool
		want           *Desired // nil: the fixture's
		reason         string
		issue, writeCA bool
		fixAttrs       []string
	}{
		{name: "converged"},
		{name: "certificate and key missing", cert: missing, key: missing, reason: "certificate and key missing", issue: true},
		{name: "certificate missing", cert: missing, reason: "certificate missing", issue: true},
		{name: "key missing", key: missing, reason: "key missing", issue: true},
		{name: "certificate garbage", cert: []byte("junk"), reason: "certificate unparsable: no PEM certificate", issue: true},
		{name: "key garbage", key: []byte("junk"), reason: "key unparsable: no PEM private key block", issue: true},
		{name: "key replaced", key: testlab.PrivateKeyPEM(t, otherKey), reason: "key does not match the certificate", issue: true},
		{name: "other CA", want: func() *Desired {
			w := f.want(t, nil)
			w.CA, w.CAPEM = []*x509.Certificate{otherCA.Cert}, []byte(otherCA.CertPEM)
			return w
		}(), reason: "not signed by the CA", issue: true, writeCA: true},
		{name: "key type", want: f.want(t, func(_ *string, _ *Subject, k *KeySpec, _, _ *int) { *k = KeySpec{"ecdsa", 256} }),
			reason: "key type changed (rsa 2048 -> ecdsa P-256)", issue: true},
		{name: "key size", want: f.want(t, func(_ *string, _ *Subject, k *KeySpec, _, _ *int) { k.Size = 3072 }),
			reason: "key type changed (rsa 2048 -> rsa 3072)", issue: true},
		{name: "organization", want: f.want(t, func(_ *string, s *Subject, _ *KeySpec, _, _ *int) { s.Organization = "example.org" }),
			reason: "subject changed (C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1 -> C=AU,ST=Queensland,L=Brisbane,O=example.org,CN=host1)", issue: true},
		{name: "certtool's RDN order", cert: f.leaf(t, func(c *x509.Certificate) { c.RawSubject = certtoolOrder }),
			reason: "subject changed (C=AU,O=libvirt.org,L=Brisbane,ST=Queensland,CN=host1 -> C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1)", issue: true},
		{name: "san", want: f.want(t, func(_ *string, s *Subject, _ *KeySpec, _, _ *int) { s.SAN = []string{"host1.example.org", "192.0.2.1"} }),
			reason: "SAN changed ([] -> [DNS:host1.example.org, IP:192.0.2.1])", issue: true},
		{name: "type", want: f.want(t, func(typ *string, _ *Subject, _ *KeySpec, _, _ *int) { *typ = "server" }),
			reason: "certificate unfit for a libvirt server: extKeyUsage lacks serverAuth", issue: true},
		{name: "CA:TRUE", cert: f.leaf(t, func(c *x509.Certificate) { c.IsCA = true }),
			reason: "certificate unfit for a libvirt client: basicConstraints say CA:TRUE", issue: true},
		{name: "keyUsage", cert: f.leaf(t, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature }),
			reason: "certificate unfit for a libvirt client: keyUsage lacks keyEncipherment", issue: true},
		{name: "expired", cert: expired, reason: "expired (not_after " + utc(certOf(t, expired).NotAfter) + ")", issue: true},
		{name: "not valid yet", cert: notYet, reason: "not valid yet (not_before " + utc(certOf(t, notYet).NotBefore) + ")", issue: true},
		{name: "renew window", want: f.want(t, func(_ *string, _ *Subject, _ *KeySpec, validity, renew *int) { *validity, *renew = 400, 366 }),
			reason: "expires within renew_before_days (not_after " + utc(certOf(t, f.certPEM).NotAfter) + ")", issue: true},
		{name: "as long as its CA", cert: shortCert, ca: []byte(shortCA.CertPEM), want: shortWant},
		{name: "CA file missing", ca: missing, reason: "CA certificate file missing", writeCA: true},
		{name: "CA file differs", ca: []byte(otherCA.CertPEM), reason: "CA certificate file differs from the CA", writeCA: true},
		{name: "CA file garbage", ca: []byte("junk"), reason: "CA certificate file differs from the CA", writeCA: true},
		{name: "CA file not managed", ca: missing, notManagedCA: true},
		{name: "mode", attrs: []string{decidePaths.Cert}, reason: "owner, mode or SELinux label differ: " + decidePaths.Cert, fixAttrs: []string{decidePaths.Cert}},
		{name: "modes of every file", attrs: []string{decidePaths.Cert, decidePaths.Key, decidePaths.CA},
			reason:   "owner, mode or SELinux label differ: " + decidePaths.Cert + ", " + decidePaths.Key + ", " + decidePaths.CA,
			fixAttrs: []string{decidePaths.Cert, decidePaths.Key, decidePaths.CA}},
		// Files written anew get their attributes then; only the others are fixed.
		{name: "mode and a new key", key: testlab.PrivateKeyPEM(t, otherKey), attrs: []string{decidePaths.Cert, decidePaths.Key, decidePaths.CA},
			reason: "key does not match the certificate", issue: true, fixAttrs: []string{decidePaths.CA}},
		{name: "mode and a new CA file", ca: []byte(otherCA.CertPEM), attrs: []string{decidePaths.Cert, decidePaths.CA},
			reason: "CA certificate file differs from the CA", writeCA: true, fixAttrs: []string{decidePaths.Cert}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pick := func(b, fixture []byte) []byte {
				switch {
				case b == nil:
					return fixture
				case len(b) == 0:
					return nil
				}
				return b
			}
			cur := NewCurrent(pick(tc.cert, f.certPEM), pick(tc.key, f.keyPEM), pick(tc.ca, f.caPEM))
			cur.PathsWithWrongAttrs = tc.attrs
			want := tc.want
			if want == nil {
				want = f.want(t, nil)
			}
			d := Decide(cur, want, decidePaths, !tc.notManagedCA, f.now)
			if d.Reason != tc.reason || d.Issue != tc.issue || d.WriteCA != tc.writeCA || !slices.Equal(d.FixAttrsOf, tc.fixAttrs) {
				t.Fatalf("Decide = %+v\nwant reason %q issue %v writeCA %v fixAttrs %v", d, tc.reason, tc.issue, tc.writeCA, tc.fixAttrs)
			}
			// RenewalReason is the reason exactly when a new key and certificate are due.
			renewal := ""
			if tc.issue {
				renewal = tc.reason
			}
			if got := RenewalReason(cur, want, f.now); got != renewal {
				t.Fatalf("RenewalReason = %q, want %q", got, renewal)
			}
		})
	}
}

// missing marks a file as absent in a TestDecide row (nil means the fixture's file).
var missing = []byte{}

func certOf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	certs, err := ParseCerts(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}
