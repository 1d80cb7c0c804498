package libvirtcert

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"os/exec"
	"strings"
	"testing"
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
	ca := newCA(t, "test CA", caOpts{})
	for _, org := range []string{"libvirt.org", `lib[v],irt+o"rg`, "a;b<c>"} {
		f := newFiles(t, t.TempDir())
		s := seedSubject("host1")
		s["organization"] = org
		s["organizational_unit"] = "virt"
		res := mustRun(t, merge(ca.args(), f.args(), map[string]any{"subject": s}))
		out, err := exec.Command(bin, f.Cert).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v %s", bin, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != res["subject_dn_printed"] || got != res["subject_dn"] {
			t.Errorf("virt-pki-query-dn %q, module %q / %q", got, res["subject_dn_printed"], res["subject_dn"])
		}
	}
}
