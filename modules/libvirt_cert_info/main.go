// Command libvirt_cert_info is the Ansible module that reads libvirt TLS certificates and tls_allowed_dn_list,
// changing nothing; the logic is in internal/certinfo, the spec in libvirt_cert_info.yml.
package main

import (
	_ "embed"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/certinfo"
)

//go:embed libvirt_cert_info.yml
var doc []byte

func main() { ansible.Main(doc, certinfo.RunLibvirt) }
