package libvirtcert

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/incus-access/incus-access/internal/fileutil"
)

// The CA file libvirt reads by default, and the SELinux label of certificate files
// (type cert_t), which libvirt's TLS setup uses for every file here.
const (
	DefaultCACertPath = "/etc/pki/CA/cacert.pem"
	CertSELinuxLabel  = "system_u:object_r:cert_t:s0"
)

// DefaultPaths are where libvirt reads a type's certificate and key by default: under
// /etc/pki/libvirt, the key in its private/ directory.
func DefaultPaths(typ string) Paths {
	if typ == "server" {
		return Paths{Cert: "/etc/pki/libvirt/servercert.pem", Key: "/etc/pki/libvirt/private/serverkey.pem", CA: DefaultCACertPath}
	}
	return Paths{Cert: "/etc/pki/libvirt/clientcert.pem", Key: "/etc/pki/libvirt/private/clientkey.pem", CA: DefaultCACertPath}
}

// FileOptions say where the three files go and how they are owned, as the user gave it.
type FileOptions struct {
	Type                          string // client | server: picks the default paths
	CertPath, KeyPath, CACertPath string // "" for the type's default
	InstallCACert                 bool   // whether the CA file is managed
	Owner, Group                  string
	Mode, CACertMode              string // octal, such as "0400"
	SELinuxLabel                  string // set only where SELinux is enabled
}

// Settings are FileOptions checked and resolved: paths, attributes, what to say about SELinux.
type Settings struct {
	Paths                        Paths
	InstallCACert                bool
	CertAttrs, KeyAttrs, CAAttrs fileutil.Attrs
	SELinuxNote                  string // what the result says about SELinux (its "selinux")
}

// Resolve checks the file options and fills in the defaults: absolute paths, no file
// managed twice, octal modes, an owner and group that exist.
func Resolve(o FileOptions) (*Settings, error) {
	s := &Settings{Paths: DefaultPaths(o.Type), InstallCACert: o.InstallCACert}
	if o.CertPath != "" {
		s.Paths.Cert = o.CertPath
	}
	if o.KeyPath != "" {
		s.Paths.Key = o.KeyPath
	}
	if o.CACertPath != "" {
		s.Paths.CA = o.CACertPath
	}
	seen := map[string]string{}
	for _, f := range []struct{ name, path string }{{"cert_path", s.Paths.Cert}, {"key_path", s.Paths.Key}, {"ca_cert_path", s.Paths.CA}} {
		if !strings.HasPrefix(f.path, "/") {
			return nil, fmt.Errorf("%s %q is not an absolute path", f.name, f.path)
		}
		// The CA file may be any path when it is not managed.
		if other, dup := seen[f.path]; dup && (o.InstallCACert || (f.name != "ca_cert_path" && other != "ca_cert_path")) {
			return nil, fmt.Errorf("%s and %s are the same file %s", other, f.name, f.path)
		}
		seen[f.path] = f.name
	}
	mode, err := ParseMode("mode", o.Mode)
	if err != nil {
		return nil, err
	}
	caMode, err := ParseMode("ca_cert_mode", o.CACertMode)
	if err != nil {
		return nil, err
	}
	label := ""
	if fileutil.SELinuxEnabled() {
		label = o.SELinuxLabel
		s.SELinuxNote = "SELinux is enabled: files labelled " + label
		if label == "" {
			s.SELinuxNote = "SELinux is enabled; selinux_label is empty, so the policy's default label applies"
		}
	} else {
		s.SELinuxNote = "SELinux is not enabled on this host: no label set"
	}
	s.CertAttrs = fileutil.Attrs{Owner: o.Owner, Group: o.Group, Mode: mode, SELinuxLabel: label}
	s.KeyAttrs = s.CertAttrs
	s.CAAttrs = fileutil.Attrs{Owner: o.Owner, Group: o.Group, Mode: caMode, SELinuxLabel: label}
	if _, err := fileutil.AttrsDiffer("/", s.CertAttrs); err != nil {
		return nil, err // owner or group does not exist
	}
	return s, nil
}

// AttrsOf is the owner, mode and label the managed file path must have.
func (s *Settings) AttrsOf(path string) fileutil.Attrs {
	switch {
	case path == s.Paths.Key:
		return s.KeyAttrs
	case path == s.Paths.CA && s.InstallCACert:
		return s.CAAttrs
	}
	return s.CertAttrs
}

// ParseMode reads an octal file mode; name is the option it came from.
func ParseMode(name, v string) (os.FileMode, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%s %q is not an octal file mode such as 0400", name, v)
	}
	return os.FileMode(n), nil
}

// NewKeySpec applies the key_size default of each key_type (size 0: the default).
func NewKeySpec(keyType string, size int) KeySpec {
	k := KeySpec{Type: keyType, Size: size}
	if k.Size == 0 {
		k.Size = 2048
		if k.Type == "ecdsa" {
			k.Size = 256
		}
	}
	return k
}
