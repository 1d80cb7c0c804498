package certinfo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHInfo is what sshd trusts and presents: the user CA keys of TrustedUserCAKeys, the
// host certificates, the KRL (RevokedKeys). Host certificates and the KRL are reported
// when they exist; they are the extension point for host certificates and revocation.
type SSHInfo struct {
	KeysFile         KeysFileInfo `json:"keys_file"`
	CAKeys           []SSHKey     `json:"ca_keys"`
	HostCertificates []SSHCert    `json:"host_certificates"`
	KRL              *KRLInfo     `json:"krl"`
}

// KeysFileInfo says whether the keys file was there and readable.
type KeysFileInfo struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	Error  string `json:"error,omitempty"`
}

// SSHKey is one trusted CA public key (never a private one: those are refused unread).
type SSHKey struct {
	Line        int    `json:"line"`
	Type        string `json:"type"`
	Fingerprint string `json:"fingerprint"` // SHA256:..., as ssh-keygen -l prints it
	Comment     string `json:"comment"`
	Error       string `json:"error,omitempty"`
}

// SSHCert is one OpenSSH certificate (a host certificate).
type SSHCert struct {
	Path        string   `json:"path"`
	Type        string   `json:"type"` // host or user
	KeyID       string   `json:"key_id"`
	Principals  []string `json:"principals"`
	Serial      uint64   `json:"serial"`
	NotBefore   string   `json:"not_before"`
	NotAfter    string   `json:"not_after"` // "" for "forever"
	SigningCA   string   `json:"signing_ca"`
	Fingerprint string   `json:"fingerprint"`
	Error       string   `json:"error,omitempty"`
}

// KRLInfo is the key revocation list file: its size (a KRL's content is binary).
type KRLInfo struct {
	Path   string `json:"path"`
	Exists bool   `json:"exists"`
	Size   int64  `json:"size"`
}

// ReadSSH reads the keys file, every file matching the host certificate patterns and the
// KRL ("": not asked). Nothing missing is a failure: the audit reports it.
func ReadSSH(keysFile string, hostCertPatterns []string, krl string) (*SSHInfo, error) {
	info := &SSHInfo{KeysFile: KeysFileInfo{Path: keysFile}, CAKeys: []SSHKey{}, HostCertificates: []SSHCert{}}
	if keysFile != "" {
		data, err := os.ReadFile(keysFile)
		switch {
		case err == nil:
			info.KeysFile.Exists = true
			info.CAKeys = ParseKeys(string(data))
		case !errors.Is(err, fs.ErrNotExist):
			info.KeysFile.Exists, info.KeysFile.Error = true, err.Error()
		}
	}
	var paths []string
	for _, pat := range hostCertPatterns {
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("host_certificates %q: %v", pat, err)
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	for i, p := range paths {
		if i > 0 && paths[i-1] == p {
			continue
		}
		info.HostCertificates = append(info.HostCertificates, readCert(p))
	}
	if krl != "" {
		k := &KRLInfo{Path: krl}
		if st, err := os.Stat(krl); err == nil {
			k.Exists, k.Size = true, st.Size()
		}
		info.KRL = k
	}
	return info, nil
}

// ParseKeys lists each key line; a line that is not a public key is an item with Error
// (its text is never repeated: it could be a private key pasted by mistake).
func ParseKeys(text string) []SSHKey {
	out := []SSHKey{}
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			out = append(out, SSHKey{Line: i + 1, Error: "not an OpenSSH public key"})
			continue
		}
		out = append(out, SSHKey{Line: i + 1, Type: pub.Type(), Fingerprint: ssh.FingerprintSHA256(pub), Comment: strings.TrimSpace(comment)})
	}
	return out
}

func readCert(path string) SSHCert {
	c := SSHCert{Path: path, Principals: []string{}}
	data, err := os.ReadFile(path)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		c.Error = "not an OpenSSH certificate"
		return c
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		c.Error = "a public key, not a certificate"
		return c
	}
	c.Type = "user"
	if cert.CertType == ssh.HostCert {
		c.Type = "host"
	}
	c.KeyID, c.Serial = cert.KeyId, cert.Serial
	c.Principals = append(c.Principals, cert.ValidPrincipals...)
	c.NotBefore = sshTime(cert.ValidAfter)
	c.NotAfter = sshTime(cert.ValidBefore)
	c.SigningCA = ssh.FingerprintSHA256(cert.SignatureKey)
	c.Fingerprint = ssh.FingerprintSHA256(cert.Key)
	return c
}

// sshTime renders a certificate validity bound; "" for the unbounded ends.
func sshTime(t uint64) string {
	if t == 0 || t == ssh.CertTimeInfinity {
		return ""
	}
	return time.Unix(int64(t), 0).UTC().Format(time.RFC3339)
}
