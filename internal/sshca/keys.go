// Package sshca makes sshd trust SSH user CAs: it reads what is on disk (keys file, sshd
// configuration, principals files), builds a TrustPlan of desired file contents as data
// (pure), and applies it after `sshd -t` accepted the candidate configuration. The real
// edges (Vault, the file system, sshd, the reload) stay in their own files.
package sshca

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/incus-access/incus-access/internal/pemkeys"
)

// CAKey is one trusted CA public key, normalized to "type base64 comment".
type CAKey struct {
	Type        string
	Fingerprint string // SHA256:..., as ssh-keygen -l prints it
	Comment     string
	Line        string // the line written to the keys file
	Sources     []string
}

// KeySourceError is a bad key input; it names the source and line and never quotes the
// key text (it may be a private key).
type KeySourceError struct {
	Source string
	Line   int
	Reason string
}

func (e *KeySourceError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s line %d: %s", e.Source, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Source, e.Reason)
}

// ParseCAKeys parses every non-empty, non-comment line of text as an OpenSSH public key
// (authorized_keys format). source names the input in errors (`ca_keys[1]`, `vault
// ssh-client-signer`). The only option accepted on a line is `cert-authority`.
func ParseCAKeys(source, text string) ([]CAKey, error) {
	if keys := pemkeys.Find(text); len(keys) > 0 {
		return nil, &KeySourceError{Source: source, Line: keys[0].Line, Reason: "is a private key (not shown); give the CA's public key (ssh-keygen -y -f KEY prints it)"}
	}
	var keys []CAKey
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKeyLine(line)
		if err != nil {
			return nil, &KeySourceError{Source: source, Line: i + 1, Reason: err.Error()}
		}
		k.Sources = []string{source}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, &KeySourceError{Source: source, Reason: "holds no public key"}
	}
	return keys, nil
}

// parseKeyLine parses one line; its errors describe the line without quoting it.
func parseKeyLine(line string) (CAKey, error) {
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return CAKey{}, describeParseError(line)
	}
	if len(rest) > 0 {
		return CAKey{}, fmt.Errorf("holds more than one key")
	}
	for _, o := range options {
		if !strings.EqualFold(o, "cert-authority") {
			return CAKey{}, fmt.Errorf("has the option %q; a CA key line is just \"type base64 [comment]\"", o)
		}
	}
	if cert, ok := pub.(*ssh.Certificate); ok {
		return CAKey{}, fmt.Errorf("is an SSH certificate (%s, key id %q), not a CA public key; give the public key of the CA that signs certificates", cert.Type(), cert.KeyId)
	}
	return newCAKey(pub, strings.TrimSpace(comment)), nil
}

func newCAKey(pub ssh.PublicKey, comment string) CAKey {
	body := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	line := body
	if comment != "" {
		line += " " + comment
	}
	return CAKey{Type: pub.Type(), Fingerprint: ssh.FingerprintSHA256(pub), Comment: comment, Line: line}
}

// knownTypes are the key types golang.org/x/crypto/ssh parses; a first field that looks
// like a type name but is not one of them is reported as an unknown type.
var knownTypes = map[string]bool{
	ssh.KeyAlgoRSA: true, ssh.KeyAlgoDSA: true, ssh.KeyAlgoECDSA256: true, ssh.KeyAlgoECDSA384: true,
	ssh.KeyAlgoECDSA521: true, ssh.KeyAlgoED25519: true, ssh.KeyAlgoSKECDSA256: true, ssh.KeyAlgoSKED25519: true,
}

func describeParseError(line string) error {
	fields := strings.Fields(line)
	if len(fields) >= 2 {
		typ := fields[0]
		if strings.Contains(typ, "=") || strings.EqualFold(typ, "cert-authority") {
			typ = fields[1] // options first
		}
		if strings.HasSuffix(typ, "-cert-v01@openssh.com") {
			return fmt.Errorf("is an SSH certificate (%s) that cannot be parsed; a CA key is a plain public key", typ)
		}
		if !knownTypes[typ] && looksLikeTypeName(typ) {
			return fmt.Errorf("unknown key type %q (known: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa, sk-*)", typ)
		}
		if knownTypes[typ] {
			return fmt.Errorf("is not a valid %s public key (the base64 part does not decode to one)", typ)
		}
	}
	return fmt.Errorf("is not an OpenSSH public key (expected \"type base64 [comment]\", as in a .pub file)")
}

func looksLikeTypeName(s string) bool {
	if len(s) > 64 || !strings.Contains(s, "-") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '@' || r == '.') {
			return false
		}
	}
	return true
}

// MergeKeys dedupes keys by fingerprint, in order, merging their sources; the first
// occurrence's comment wins.
func MergeKeys(lists ...[]CAKey) []CAKey {
	var out []CAKey
	index := map[string]int{}
	for _, list := range lists {
		for _, k := range list {
			if i, ok := index[k.Fingerprint]; ok {
				out[i].Sources = append(out[i].Sources, k.Sources...)
				continue
			}
			index[k.Fingerprint] = len(out)
			out = append(out, k)
		}
	}
	return out
}
