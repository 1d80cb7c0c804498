// Package certinfo reads, and never writes, what the audit playbook reports besides the
// Incus trust store: libvirt's TLS certificates with libvirtd's tls_allowed_dn_list, and
// what sshd trusts (user CA keys, host certificates, a KRL). module.go holds the two
// info modules' Ansible adapters; the rest is plain Go.
package certinfo

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/incus-access/incus-access/internal/libvirtcert"
	"github.com/incus-access/incus-access/internal/libvirtdconf"
)

// CertFile is one certificate file to read: where it is and what it is for.
type CertFile struct {
	Path string `ansible:"path"`
	Type string `ansible:"type"` // ca, server or client
}

// CertInfo is one certificate found in a file (a CA bundle has several).
type CertInfo struct {
	Path        string   `json:"path"`
	Type        string   `json:"type"`
	Exists      bool     `json:"exists"`
	Subject     string   `json:"subject"` // as GnuTLS (and so tls_allowed_dn_list) prints it
	Issuer      string   `json:"issuer"`
	NotBefore   string   `json:"not_before"`
	NotAfter    string   `json:"not_after"`
	Fingerprint string   `json:"fingerprint"` // hex SHA-256 of the DER bytes
	Serial      string   `json:"serial"`
	SAN         []string `json:"san"`
	Error       string   `json:"error,omitempty"` // why the file could not be read
}

// LibvirtdInfo is libvirtd.conf's DN check.
type LibvirtdInfo struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	// AllowedDNs is tls_allowed_dn_list; nil when not set (libvirtd then checks no DN).
	AllowedDNs []string `json:"allowed_dns"`
	Error      string   `json:"error,omitempty"`
}

// ReadCerts reads each file; a missing or unreadable file is an item with Exists false
// or Error set, never a failure (an audit reports it).
func ReadCerts(files []CertFile) []CertInfo {
	out := []CertInfo{}
	for _, f := range files {
		data, err := os.ReadFile(f.Path)
		if err != nil {
			item := CertInfo{Path: f.Path, Type: f.Type, SAN: []string{}}
			if !errors.Is(err, fs.ErrNotExist) {
				item.Exists, item.Error = true, err.Error()
			}
			out = append(out, item)
			continue
		}
		certs, err := libvirtcert.ParseCerts(data)
		if err != nil {
			out = append(out, CertInfo{Path: f.Path, Type: f.Type, Exists: true, SAN: []string{}, Error: err.Error()})
			continue
		}
		for _, c := range certs {
			out = append(out, describe(f, c))
		}
	}
	return out
}

func describe(f CertFile, c *x509.Certificate) CertInfo {
	sum := sha256.Sum256(c.Raw)
	subject, err := libvirtcert.PrintedDN(c.RawSubject)
	if err != nil {
		subject = c.Subject.String()
	}
	issuer, err := libvirtcert.PrintedDN(c.RawIssuer)
	if err != nil {
		issuer = c.Issuer.String()
	}
	san := libvirtcert.SANList(c.DNSNames, c.IPAddresses)
	if san == nil {
		san = []string{}
	}
	return CertInfo{Path: f.Path, Type: f.Type, Exists: true, Subject: subject, Issuer: issuer,
		NotBefore: utc(c.NotBefore), NotAfter: utc(c.NotAfter), Fingerprint: hex.EncodeToString(sum[:]),
		Serial: libvirtcert.Serial(c), SAN: san}
}

// ReadLibvirtd reads tls_allowed_dn_list from libvirtd.conf ("" path: not asked).
func ReadLibvirtd(path string) *LibvirtdInfo {
	if path == "" {
		return nil
	}
	info := &LibvirtdInfo{Path: path}
	data, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			info.Exists, info.Error = true, err.Error()
		}
		return info
	}
	info.Exists = true
	c, err := libvirtdconf.Parse(data)
	if err != nil {
		info.Error = fmt.Sprintf("%s: %v", path, err)
		return info
	}
	if es := c.Lookup(libvirtdconf.Key); len(es) > 0 {
		dns, ok := es[0].Value.Strings()
		if !ok {
			info.Error = fmt.Sprintf("%s line %d: %s is not a list of strings", path, es[0].Line, libvirtdconf.Key)
			return info
		}
		info.AllowedDNs = dns
	}
	return info
}

func utc(t time.Time) string { return t.UTC().Format(time.RFC3339) }
