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

// apply carries out a decision: first remove the temp files a killed run left (one may
// be a copy of a private key), then issue (a new key made here, the certificate signed
// and checked before the first write), back up, and write CA, key and certificate
// atomically. onSecret receives the generated key before anything can print it.
func apply(ctx context.Context, j *Job, f *Found, d Decision, ca IssuingCA, now time.Time, onSecret func(string)) (*Applied, error) {
	if err := fileutil.RemoveFiles(f.Stale); err != nil {
		return nil, err
	}
	res := &Applied{}
	files, err := filesToWrite(ctx, j, d, ca, now, onSecret, res)
	if err != nil {
		return res, err
	}
	res.Backups, err = backUp(j, d, files)
	if err != nil {
		return res, err
	}
	var done []string
	for _, f := range files {
		if err := ensureDir(f.path, f.path == j.Paths.Key); err != nil {
			return res, partial(err, done)
		}
		if err := fileutil.WriteAtomic(f.path, f.data, f.a); err != nil {
			return res, partial(err, done)
		}
		done = append(done, f.path)
	}
	return res, nil
}

// fileWrite is one file apply writes.
type fileWrite struct {
	path string
	data []byte
	a    fileutil.Attrs
}

// filesToWrite are the files a decision writes, in order: the CA file, the key, the
// certificate (issued here, into res.Issued), then the files whose attributes only
// need fixing.
func filesToWrite(ctx context.Context, j *Job, d Decision, ca IssuingCA, now time.Time, onSecret func(string), res *Applied) ([]fileWrite, error) {
	var files []fileWrite
	if d.WriteCA {
		files = append(files, fileWrite{j.Paths.CA, j.Want.CAPEM, j.CAAttrs})
	}
	if d.Issue {
		key, err := j.Want.Key.Generate()
		if err != nil {
			return nil, fmt.Errorf("generating the %s key: %v", j.Want.Key, err)
		}
		keyPEM, err := MarshalKey(key)
		if err != nil {
			return nil, fmt.Errorf("encoding the key: %v", err)
		}
		onSecret(string(keyPEM))
		issued, err := ca.Issue(ctx, key, j.Want, now)
		if err != nil {
			return nil, err
		}
		if err := CheckIssued(issued, key, j.Want, ca); err != nil {
			return nil, err
		}
		res.Issued = issued
		files = append(files, fileWrite{j.Paths.Key, keyPEM, j.KeyAttrs}, fileWrite{j.Paths.Cert, EncodeCerts([]*x509.Certificate{issued}), j.CertAttrs})
	}
	for _, p := range d.FixAttrsOf {
		data, _, err := fileutil.Read(p)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p, err)
		}
		files = append(files, fileWrite{p, data, j.AttrsOf(p)})
	}
	return files, nil
}

// backUp copies the files whose content a decision replaces, when backup is set.
func backUp(j *Job, d Decision, files []fileWrite) ([]string, error) {
	var backups []string
	if !j.Backup {
		return nil, nil
	}
	for _, f := range files {
		if !d.Issue && !(d.WriteCA && f.path == j.Paths.CA) {
			continue // only attributes change: the content stays, nothing to keep
		}
		b, err := fileutil.Backup(f.path)
		if err != nil {
			return backups, err
		}
		if b != "" {
			backups = append(backups, b)
		}
	}
	return backups, nil
}

func partial(err error, done []string) error {
	if len(done) == 0 {
		return err
	}
	return fmt.Errorf("%w (already written: %s; the next run replaces the files again)", err, strings.Join(done, ", "))
}

// ensureDir creates a missing parent directory: 0700 for the key's own directory (such as
// libvirt's private/: only root may list the keys), 0755 for every other. Existing directories are left as they are.
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
