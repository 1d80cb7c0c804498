package clientcerts

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
	"github.com/lxc/incus/v6/shared/cliconfig"

	"github.com/incus-access/incus-access/internal/fileutil"
)

// DefaultPort is Incus's HTTPS port.
const DefaultPort = 8443

// ServerCertDecision says how the server's certificate is accepted.
type ServerCertDecision struct {
	Accept bool   // --accept-certificate
	Pin    string // --fingerprint: the certificate must have this SHA-256
	// Ask is asked when neither Accept nor Pin is given (interactive use); nil refuses.
	Ask func(fingerprint string) (bool, error)
}

// AddRemoteRequest is one add-remote.
type AddRemoteRequest struct {
	ConfDir string
	Name    string
	Host    string
	Port    int
	Project string // empty: chosen as the incus CLI does
	Server  ServerCertDecision
	Timeout time.Duration
}

// RemoteReport is what add-remote found and wrote.
type RemoteReport struct {
	Name, URL         string
	ServerFingerprint string
	ServerCertPath    string // empty when the system CAs verify the server
	ConfigPath        string
	ClientFingerprint string
	Trusted           bool
	Projects          []string // the projects this certificate sees (when trusted)
	Project           string   // the remote's default project ("" = default)
	Updated           bool     // the remote existed with the same address
}

// ValidateRemoteName refuses what the incus CLI refuses or cannot address as "<name>:".
func ValidateRemoteName(name string) error {
	switch {
	case name == "":
		return errors.New("remote name is empty")
	case strings.ContainsAny(name, ":/ \t\n"):
		return fmt.Errorf("remote name %q: no colons, slashes or spaces (it is used as %q)", name, name+":")
	}
	if _, ok := cliconfig.StaticRemotes[name]; ok {
		return fmt.Errorf("remote name %q is the incus CLI's built-in remote: choose another name", name)
	}
	return nil
}

// ValidateHost accepts an IP address or a DNS name (no scheme, no port).
func ValidateHost(host string) error {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(h) != nil {
		return nil
	}
	if host == "" || len(host) > 253 || strings.ContainsAny(host, ":/@ \t\n[]") {
		return fmt.Errorf("address %q: give an IP address or a host name (the port is a separate argument)", host)
	}
	return nil
}

// ParsePort reads the optional port argument.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %q: give a number from 1 to 65535", s)
	}
	return p, nil
}

// RemoteURL is how the incus CLI writes an HTTPS remote's address.
func RemoteURL(host string, port int) string {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return "https://" + net.JoinHostPort(h, strconv.Itoa(port))
}

// AddRemote connects to the server, settles its certificate, finds out whether it
// trusts the client certificate and which projects that certificate sees, and only then
// writes the remote where the incus CLI keeps it (config.yml, servercerts/<name>.crt).
// Any failure before the write leaves every file as it was.
func AddRemote(req AddRemoteRequest) (*RemoteReport, error) {
	if err := ValidateRemoteName(req.Name); err != nil {
		return nil, err
	}
	if err := ValidateHost(req.Host); err != nil {
		return nil, err
	}
	if req.Server.Pin != "" {
		pin, err := NormalizeFingerprint(req.Server.Pin)
		if err != nil {
			return nil, err
		}
		req.Server.Pin = pin
	}
	if req.Timeout == 0 {
		req.Timeout = 10 * time.Second
	}
	pair, err := LoadClientPair(req.ConfDir)
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(req.ConfDir, "config.yml")
	conf, err := loadConfig(configPath)
	if err != nil {
		return nil, err
	}
	rep := &RemoteReport{Name: req.Name, URL: RemoteURL(req.Host, req.Port), ConfigPath: configPath,
		ClientFingerprint: pair.Cert.Fingerprint()}
	if old, ok := conf.Remotes[req.Name]; ok {
		if old.Addr != rep.URL {
			return nil, fmt.Errorf("remote %q already exists as %s in %s: choose another name, or `incus remote remove %s` first", req.Name, old.Addr, configPath, req.Name)
		}
		rep.Updated = true
	}

	serverCert, systemTrusted, err := fetchServerCertificate(req.Host, req.Port, req.Timeout)
	if err != nil {
		return nil, err
	}
	rep.ServerFingerprint = Fingerprint(serverCert.Raw)
	if err := decideServerCert(req.Server, rep.ServerFingerprint, systemTrusted); err != nil {
		return nil, err
	}
	var serverPEM []byte
	if !systemTrusted {
		serverPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverCert.Raw})
		rep.ServerCertPath = filepath.Join(req.ConfDir, "servercerts", req.Name+".crt")
	}

	srv, err := incus.ConnectIncus(rep.URL, &incus.ConnectionArgs{
		TLSClientCert: string(pair.CertPEM), TLSClientKey: string(pair.KeyPEM), TLSServerCert: string(serverPEM),
		UserAgent: "incus-client-certs",
	})
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %v", rep.URL, err)
	}
	defer srv.Disconnect()
	info, _, err := srv.GetServer()
	if err != nil {
		return nil, fmt.Errorf("cannot read server information from %s: %v", rep.URL, err)
	}
	rep.Trusted = info.Auth == "trusted"
	if rep.Trusted && srv.HasExtension("projects") {
		if rep.Projects, err = srv.GetProjectNames(); err != nil {
			return nil, fmt.Errorf("cannot list the projects on %s: %v", rep.URL, err)
		}
		sort.Strings(rep.Projects)
	}
	if rep.Project, err = chooseProject(req.Project, rep); err != nil {
		return nil, err
	}

	remote := cliconfig.Remote{Addr: rep.URL, Protocol: "incus", AuthType: api.AuthenticationMethodTLS, Project: rep.Project}
	if rep.ServerCertPath != "" {
		if err := ensureDir(req.ConfDir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(rep.ServerCertPath), 0o750); err != nil {
			return nil, fmt.Errorf("cannot create %s: %v", filepath.Dir(rep.ServerCertPath), err)
		}
		if err := fileutil.WriteAtomic(rep.ServerCertPath, serverPEM, fileutil.Attrs{Mode: 0o644}); err != nil {
			return nil, err
		}
	}
	conf.Remotes[req.Name] = remote
	if err := saveConfig(conf, configPath); err != nil {
		return nil, err
	}
	return rep, nil
}

