// Command ssh_ca_trust is the Ansible module that makes sshd trust an SSH user CA; the
// logic is in internal/sshca, the spec in ssh_ca_trust.yml.
package main

import (
	_ "embed"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/sshca"
)

//go:embed ssh_ca_trust.yml
var doc []byte

func main() { ansible.Main(doc, sshca.Run) }
