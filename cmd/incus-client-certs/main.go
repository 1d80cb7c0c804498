// Command incus-client-certs is the workstation side of the seed's Incus client
// certificate workflow: `incus-client-certs help` lists its commands.
package main

import (
	"os"

	"golang.org/x/term"

	"github.com/incus-access/incus-access/internal/clientcerts"
)

func main() {
	os.Exit(clientcerts.Main(os.Args[1:], clientcerts.OSEnv(term.IsTerminal(int(os.Stdin.Fd())))))
}
