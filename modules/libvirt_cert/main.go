// Command libvirt_cert is the Ansible module that issues and installs a libvirt TLS
// certificate; the logic is in internal/libvirtcert, the spec in libvirt_cert.yml.
package main

import (
	_ "embed"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/libvirtcert"
)

//go:embed libvirt_cert.yml
var doc []byte

func main() { ansible.Main(doc, libvirtcert.Run) }
