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

	"github.com/incus-access/incus-access/internal/fileutil"
)

// apply carries out a decision: issue (new key made here, certificate signed and checked
// before the first write), back up, then write CA, key and certificate atomically.
// onSecret receives the generated key before anything can print it.
// It returns the new certificate (nil when none was issued) and the backups made.
func apply(ctx context.Context, d Decision, want *Desired, ca IssuingCA, s *Settings, backup bool, now time.Time, onSecret func(string)) (*x509.Certificate, []string, error) {
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
		onSecret(string(keyPEM))
		issued, err = ca.Issue(ctx, key, want, now)
		if err != nil {
			return nil, nil, err
		}
		if err := CheckIssued(issued, key, want, ca); err != nil {
			return nil, nil, err
		}
		files = append(files, file{s.Paths.Key, keyPEM, s.KeyAttrs}, file{s.Paths.Cert, EncodeCerts([]*x509.Certificate{issued}), s.CertAttrs})
	}
	if d.WriteCA {
		files = append([]file{{s.Paths.CA, want.CAPEM, s.CAAttrs}}, files...)
	}
	for _, p := range d.FixAttrs {
		data, _, err := fileutil.Read(p)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot read %s: %w", p, err)
		}
		files = append(files, file{p, data, s.AttrsOf(p)})
	}

	var backups []string
	if backup {
		for _, f := range files {
			if !d.Issue && !(d.WriteCA && f.path == s.Paths.CA) {
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
		if err := ensureDir(f.path, f.path == s.Paths.Key); err != nil {
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

// Removal is what state=absent removes: the certificate and key files present now. The
// CA file stays: other certificates of this host use it too.
type Removal struct {
	Present []string
	Before  string // the certificate as diff mode shows it
}

// PlanRemoval finds which of the certificate and key are present.
func PlanRemoval(p Paths) (*Removal, error) {
	r := &Removal{Before: "(unreadable)\n"}
	for _, path := range []string{p.Cert, p.Key} {
		if _, err := os.Lstat(path); err == nil {
			r.Present = append(r.Present, path)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cannot check %s: %w", path, err)
		}
	}
	if data, _, _ := fileutil.Read(p.Cert); data != nil {
		if certs, err := ParseCerts(data); err == nil {
			r.Before = summary(certs[0])
		}
	}
	return r, nil
}

// Reason is why the run changes something, or "" when both files are gone already.
func (r *Removal) Reason() string {
	if len(r.Present) == 0 {
		return ""
	}
	return "state absent: " + strings.Join(r.Present, ", ") + " present"
}

// Apply removes the present files, each backed up first when backup is set. The backups
// made are returned on failure too.
func (r *Removal) Apply(backup bool) ([]string, error) {
	var backups []string
	for _, path := range r.Present {
		if backup {
			b, err := fileutil.Backup(path)
			if err != nil {
				return backups, err
			}
			if b != "" {
				backups = append(backups, b)
			}
		}
		if err := os.Remove(path); err != nil {
			return backups, fmt.Errorf("cannot remove %s: %w", path, err)
		}
	}
	return backups, nil
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