// chooseProject picks the remote's default project as `incus remote add` does: the
// one given (it must be visible), the only visible one, else the default project.
func chooseProject(want string, rep *RemoteReport) (string, error) {
	if want != "" {
		if rep.Trusted && !slices.Contains(rep.Projects, want) {
			return "", fmt.Errorf("project %q is not visible to this certificate on %s (visible: %s)", want, rep.URL, strings.Join(rep.Projects, ", "))
		}
		return want, nil
	}
	switch {
	case len(rep.Projects) == 1:
		return rep.Projects[0], nil
	case len(rep.Projects) == 0, slices.Contains(rep.Projects, api.ProjectDefaultName):
		return "", nil
	}
	return rep.Projects[0], nil // several, none of them default: the first, named in the report
}

// decideServerCert applies --fingerprint / --accept-certificate / the question.
func decideServerCert(d ServerCertDecision, fp string, systemTrusted bool) error {
	if d.Pin != "" {
		if d.Pin != fp {
			return fmt.Errorf("server certificate fingerprint is %s, not the pinned %s: refusing (is this the right server?)", fp, d.Pin)
		}
		return nil
	}
	if d.Accept || systemTrusted {
		return nil
	}
	if d.Ask == nil {
		return fmt.Errorf("the server certificate (fingerprint %s) must be accepted: run interactively, or give --accept-certificate or --fingerprint <sha256>", fp)
	}
	ok, err := d.Ask(fp)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("server certificate not accepted: nothing written")
	}
	return nil
}

// fetchServerCertificate reads the certificate the server presents, and whether the
// system CAs already vouch for it under that host name (then the incus CLI stores none).
func fetchServerCertificate(host string, port int, timeout time.Duration) (*x509.Certificate, bool, error) {
	h := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	addr := net.JoinHostPort(h, strconv.Itoa(port))
	dialer := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(dialer, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: h}) //nolint:gosec // the certificate is checked by fingerprint below
	if err != nil {
		return nil, false, fmt.Errorf("cannot reach https://%s: %v", addr, shortNetError(err))
	}
	defer conn.Close()
	state := conn.ConnectionState()
	if len(state.PeerCertificates) == 0 {
		return nil, false, fmt.Errorf("https://%s presented no certificate", addr)
	}
	leaf := state.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, verr := leaf.Verify(x509.VerifyOptions{DNSName: h, Intermediates: inter})
	return leaf, verr == nil, nil
}

// shortNetError drops Go's "dial tcp a:b:" prefix, keeping the reason.
func shortNetError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// loadConfig reads config.yml with the incus client's own loader (a missing file gives
// its defaults), so that what is written back is what the incus CLI would write.
func loadConfig(path string) (*cliconfig.Config, error) {
	if _, err := os.Stat(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %s", path, readReason(err))
	}
	conf, err := cliconfig.LoadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return conf, nil
}

// saveConfig writes config.yml as the incus CLI does (cliconfig's SaveConfig, into a
// private temp directory) and then puts it in place atomically, keeping the file's mode.
func saveConfig(conf *cliconfig.Config, path string) error {
	tmpDir, err := os.MkdirTemp("", "incus-client-certs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "config.yml")
	if err := conf.SaveConfig(tmp); err != nil {
		return fmt.Errorf("cannot encode %s: %v", path, err)
	}
	data, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return err
	}
	return fileutil.WriteAtomic(path, data, fileutil.Attrs{Mode: mode})
}

// RemoteLine is one remote as list-remotes shows it.
type RemoteLine struct {
	Name, URL, Protocol, AuthType, Project string
	Default, Public, Static, Global        bool
	ServerCert                             string // the pinned server certificate's path, if any
}

// ListRemotes reads the remotes from dir/config.yml as the incus CLI sees them.
func ListRemotes(dir string) ([]RemoteLine, error) {
	conf, err := loadConfig(filepath.Join(dir, "config.yml"))
	if err != nil {
		return nil, err
	}
	var out []RemoteLine
	for name, r := range conf.Remotes {
		l := RemoteLine{Name: name, URL: r.Addr, Protocol: r.Protocol, AuthType: r.AuthType, Project: r.Project,
			Default: name == conf.DefaultRemote, Public: r.Public, Static: r.Static, Global: r.Global}
		if l.Protocol == "" {
			l.Protocol = "incus"
		}
		if l.Project == "" && !r.Public {
			l.Project = api.ProjectDefaultName
		}
		if p := conf.ServerCertPath(name); !r.Public && strings.HasPrefix(r.Addr, "https://") {
			if _, err := os.Stat(p); err == nil {
				l.ServerCert = p
			}
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
