package clientcerts

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/incus-access/incus-access/internal/fileutil"
)

// ConfDir is where the incus CLI keeps its client certificate and remotes: $INCUS_CONF,
// else ~/.config/incus.
func ConfDir(getenv func(string) string) (string, error) {
	if d := getenv("INCUS_CONF"); d != "" {
		return d, nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("neither INCUS_CONF nor HOME is set: cannot tell where the incus configuration lives")
	}
	return filepath.Join(home, ".config", "incus"), nil
}

// GenerateResult is what generate did.
type GenerateResult struct {
	CertPath, KeyPath string
	Fingerprint       string
	NotAfter          time.Time
	MovedAside        []string // the old pair's new paths (--force)
}

// Generate writes a new client.crt/client.key into dir (created 0700 when missing).
// An existing pair is refused unless force, which first moves it aside with a timestamp.
func Generate(dir, name string, days int, force bool, now time.Time) (*GenerateResult, error) {
	certPEM, keyPEM, err := NewClientCertificate(name, now, days)
	if err != nil {
		return nil, err
	}
	res := &GenerateResult{CertPath: filepath.Join(dir, "client.crt"), KeyPath: filepath.Join(dir, "client.key")}
	var existing []string
	for _, p := range []string{res.KeyPath, res.CertPath} {
		if _, err := os.Lstat(p); err == nil {
			existing = append(existing, p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %s", p, readReason(err))
		}
	}
	if len(existing) > 0 && !force {
		return nil, fmt.Errorf("%s already exists: keep it (back it up with `incus-client-certs backup`), or give --force to move the old pair aside with a timestamp", existing[0])
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	stamp := now.UTC().Format("20060102T150405Z")
	var moved [][2]string
	undo := func() {
		for _, m := range moved {
			os.Rename(m[1], m[0])
		}
	}
	for _, p := range existing {
		aside := p + "." + stamp
		if _, err := os.Lstat(aside); err == nil {
			undo()
			return nil, fmt.Errorf("%s already exists: wait a second and run again", aside)
		}
		if err := os.Rename(p, aside); err != nil {
			undo()
			return nil, fmt.Errorf("cannot move %s aside: %v", p, err)
		}
		moved = append(moved, [2]string{p, aside})
		res.MovedAside = append(res.MovedAside, aside)
	}
	if err := fileutil.WriteAtomic(res.KeyPath, keyPEM, fileutil.Attrs{Mode: 0o600}); err != nil {
		undo()
		return nil, err
	}
	if err := fileutil.WriteAtomic(res.CertPath, certPEM, fileutil.Attrs{Mode: 0o644}); err != nil {
		os.Remove(res.KeyPath)
		undo()
		return nil, err
	}
	cert, _ := ParsePublicCertificate(certPEM)
	res.Fingerprint, res.NotAfter = cert.Fingerprint(), cert.Cert.NotAfter
	return res, nil
}

// ensureDir creates dir with mode 0700 (the key's directory) when it is missing.
func ensureDir(dir string) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %s", dir, readReason(err))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %v", dir, err)
	}
	return os.Chmod(dir, 0o700) // MkdirAll's mode is filtered by the umask
}

// Backup copies the client pair into a new home/incus-cert-backup-<date> (0700, files
// 0600) and returns that directory. The pair must be readable and belong together.
func Backup(dir, home string, now time.Time) (string, error) {
	pair, err := LoadClientPair(dir)
	if err != nil {
		return "", err
	}
	if home == "" {
		return "", errors.New("HOME is not set: cannot tell where to put the backup")
	}
	base := filepath.Join(home, "incus-cert-backup-"+now.Format("2006-01-02"))
	target := base
	if _, err := os.Lstat(target); err == nil {
		target = base + "-" + now.Format("150405")
	}
	if err := os.Mkdir(target, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("%s already exists: remove it (after importing it) and run again", target)
		}
		return "", fmt.Errorf("cannot create %s: %v", target, readReason(err))
	}
	if err := os.Chmod(target, 0o700); err != nil {
		os.Remove(target)
		return "", err
	}
	for name, data := range map[string][]byte{"client.crt": pair.CertPEM, "client.key": pair.KeyPEM} {
		if err := fileutil.WriteAtomic(filepath.Join(target, name), data, fileutil.Attrs{Mode: 0o600}); err != nil {
			os.RemoveAll(target)
			return "", err
		}
	}
	return target, nil
}

// Extract writes the public certificate of dir/client.crt to w, re-encoded so that no
// private key in that file can come through. A client.key that is not the certificate's
// key is refused (the inventory would trust a certificate nobody can use).
func Extract(dir string, w io.Writer) (*PublicCertificate, error) {
	path := filepath.Join(dir, "client.crt")
	cert, _, err := loadCertFile(path)
	if err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, "client.key")
	if data, err := os.ReadFile(keyPath); err == nil {
		if key, err := ParsePrivateKey(data); err == nil && !KeyMatches(cert.Cert, key) {
			return nil, fmt.Errorf("%s is not the key of %s: the certificate would be trusted but unusable", keyPath, path)
		}
	}
	if _, err := w.Write(cert.PEM()); err != nil {
		return nil, fmt.Errorf("cannot write the certificate: %v", err)
	}
	return cert, nil
}

// CertInfo is what info shows about the client certificate.
type CertInfo struct {
	Path        string
	Subject     string
	CommonName  string
	Fingerprint string
	KeyType     string
	ClientAuth  bool
	NotBefore   time.Time
	NotAfter    time.Time
	DaysLeft    int
	KeyStatus   string // "matches client.key", "client.key missing", ...
}

// Info reads dir/client.crt (and checks client.key against it when present).
func Info(dir string, now time.Time) (*CertInfo, error) {
	path := filepath.Join(dir, "client.crt")
	cert, _, err := loadCertFile(path)
	if err != nil {
		return nil, err
	}
	c := cert.Cert
	info := &CertInfo{
		Path: path, Subject: c.Subject.String(), CommonName: c.Subject.CommonName,
		Fingerprint: cert.Fingerprint(), KeyType: KeyType(c), ClientAuth: HasClientAuth(c),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter,
		DaysLeft: int(c.NotAfter.Sub(now).Hours() / 24),
	}
	keyPath := filepath.Join(dir, "client.key")
	data, err := os.ReadFile(keyPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		info.KeyStatus = keyPath + " is missing (the incus CLI cannot use this certificate)"
	case err != nil:
		info.KeyStatus = keyPath + ": " + readReason(err)
	default:
		if key, err := ParsePrivateKey(data); err != nil {
			info.KeyStatus = keyPath + " " + err.Error()
		} else if !KeyMatches(c, key) {
			info.KeyStatus = keyPath + " does NOT belong to this certificate"
		} else {
			info.KeyStatus = keyPath + " belongs to this certificate"
		}
	}
	return info, nil
}
