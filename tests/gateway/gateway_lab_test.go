package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
	incus "github.com/lxc/incus/v6/client"
	"golang.org/x/crypto/ssh"
)

// startGateway runs the stand-in in-process on a random port against the lab's host1 incusd.
func startGateway(t *testing.T, l *testlab.Lab) string {
	t.Helper()
	srv, err := incus.ConnectIncusUnix(l.Host1Socket, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{
		Incus:           srv,
		Accounts:        HostAccounts{Passwd: "/etc/passwd", Group: "/etc/group", KeysDir: "/etc/ssh/authorized_keys.d", AllowedGroups: []string{"incus", "incus-admin"}},
		DefaultHostUser: "root",
		IdleTimeout:     time.Minute,
		failed:          map[string]time.Time{},
		sftpReady:       map[string]time.Time{},
	}
	config := &ssh.ServerConfig{PublicKeyCallback: g.authenticate}
	if err := addHostKeys(config, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go g.serveConn(c, config)
		}
	}()
	return ln.Addr().String()
}

func labSigner(t *testing.T, l *testlab.Lab) ssh.Signer {
	t.Helper()
	pem, err := os.ReadFile(l.SSHKey)
	if err != nil {
		t.Fatalf("lab key: %v", err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dial(addr, login string, signer ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: login, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
}

// run executes cmd in a fresh session and returns stdout and the exit code.
func run(t *testing.T, c *ssh.Client, cmd string) (string, int) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out bytes.Buffer
	s.Stdout = &out
	err = s.Run(cmd)
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitStatus()
	default:
		t.Fatalf("run %q: %v", cmd, err)
		return "", -1
	}
}

func TestStandInExecContractLab(t *testing.T) {
	l := testlab.Get(t)
	addr := startGateway(t, l)
	signer := labSigner(t, l)

	root, err := dial(addr, "deb1", signer)
	if err != nil {
		t.Fatalf("login deb1: %v", err)
	}
	defer root.Close()
	for cmd, want := range map[string]int{"exit 3": 3, "exit 126": 255, "exit 127": 255, "no-such-command": 255, "true": 0} {
		if _, rc := run(t, root, cmd); rc != want {
			t.Errorf("%q: rc %d, want %d", cmd, rc, want)
		}
	}
	// newlines and tabs are mangled into spaces
	if out, _ := run(t, root, "echo a\necho\tb"); out != "a echo b\n" {
		t.Errorf("multi-line command: got %q, want %q", out, "a echo b\n")
	}
	if out, _ := run(t, root, "uname -n"); strings.TrimSpace(out) != "deb1" {
		t.Errorf("hostname %q, want deb1", out)
	}

	app, err := dial(addr, "app@deb1.default~root", signer)
	if err != nil {
		t.Fatalf("login app@deb1: %v", err)
	}
	defer app.Close()
	out, _ := run(t, app, `echo "$(id -un) $USER $HOME $SHELL $TERM $(pwd)"`)
	if f := strings.Fields(out); len(f) != 6 || f[0] != "app" || f[1] != "app" || f[2] != f[5] || f[4] != "xterm-256color" {
		t.Errorf("user environment: got %q", out)
	}

	// project production: deb-prod is there, not in default
	if prod, err := dial(addr, "deb-prod.production", signer); err != nil {
		t.Errorf("login deb-prod.production: %v", err)
	} else {
		prod.Close()
	}
	for _, login := range []string{"deb-prod", "nosuchuser@deb1", "gw-missing-instance", "deb1.nosuchproject", "deb1~nosuchhostuser"} {
		if c, err := dial(addr, login, signer); err == nil {
			c.Close()
			t.Errorf("login %q accepted", login)
		}
	}
}
