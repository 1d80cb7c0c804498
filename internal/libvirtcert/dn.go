package libvirtcert

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
)

// GnuTLS's short names for the attribute types a certificate subject usually has.
var attrNames = map[string]string{
	"2.5.4.6":                    "C",
	"2.5.4.8":                    "ST",
	"2.5.4.7":                    "L",
	"2.5.4.9":                    "STREET",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.3":                    "CN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.12":                   "title",
	"2.5.4.4":                    "SN",
	"2.5.4.42":                   "GN",
	"2.5.4.17":                   "postalCode",
	"2.5.4.46":                   "dnQualifier",
	"2.5.4.65":                   "pseudonym",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
	"1.2.840.113549.1.9.1":       "EMAIL",
}

// PrintedDN is a certificate subject (its DER RDN sequence) as GnuTLS, and so libvirt
// and virt-pki-query-dn, print it: RDNs in the order they are encoded, joined by ","
// without spaces, multi-valued RDNs joined by "+", values escaped as in RFC 4514.
// pkix.Name.String() and OpenSSL's RFC 2253 output reverse the order and do not match.
func PrintedDN(rawSubject []byte) (string, error) {
	var seq pkix.RDNSequence
	rest, err := asn1.Unmarshal(rawSubject, &seq)
	if err != nil {
		return "", fmt.Errorf("subject is not a DER name: %v", err)
	}
	if len(rest) > 0 {
		return "", fmt.Errorf("subject has trailing data")
	}
	rdns := make([]string, 0, len(seq))
	for _, rdn := range seq {
		atvs := make([]string, 0, len(rdn))
		for _, atv := range rdn {
			atvs = append(atvs, formatATV(atv))
		}
		rdns = append(rdns, strings.Join(atvs, "+"))
	}
	return strings.Join(rdns, ","), nil
}

func formatATV(atv pkix.AttributeTypeAndValue) string {
	oid := atv.Type.String()
	name, known := attrNames[oid]
	if s, ok := atv.Value.(string); ok && known {
		return name + "=" + escapeValue(s)
	}
	// An unknown type or a non-string value: GnuTLS prints the OID and the value's DER in hex.
	der, err := asn1.Marshal(atv.Value)
	if err != nil {
		der = nil
	}
	if known {
		oid = name
	}
	return oid + "=#" + hex.EncodeToString(der)
}

// escapeValue is GnuTLS's str_escape: a backslash before , + " \ < > ; anywhere, before
// a leading # or space, and before a trailing space.
func escapeValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case strings.IndexByte(`,+"\<>;`, c) >= 0,
			i == 0 && (c == '#' || c == ' '),
			i == len(s)-1 && c == ' ':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// AllowedDNEntry turns a printed DN into the tls_allowed_dn_list entry that matches it.
// libvirt 9 matches the list with GLib's g_pattern_match_simple: "*" and "?" are
// wildcards and nothing escapes them ("[" is literal), so each of them becomes "?", which
// matches that character (and, unavoidably, any other single character there).
func AllowedDNEntry(printed string) string {
	return strings.NewReplacer("*", "?").Replace(printed)
}

// HasWildcards reports whether a printed DN holds a character the allow list treats as a
// wildcard, i.e. whether AllowedDNEntry is broader than the DN itself.
func HasWildcards(printed string) bool { return strings.ContainsAny(printed, "*?") }
