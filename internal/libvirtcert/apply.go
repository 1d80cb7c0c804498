package libvirtcert

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/fileutil"
)

// apply carries out a decision: issue (new key made here, certificate signed and checked
// before the first write), back up, then write CA, key and certificate atomically.
// It returns the new certificate (nil when none was issued) and the backups made.
func apply(ctx context.Context, m *ansible.Context, d Decision, want *Desired, ca IssuingCA, s *settings, backup bool, now time.Time) (*x509.Certificate, []string, error) {
	type file struct {
		path string
		data []byte
		a    fileutil.Attrs
	}
	var files []file
	var issued *x509.Certificate
	if d.Issue {
		key, err := want.Key.Generate()
		if err != nil {
			return nil, nil, fmt.Errorf("generating the %s key: %v", want.Key, err)
		}
		keyPEM, err := MarshalKey(key)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding the key: %v", err)
		}
		m.AddSecret(string(keyPEM))
		issued, err = ca.Issue(ctx, key, want, now)
		if err != nil {
			return nil, nil, err
		}
		if err := CheckIssued(issued, key, want, ca); err != nil {
			return nil, nil, err
		}
		files = append(files, file{s.paths.Key, keyPEM, s.keyAttrs}, file{s.paths.Cert, EncodeCerts([]*x509.Certificate{issued}), s.certAttrs})
	}
	if d.WriteCA {
		files = append([]file{{s.paths.CA, want.CAPEM, s.caA}}, files...)
	}
	for _, p := range d.FixAttrs {
		data, _, err := fileutil.Read(p)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read %s: %w", p, err)
		}
		a := s.certAttrs
		switch p {
		case s.paths.Key:
			a = s.keyAttrs
		case s.paths.CA:
			a = s.caA
		}
		files = append(files, file{p, data, a})
	}

	var backups []string
	if backup {
		for _, f := range files {
			if !d.Issue && !(d.WriteCA && f.path == s.paths.CA) {
				continue // only attributes change: the content stays, nothing to keep
			}
			b, err := fileutil.Backup(f.path)
			if err != nil {
				return nil, backups, err
			}
			if b != "" {
				backups = append(backups, b)
			}
		}
	}
	var done []string
	for _, f := range files {
		if err := ensureDir(f.path, f.path == s.paths.Key); err != nil {
			return nil, backups, partial(err, done)
		}
		if err := fileutil.WriteAtomic(f.path, f.data, f.a); err != nil {
			return nil, backups, partial(err, done)
		}
		done = append(done, f.path)
	}
	return issued, backups, nil
}

func partial(err error, done []string) error {
	if len(done) == 0 {
		return err
	}
	return fmt.Errorf("%w (already written: %s; the next run replaces the files again)", err, strings.Join(done, ", "))
}

// ensureDir creates a missing parent directory: 0700 for the key's own directory (the
// seed's private/), 0755 for every other. Existing directories are left as they are.
func ensureDir(path string, private bool) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	mode := os.FileMode(0o755)
	if private {
		mode = 0o700
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	return os.Chmod(dir, mode) // Mkdir's mode is filtered by the umask
}

// runAbsent removes the certificate and key (the CA file stays: other certificates of
// this host use it too).
func runAbsent(m *ansible.Context, p *Params, s *settings) error {
	var present []string
	for _, path := range []string{s.paths.Cert, s.paths.Key} {
		if _, err := os.Lstat(path); err == nil {
			present = append(present, path)
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot check %s: %w", path, err)
		}
	}
	m.Set("reason", "")
	if len(present) == 0 {
		m.Msg = "certificate and key are absent"
		return nil
	}
	reason := "state absent: " + strings.Join(present, ", ") + " present"
	m.Set("reason", reason)
	m.Changed = true
	if m.DiffMode {
		before := "(unreadable)\n"
		if data, _, _ := fileutil.Read(s.paths.Cert); data != nil {
			if certs, err := ParseCerts(data); err == nil {
				before = summary(certs[0])
			}
		}
		m.AddDiff(s.paths.Cert, before, "(absent)\n")
	}
	if m.CheckMode {
		m.Msg = "would remove " + strings.Join(present, ", ")
		return nil
	}
	var backups []string
	for _, path := range present {
		if p.Backup {
			b, err := fileutil.Backup(path)
			if err != nil {
				return err
			}
			if b != "" {
				backups = append(backups, b)
				m.Set("backup_files", backups)
			}
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("cannot remove %s: %w", path, err)
		}
	}
	m.Msg = "removed " + strings.Join(present, ", ")
	return nil
}

// summary is a certificate as diff mode shows it: public facts only, never key material.
func summary(c *x509.Certificate) string {
	if c == nil {
		return "(no certificate)\n"
	}
	k, _ := SpecOf(c.PublicKey)
	return fmt.Sprintf("subject: %s\nissuer: %s\nsan: [%s]\nkey: %s\nnot_after: %s\nfingerprint: %s\n",
		certDN(c), printedIssuer(c), strings.Join(SANList(c.DNSNames, c.IPAddresses), ", "), k, utc(c.NotAfter), Fingerprint(c))
}

// predictedSummary is the "after" of a check-mode diff.
func predictedSummary(want *Desired, d Decision, cur *x509.Certificate, now time.Time) string {
	if !d.Issue {
		return summary(cur) // only the CA file or attributes change
	}
	return fmt.Sprintf("subject: %s\nissuer: %s\nsan: [%s]\nkey: %s\nnot_after: %s (about)\nfingerprint: (new certificate)\n",
		want.PrintedDN, certDN(want.CA[0]), strings.Join(SANList(want.DNSNames, want.IPs), ", "), want.Key, utc(now.Add(want.Validity)))
}

func printedIssuer(c *x509.Certificate) string {
	dn, err := PrintedDN(c.RawIssuer)
	if err != nil {
		return ""
	}
	return dn
}
