// Command gateway is a TEST FIXTURE, not a product: a small stand-in for the ssh2incus SSH
// gateway (github.com/mobydeck/ssh2incus), which no registry serves. The project's tests run
// the ssh2incus connection plugin against it and real lab containers. It honours the contract
// measured from ssh2incus 0.10 (docs: ../shared/ssh2incus-contract.md, README.md here):
//
//   - login [instance-user@]instance[.project][~host-user|+host-user], "%40" decoded to '@';
//     logins starting with '+', '~', '%' or '/' are refused (special modes are not implemented);
//   - public keys only, from ~host-user/.ssh/authorized_keys (else
//     /etc/ssh/authorized_keys.d/<host-user>); the host user must be in /etc/passwd and be
//     uid 0 or in one of -g; then `getent passwd <instance-user>` runs in the instance, and
//     any failure is "Permission denied (publickey)", cached for one minute;
//   - exec through the Incus exec API as `<login shell> -c <command>`, cwd the user's home,
//     TERM/USER/HOME/SHELL and the client's LANG/LC_* set; newlines and tabs in the command
//     become spaces; exit codes 126 and 127 are reported as 255;
//   - SFTP: like the real gateway, it copies a static sftp-server (this very binary, which
//     serves SFTP on stdio when started as ssh2incus-sftp-server) to
//     /bin/ssh2incus-sftp-server in the instance once per 20 minutes per instance, and runs it
//     there as the instance user;
//   - a connection silent for longer than --idle-timeout is closed (the client sees rc 255);
//   - host keys from --host-key-dir (ssh_host_*_key), else a random key per process.
//
// Build it static (CGO_ENABLED=0): the binary itself runs inside instances without libc.
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

const sftpServerPath = "/bin/ssh2incus-sftp-server"

func main() {
	if filepath.Base(os.Args[0]) == filepath.Base(sftpServerPath) {
		serveSFTP()
		return
	}
	listen := flag.String("l", ":2222", "listen address")
	socket := flag.String("s", os.Getenv("INCUS_SOCKET"), "Incus unix socket (default $INCUS_SOCKET)")
	groups := flag.String("g", "incus,incus-admin", "groups whose members may log in as host users")
	idle := flag.Duration("idle-timeout", 3*time.Minute, "close connections silent for this long")
	keyDir := flag.String("host-key-dir", "/etc/ssh", "directory with ssh_host_*_key files")
	flag.Parse()
	if *socket == "" {
		*socket = "/var/lib/incus/unix.socket"
	}

	srv, err := incus.ConnectIncusUnix(*socket, nil)
	if err != nil {
		log.Fatalf("connect to Incus at %s: %v", *socket, err)
	}
	g := &Gateway{
		Incus:       srv,
		Accounts:    HostAccounts{Passwd: "/etc/passwd", Group: "/etc/group", KeysDir: "/etc/ssh/authorized_keys.d", AllowedGroups: strings.Split(*groups, ",")},
		IdleTimeout: *idle,
		failed:      map[string]time.Time{},
		sftpReady:   map[string]time.Time{},
	}
	if g.DefaultHostUser, err = currentUser(); err != nil {
		log.Fatal(err)
	}
	config := &ssh.ServerConfig{PublicKeyCallback: g.authenticate}
	if err := addHostKeys(config, *keyDir); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("ssh2incus stand-in listening on %s, Incus at %s", ln.Addr(), *socket)
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go g.serveConn(c, config)
	}
}

// currentUser is the account running the gateway, the default host user.
func currentUser() (string, error) {
	uid := fmt.Sprint(os.Getuid())
	var name string
	err := eachLine("/etc/passwd", func(f []string) bool {
		if len(f) > 2 && f[2] == uid {
			name = f[0]
			return false
		}
		return true
	})
	if name == "" && err == nil {
		err = fmt.Errorf("uid %s is not in /etc/passwd", uid)
	}
	return name, err
}

func addHostKeys(config *ssh.ServerConfig, dir string) error {
	paths, _ := filepath.Glob(filepath.Join(dir, "ssh_host_*_key"))
	n := 0
	for _, p := range paths {
		pem, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			log.Printf("host key %s: %v", p, err)
			continue
		}
		config.AddHostKey(signer)
		n++
	}
	if n == 0 {
		// like ssh2incus: without host key files, a random key per process
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		signer, err := ssh.NewSignerFromKey(priv)
		if err != nil {
			return err
		}
		config.AddHostKey(signer)
		log.Printf("no host keys in %s: using a random key", dir)
	}
	return nil
}

// idleConn closes itself when nothing was read or written for timeout.
type idleConn struct {
	net.Conn
	last atomic.Int64
	done chan struct{}
}

func newIdleConn(c net.Conn, timeout time.Duration) *idleConn {
	ic := &idleConn{Conn: c, done: make(chan struct{})}
	ic.last.Store(time.Now().UnixNano())
	go func() {
		tick := time.NewTicker(max(timeout/10, 100*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-ic.done:
				return
			case <-tick.C:
				if time.Since(time.Unix(0, ic.last.Load())) > timeout {
					log.Printf("%s: silent for %s, closing", c.RemoteAddr(), timeout)
					c.Close()
					return
				}
			}
		}
	}()
	return ic
}

func (c *idleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.last.Store(time.Now().UnixNano())
	return n, err
}

func (c *idleConn) Close() error {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	return c.Conn.Close()
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.last.Store(time.Now().UnixNano())
	return c.Conn.Write(p)
}

// serveSFTP is the sftp-server started inside the instance: SFTP on stdio, as the calling user.
func serveSFTP() {
	srv, err := sftp.NewServer(struct {
		io.Reader
		io.WriteCloser
	}{os.Stdin, os.Stdout})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := srv.Serve(); err != nil && err != io.EOF {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Gateway holds what every connection shares.
type Gateway struct {
	Incus           incus.InstanceServer
	Accounts        HostAccounts
	DefaultHostUser string
	IdleTimeout     time.Duration

	mu        sync.Mutex
	failed    map[string]time.Time // instance-user checks that failed, for one minute
	sftpReady map[string]time.Time // instances holding the sftp-server, for 20 minutes
}
