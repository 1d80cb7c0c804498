package certinfo

import (
	"fmt"

	"github.com/incus-access/incus-access/internal/ansible"
)

// LibvirtParams are libvirt_cert_info's options (modules/libvirt_cert_info/libvirt_cert_info.yml).
type LibvirtParams struct {
	Certificates []CertFile `ansible:"certificates"`
	LibvirtdConf string     `ansible:"libvirtd_conf"`
}

// RunLibvirt is the libvirt_cert_info module: read the certificates and libvirtd.conf.
func RunLibvirt(m *ansible.Context, p *LibvirtParams) error {
	certs := ReadCerts(p.Certificates)
	m.Set("certificates", certs)
	found := 0
	for _, c := range certs {
		if c.Exists && c.Error == "" {
			found++
		}
	}
	m.Msg = fmt.Sprintf("%d certificate(s) read from %d file(s)", found, len(p.Certificates))
	if d := ReadLibvirtd(p.LibvirtdConf); d != nil {
		m.Set("libvirtd", d)
	}
	return nil
}

// SSHParams are ssh_trust_info's options (modules/ssh_trust_info/ssh_trust_info.yml).
type SSHParams struct {
	KeysFile         string   `ansible:"keys_file"`
	HostCertificates []string `ansible:"host_certificates"`
	RevokedKeysFile  string   `ansible:"revoked_keys_file"`
}

// RunSSH is the ssh_trust_info module: read what sshd trusts and presents.
func RunSSH(m *ansible.Context, p *SSHParams) error {
	info, err := ReadSSH(p.KeysFile, p.HostCertificates, p.RevokedKeysFile)
	if err != nil {
		return err
	}
	m.Set("keys_file", info.KeysFile)
	m.Set("ca_keys", info.CAKeys)
	m.Set("host_certificates", info.HostCertificates)
	m.Set("krl", info.KRL)
	m.Msg = fmt.Sprintf("%d CA key(s), %d host certificate(s)", len(info.CAKeys), len(info.HostCertificates))
	return nil
}
