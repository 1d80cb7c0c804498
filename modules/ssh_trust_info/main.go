// Command ssh_trust_info is the Ansible module that reads what sshd trusts (user CA keys, host certificates, KRL),
// changing nothing; the logic is in internal/certinfo, the spec in ssh_trust_info.yml.
package main

import (
	_ "embed"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/certinfo"
)

//go:embed ssh_trust_info.yml
var doc []byte

func main() { ansible.Main(doc, certinfo.RunSSH) }
