package libvirtcert

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func fileOptions(change func(*FileOptions)) FileOptions {
	o := FileOptions{Type: "client", CertPath: "/t/cert.pem", KeyPath: "/t/private/key.pem", CACertPath: "/t/ca.pem", InstallCACert: true,
		Owner: strconv.Itoa(os.Getuid()), Group: strconv.Itoa(os.Getgid()), Mode: "0400", CACertMode: "0444", SELinuxLabel: CertSELinuxLabel}
	if change != nil {
		change(&o)
	}
	return o
}

func TestResolve(t *testing.T) {
	s, err := Resolve(fileOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.Paths != (Paths{Cert: "/t/cert.pem", Key: "/t/private/key.pem", CA: "/t/ca.pem"}) {
		t.Errorf("paths %+v", s.Paths)
	}
	if s.CertAttrs.Mode != 0o400 || s.KeyAttrs.Mode != 0o400 || s.CAAttrs.Mode != 0o444 {
		t.Errorf("modes %v %v %v, want 0400 0400 0444", s.CertAttrs.Mode, s.KeyAttrs.Mode, s.CAAttrs.Mode)
	}
	if s.AttrsOf(s.Paths.Key) != s.KeyAttrs || s.AttrsOf(s.Paths.CA) != s.CAAttrs || s.AttrsOf(s.Paths.Cert) != s.CertAttrs {
		t.Error("AttrsOf does not give each file its own attributes")
	}
	if !strings.HasPrefix(s.SELinuxNote, "SELinux is") {
		t.Errorf("selinux %q", s.SELinuxNote)
	}

	server, err := Resolve(fileOptions(func(o *FileOptions) { o.Type, o.CertPath, o.KeyPath, o.CACertPath = "server", "", "", "" }))
	if err != nil {
		t.Fatal(err)
	}
	if server.Paths != DefaultPaths("server") || server.Paths.Cert != "/etc/pki/libvirt/servercert.pem" || server.Paths.CA != DefaultCACertPath {
		t.Errorf("server defaults %+v", server.Paths)
	}

	// An unmanaged CA file may share the certificate's path; its attributes do not apply.
	shared, err := Resolve(fileOptions(func(o *FileOptions) { o.InstallCACert, o.CACertPath = false, o.CertPath }))
	if err != nil {
		t.Fatalf("unmanaged CA file at the certificate's path: %v", err)
	}
	if shared.AttrsOf(shared.Paths.Cert) != shared.CertAttrs {
		t.Error("the certificate got the unmanaged CA file's attributes")
	}
}

// Each bad file option is refused with a message naming it.
func TestResolveRefuses(t *testing.T) {
	cases := []struct {
		name   string
		change func(*FileOptions)
		msg    string
	}{
		{"relative cert_path", func(o *FileOptions) { o.CertPath = "x.pem" }, `cert_path "x.pem" is not an absolute path`},
		{"relative ca_cert_path", func(o *FileOptions) { o.CACertPath = "ca.pem" }, `ca_cert_path "ca.pem" is not an absolute path`},
		{"key at the certificate", func(o *FileOptions) { o.KeyPath = o.CertPath }, "cert_path and key_path are the same file /t/cert.pem"},
		{"managed CA at the key", func(o *FileOptions) { o.CACertPath = o.KeyPath }, "key_path and ca_cert_path are the same file /t/private/key.pem"},
		{"mode", func(o *FileOptions) { o.Mode = "rw" }, `mode "rw" is not an octal file mode`},
		{"mode above 0777", func(o *FileOptions) { o.Mode = "1777" }, `mode "1777" is not an octal`},
		{"ca_cert_mode", func(o *FileOptions) { o.CACertMode = "0999" }, `ca_cert_mode "0999" is not an octal`},
		{"owner", func(o *FileOptions) { o.Owner = "no-such-user-incus-access" }, "no-such-user-incus-access"},
		{"group", func(o *FileOptions) { o.Group = "no-such-group-incus-access" }, "no-such-group-incus-access"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(fileOptions(tc.change))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want it to contain %q", err, tc.msg)
			}
		})
	}
}

func TestNewKeySpecDefaultsTheSize(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		size int
		want KeySpec
	}{
		{"rsa", 0, KeySpec{"rsa", 2048}},
		{"ecdsa", 0, KeySpec{"ecdsa", 256}},
		{"rsa", 4096, KeySpec{"rsa", 4096}},
		{"ecdsa", 384, KeySpec{"ecdsa", 384}},
	} {
		if got := NewKeySpec(tc.typ, tc.size); got != tc.want {
			t.Errorf("NewKeySpec(%q, %d) = %v, want %v", tc.typ, tc.size, got, tc.want)
		}
	}
}
