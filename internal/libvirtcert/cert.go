package libvirtcert

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Subject is the certificate's distinguished name, field by field as in a certtool
// template (country, state, locality, organization, unit, common name), plus the SANs.
type Subject struct {
	Country            string   `ansible:"country"`
	State              string   `ansible:"state"`
	Locality           string   `ansible:"locality"`
	Organization       string   `ansible:"organization"`
	OrganizationalUnit string   `ansible:"organizational_unit"`
	CommonName         string   `ansible:"common_name"`
	SAN                []string `ansible:"san"`
}

// Desired is what the certificate on the target must be.
type Desired struct {
	Type        string // client | server
	Name        pkix.Name
	PrintedDN   string // Name as GnuTLS prints it
	DNSNames    []string
	IPs         []net.IP
	Key         KeySpec
	Validity    time.Duration
	RenewBefore time.Duration
	// CA is the issuing CA first, then the rest of its chain; CAPEM is what the CA
	// certificate file holds.
	CA    []*x509.Certificate
	CAPEM []byte
}

// NewDesired builds the desired subject and SANs; san items that parse as IP addresses
// are IP SANs, the rest DNS names.
func NewDesired(typ string, s Subject, key KeySpec, validityDays, renewBeforeDays int) (*Desired, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	if s.CommonName == "" {
		return nil, errors.New("subject.common_name is empty")
	}
	if validityDays < 1 {
		return nil, fmt.Errorf("validity_days must be at least 1 (got %d)", validityDays)
	}
	if renewBeforeDays < 0 || renewBeforeDays >= validityDays {
		return nil, fmt.Errorf("renew_before_days (%d) must be 0 or more and less than validity_days (%d), or every run would renew", renewBeforeDays, validityDays)
	}
	d := &Desired{Type: typ, Key: key,
		Validity:    time.Duration(validityDays) * 24 * time.Hour,
		RenewBefore: time.Duration(renewBeforeDays) * 24 * time.Hour}
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	d.Name = pkix.Name{Country: one(s.Country), Province: one(s.State), Locality: one(s.Locality),
		Organization: one(s.Organization), OrganizationalUnit: one(s.OrganizationalUnit), CommonName: s.CommonName}
	raw, err := asn1.Marshal(d.Name.ToRDNSequence())
	if err != nil {
		return nil, fmt.Errorf("subject: %v", err)
	}
	if d.PrintedDN, err = PrintedDN(raw); err != nil {
		return nil, err
	}
	for i, v := range s.SAN {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			return nil, fmt.Errorf("subject.san[%d] is empty", i)
		case net.ParseIP(v) != nil:
			d.IPs = append(d.IPs, net.ParseIP(v))
		default:
			d.DNSNames = append(d.DNSNames, strings.ToLower(v))
		}
	}
	return d, nil
}

// SANList is the SANs in one comparable, sorted form ("DNS:x", "IP:y").
func SANList(dns []string, ips []net.IP) []string {
	out := make([]string, 0, len(dns)+len(ips))
	for _, d := range dns {
		out = append(out, "DNS:"+strings.ToLower(d))
	}
	for _, ip := range ips {
		out = append(out, "IP:"+ip.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ExtKeyUsage is the purpose a libvirt certificate of this type must carry.
func ExtKeyUsage(typ string) x509.ExtKeyUsage {
	if typ == "server" {
		return x509.ExtKeyUsageServerAuth
	}
	return x509.ExtKeyUsageClientAuth
}

// LibvirtProblems lists what in a certificate libvirt/GnuTLS would refuse for its type
// (empty when it is fit): not a CA, keyUsage digitalSignature and
// keyEncipherment (GnuTLS requires it when keyUsage is critical, ECDSA too), the purpose.
func LibvirtProblems(c *x509.Certificate, typ string) []string {
	var p []string
	// A missing basicConstraints is accepted by libvirt for a leaf (a PKI role leaves it
	// out unless basic_constraints_valid_for_non_ca); CA:TRUE is refused.
	if c.BasicConstraintsValid && c.IsCA {
		p = append(p, "basicConstraints say CA:TRUE")
	}
	if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		p = append(p, "keyUsage lacks digitalSignature")
	}
	if c.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		p = append(p, "keyUsage lacks keyEncipherment")
	}
	if !slices.Contains(c.ExtKeyUsage, ExtKeyUsage(typ)) {
		want := "clientAuth"
		if typ == "server" {
			want = "serverAuth"
		}
		p = append(p, "extKeyUsage lacks "+want)
	}
	return p
}

// ParseCerts reads every CERTIFICATE block of PEM text, in order.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d does not parse: %v", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return out, nil
}

// EncodeCerts is the PEM text of certificates, one block each.
func EncodeCerts(certs []*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// SameCerts compares certificate lists by their DER bytes, never by PEM text.
func SameCerts(a, b []*x509.Certificate) bool {
	return slices.EqualFunc(a, b, func(x, y *x509.Certificate) bool { return bytes.Equal(x.Raw, y.Raw) })
}

// Fingerprint is the hex SHA-256 of a certificate's DER bytes, colon-separated.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// Serial is the serial number in colon-separated hex, as certtool and Vault show it.
func Serial(c *x509.Certificate) string {
	h := c.SerialNumber.Text(16)
	if len(h)%2 == 1 {
		h = "0" + h
	}
	parts := make([]string, 0, len(h)/2)
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// signedBy reports whether c's signature verifies with ca's key.
func signedBy(c, ca *x509.Certificate) bool {
	return c.CheckSignatureFrom(ca) == nil
}

// certDN is a certificate's printed DN ("" if its subject does not parse).
func certDN(c *x509.Certificate) string {
	dn, err := PrintedDN(c.RawSubject)
	if err != nil {
		return ""
	}
	return dn
}

func utc(t time.Time) string { return t.UTC().Format(time.RFC3339) }
