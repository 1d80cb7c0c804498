// Command incus_trust is the Ansible module that reconciles an Incus server's trusted
// client certificates; the logic is in internal/incustrust, the spec in incus_trust.yml.
package main

import (
	_ "embed"

	"github.com/incus-access/incus-access/internal/ansible"
	"github.com/incus-access/incus-access/internal/incustrust"
)

//go:embed incus_trust.yml
var doc []byte

func main() { ansible.Main(doc, incustrust.Run) }
