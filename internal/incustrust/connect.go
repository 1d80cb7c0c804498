package incustrust

import (
	"fmt"
	"os"
	"strings"

	incus "github.com/lxc/incus/v6/client"
)

// DefaultSocket is where a packaged incusd listens when INCUS_SOCKET is not set.
const DefaultSocket = "/var/lib/incus/unix.socket"

// Connection says how to reach the server: a unix socket, or HTTPS with a client
// certificate that the server trusts without restriction.
type Connection struct {
	Socket     string
	URL        string
	ClientCert string // PEM text or a path on the managed host
	ClientKey  string // PEM text or a path on the managed host
	ServerCert string // PEM text or a path; empty: the system CAs verify the server
}

// Where names the server for messages: "unix socket /path" or the URL.
func (c Connection) Where() string {
	if c.URL != "" {
		return c.URL
	}
	return "unix socket " + c.socketPath()
}

func (c Connection) socketPath() string {
	if c.Socket != "" {
		return c.Socket
	}
	if s := os.Getenv("INCUS_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

// Connect opens the connection. Errors say which socket or URL could not be reached.
func (c Connection) Connect() (incus.InstanceServer, error) {
	if c.URL == "" {
		path := c.socketPath()
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("cannot reach Incus: unix socket %s: %v", path, statReason(err))
		}
		srv, err := incus.ConnectIncusUnix(path, nil)
		if err != nil {
			return nil, fmt.Errorf("cannot reach Incus at unix socket %s: %v", path, err)
		}
		return srv, nil
	}
	args := &incus.ConnectionArgs{}
	var err error
	if args.TLSClientCert, err = pemOrFile("client_cert", c.ClientCert); err != nil {
		return nil, err
	}
	if args.TLSClientKey, err = pemOrFile("client_key", c.ClientKey); err != nil {
		return nil, err
	}
	if args.TLSServerCert, err = pemOrFile("server_cert", c.ServerCert); err != nil {
		return nil, err
	}
	srv, err := incus.ConnectIncus(c.URL, args)
	if err != nil {
		return nil, fmt.Errorf("cannot reach Incus at %s: %v", c.URL, err)
	}
	info, _, err := srv.GetServer()
	if err != nil {
		return nil, fmt.Errorf("cannot read server information from %s: %v", c.URL, err)
	}
	if info.Auth != "trusted" {
		return nil, fmt.Errorf("Incus at %s does not trust client_cert (auth: %s): the certificate must be trusted and unrestricted to manage the trust store", c.URL, info.Auth)
	}
	return srv, nil
}

// ClientFingerprint is the fingerprint of the certificate the module connects with, if any.
func (c Connection) ClientFingerprint() string {
	if c.URL == "" {
		return ""
	}
	text, err := pemOrFile("client_cert", c.ClientCert)
	if err != nil {
		return ""
	}
	cert, err := ParseCertificate(text)
	if err != nil {
		return ""
	}
	return cert.Fingerprint
}

// pemOrFile takes PEM text as it is and reads anything else as a file on the host.
// Errors name the option, never the content.
func pemOrFile(option, v string) (string, error) {
	if v == "" || strings.Contains(v, "-----BEGIN") {
		return v, nil
	}
	data, err := os.ReadFile(v)
	if err != nil {
		return "", fmt.Errorf("%s: neither PEM text nor a readable file: %v", option, statReason(err))
	}
	return string(data), nil
}

func statReason(err error) string {
	switch {
	case os.IsNotExist(err):
		return "no such file (is incusd running, and is this the right path?)"
	case os.IsPermission(err):
		return "permission denied (run as root or a member of incus-admin)"
	}
	return err.Error()
}
