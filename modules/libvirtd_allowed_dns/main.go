// Command libvirtd_allowed_dns is the Ansible module that sets libvirtd's
// tls_allowed_dn_list; the logic is in internal/libvirtdconf, the spec in libvirtd_allowed_dns.yml.
package main

import (
	_ "embed"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/libvirtdconf"
)

//go:embed libvirtd_allowed_dns.yml
var doc []byte

func main() { ansible.Main(doc, libvirtdconf.Run) }
