// Command incus-access-modules is every module of this project in one static binary
// (multi-call): the executor caches this one file per host and architecture. Each
// module's spec is its sidecar, the same file modules/<name>/main.go embeds.
package main

import (
	_ "embed"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/certinfo"
	"github.com/incus-access/incus-access/internal/incustrust"
	"github.com/incus-access/incus-access/internal/libvirtcert"
	"github.com/incus-access/incus-access/internal/libvirtdconf"
	"github.com/incus-access/incus-access/internal/sshca"
)

var (
	//go:embed incus_trust/incus_trust.yml
	incusTrustDoc []byte
	//go:embed libvirt_cert/libvirt_cert.yml
	libvirtCertDoc []byte
	//go:embed libvirt_cert_info/libvirt_cert_info.yml
	libvirtCertInfoDoc []byte
	//go:embed libvirtd_allowed_dns/libvirtd_allowed_dns.yml
	libvirtdAllowedDNsDoc []byte
	//go:embed ssh_ca_trust/ssh_ca_trust.yml
	sshCATrustDoc []byte
	//go:embed ssh_trust_info/ssh_trust_info.yml
	sshTrustInfoDoc []byte
)

// Modules maps each module's name to its run function and spec.
var Modules = map[string]ansible.Module{
	"incus_trust":          ansible.Bind(incusTrustDoc, incustrust.Run),
	"libvirt_cert":         ansible.Bind(libvirtCertDoc, libvirtcert.Run),
	"libvirt_cert_info":    ansible.Bind(libvirtCertInfoDoc, certinfo.RunLibvirt),
	"libvirtd_allowed_dns": ansible.Bind(libvirtdAllowedDNsDoc, libvirtdconf.Run),
	"ssh_ca_trust":         ansible.Bind(sshCATrustDoc, sshca.Run),
	"ssh_trust_info":       ansible.Bind(sshTrustInfoDoc, certinfo.RunSSH),
}

func main() { ansible.MainMulti(Modules) }
