package libvirtcert

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os/exec"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/incus-access/incus-access/internal/testlab"
)

func rawName(t *testing.T, n pkix.Name) []byte {
	raw, err := asn1.Marshal(n.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestPrintedDNIsInEncodedOrder(t *testing.T) {
	n := pkix.Name{Country: []string{"AU"}, Province: []string{"Queensland"}, Locality: []string{"Brisbane"},
		Organization: []string{"libvirt.org"}, CommonName: "host1"}
	got, err := PrintedDN(rawName(t, n))
	if err != nil {
		t.Fatal(err)
	}
	if got != "C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1" {
		t.Fatalf("got %q", got)
	}
	if got == n.String() {
		t.Fatal("pkix.Name.String() is reversed and must not be what libvirt matches")
	}
}

func TestPrintedDNEscapesAsGnuTLS(t *testing.T) {
	cases := map[string]string{
		`lib[v],irt+o"rg`: `O=lib[v]\,irt\+o\"rg`,
		`a\b<c>d;e`:       `O=a\\b\<c\>d\;e`,
		`#lead`:           `O=\#lead`,
		` both `:          `O=\ both\ `,
		`mid#dle x`:       `O=mid#dle x`,
	}
	for in, want := range cases {
		got, err := PrintedDN(rawName(t, pkix.Name{Organization: []string{in}}))
		if err != nil || got != want {
			t.Errorf("%q: got %q (%v), want %q", in, got, err, want)
		}
	}
	multi := pkix.RDNSequence{{
		{Type: asn1.ObjectIdentifier{2, 5, 4, 11}, Value: "a"},
		{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "b"},
	}, {{Type: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: "x"}}}
	raw, _ := asn1.Marshal(multi)
	// DER sorts a SET, so CN (2.5.4.3) is encoded, and printed, before OU.
	if got, _ := PrintedDN(raw); got != "CN=b+OU=a,1.2.3.4=#130178" {
		t.Errorf("multi-valued and unknown: %q", got)
	}
}

func TestAllowedDNEntryReplacesWildcards(t *testing.T) {
	if got := AllowedDNEntry("O=a*b?c[d],CN=x"); got != "O=a?b?c[d],CN=x" {
		t.Fatalf("got %q", got)
	}
	if HasWildcards("O=a[b]") || !HasWildcards("O=a*") {
		t.Fatal("HasWildcards")
	}
}

// The module's DN is what virt-pki-query-dn (GnuTLS) prints for the certificate it wrote.
func TestSubjectDNMatchesVirtPKIQueryDN(t *testing.T) {
	bin, err := exec.LookPath("virt-pki-query-dn")
	if err != nil {
		t.Skip("virt-pki-query-dn is not installed (libvirt-clients)")
	}
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	for _, org := range []string{"libvirt.org", `lib[v],irt+o"rg`, "a;b<c>"} {
		f := newFiles(t, t.TempDir())
		s := testlab.SeedSubject("host1")
		s["organization"] = org
		s["organizational_unit"] = "virt"
		res := mustRun(t, merge(ca.Args(), f.args(), map[string]any{"subject": s}))
		out, err := exec.Command(bin, f.Cert).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v %s", bin, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != res["subject_dn_printed"] || got != res["subject_dn"] {
			t.Errorf("virt-pki-query-dn %q, module %q / %q", got, res["subject_dn_printed"], res["subject_dn"])
		}
	}
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
