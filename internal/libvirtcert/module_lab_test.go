package libvirtcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/libvirtcert/libvirtdtest"
	"github.com/incus-access/incus-access/internal/testlab"
)

// client is one issued client certificate in a directory virsh can use as pkipath.
type client struct {
	name, dir string
	res       map[string]any
}

func (c client) files(t testing.TB) (ca, cert, key []byte) {
	t.Helper()
	var err error
	if ca, err = os.ReadFile(filepath.Join(c.dir, "cacert.pem")); err != nil {
		t.Fatal(err)
	}
	cert, _ = os.ReadFile(filepath.Join(c.dir, "clientcert.pem"))
	key, _ = os.ReadFile(filepath.Join(c.dir, "clientkey.pem"))
	return ca, cert, key
}

// pkiDir is a virsh pkipath layout: cacert.pem, clientcert.pem, clientkey.pem.
func pkiArgs(dir string) map[string]any {
	return map[string]any{"cert_path": filepath.Join(dir, "clientcert.pem"), "key_path": filepath.Join(dir, "clientkey.pem"),
		"ca_cert_path": filepath.Join(dir, "cacert.pem")}
}

// issueGuideSet issues a server certificate and the three clients of libvirt's TLS guide (host1 RSA,
// host2 ECDSA, admindesktop RSA 3072) with the given signing arguments.
func issueGuideSet(t *testing.T, signing map[string]any, serverRole, clientRole func(map[string]any) map[string]any) (serverDir string, clients []client) {
	t.Helper()
	serverDir = t.TempDir()
	srv := mustRun(t, merge(serverRole(signing), map[string]any{"type": "server",
		"cert_path": filepath.Join(serverDir, "servercert.pem"), "key_path": filepath.Join(serverDir, "private", "serverkey.pem"),
		"ca_cert_path": filepath.Join(serverDir, "cacert.pem"),
		"subject":      merge(testlab.SeedSubject("labhost"), map[string]any{"san": []string{"127.0.0.1", "localhost"}})}))
	if srv["changed"] != true {
		t.Fatalf("server: %v", srv)
	}
	for _, c := range []struct {
		cn  string
		key map[string]any
	}{
		{"host1", map[string]any{"key_type": "rsa"}},
		{"host2", map[string]any{"key_type": "ecdsa"}},
		{"admindesktop", map[string]any{"key_type": "rsa", "key_size": 3072}},
	} {
		dir := t.TempDir()
		res := mustRun(t, merge(clientRole(signing), pkiArgs(dir), c.key, map[string]any{"subject": testlab.SeedSubject(c.cn)}))
		if want := "C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=" + c.cn; res["subject_dn"] != want {
			t.Fatalf("%s: subject_dn %q, want %q", c.cn, res["subject_dn"], want)
		}
		clients = append(clients, client{c.cn, dir, res})
	}
	return serverDir, clients
}

func startGuideDaemon(t *testing.T, serverDir string, clients []client) *libvirtdtest.Daemon {
	var dns []string
	for _, c := range clients {
		dns = append(dns, c.res["subject_dn"].(string))
	}
	return libvirtdtest.Start(t, libvirtdtest.Config{
		ServerCert: filepath.Join(serverDir, "servercert.pem"), ServerKey: filepath.Join(serverDir, "private", "serverkey.pem"),
		CACert: filepath.Join(serverDir, "cacert.pem"), AllowedDNs: dns})
}

// assertAccepted proves a client with the Go handshake and with virsh.
func assertAccepted(t *testing.T, d *libvirtdtest.Daemon, c client) {
	t.Helper()
	ca, cert, key := c.files(t)
	if err := libvirtdtest.Accepts(d.HostPort(), d.Addr, ca, cert, key); err != nil {
		t.Errorf("%s (%s) refused: %v\n%s", c.name, c.res["subject_dn"], err, d.Log())
	}
	if out, err := libvirtdtest.Virsh(d.Addr, d.Port, c.dir); err != nil || !strings.HasPrefix(out, "test+tls://") {
		t.Errorf("virsh as %s: %v: %s", c.name, err, out)
	}
}

func assertRefused(t *testing.T, d *libvirtdtest.Daemon, name string, ca, cert, key []byte) {
	t.Helper()
	if err := libvirtdtest.Accepts(d.HostPort(), d.Addr, ca, cert, key); !errors.Is(err, libvirtdtest.ErrRefused) {
		t.Errorf("%s was not refused: %v", name, err)
	}
}

// writePKI puts a client's files where virsh looks for them.
func writePKI(t *testing.T, ca, cert, key []byte) string {
	dir := t.TempDir()
	for name, data := range map[string][]byte{"cacert.pem": ca, "clientcert.pem": cert, "clientkey.pem": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func same(m map[string]any) map[string]any { return m }

func TestLabGuideClientsConnectWithInlineCA(t *testing.T) {
	libvirtdtest.Binary(t)
	ca := testlab.NewTestCA(t, "incus-access test CA", testlab.TestCAOptions{})
	serverDir, clients := issueGuideSet(t, ca.Args(), same, same)
	d := startGuideDaemon(t, serverDir, clients)
	for _, c := range clients {
		assertAccepted(t, d, c)
	}
	caPEM, _, _ := clients[0].files(t)

	// The same CA, a DN the list does not hold.
	strangerDir := t.TempDir()
	mustRun(t, merge(ca.Args(), pkiArgs(strangerDir), map[string]any{"subject": testlab.SeedSubject("intruder")}))
	s := client{"intruder", strangerDir, nil}
	_, cert, key := s.files(t)
	assertRefused(t, d, "a DN not in tls_allowed_dn_list", caPEM, cert, key)
	if out, err := libvirtdtest.Virsh(d.Addr, d.Port, strangerDir); err == nil {
		t.Errorf("virsh as intruder connected: %s", out)
	}
	if !strings.Contains(d.Log(), "not on the list of allowed clients") {
		t.Errorf("libvirtd did not log the DN refusal:\n%s", d.Log())
	}

	// host1's DN, signed by another CA.
	other := testlab.NewTestCA(t, "other CA", testlab.TestCAOptions{})
	otherDir := t.TempDir()
	mustRun(t, merge(other.Args(), pkiArgs(otherDir), map[string]any{"subject": testlab.SeedSubject("host1")}))
	_, cert, key = client{"other", otherDir, nil}.files(t)
	assertRefused(t, d, "host1 signed by another CA", caPEM, cert, key)
	if out, err := libvirtdtest.Virsh(d.Addr, d.Port, writePKI(t, caPEM, cert, key)); err == nil {
		t.Errorf("virsh with another CA's certificate connected: %s", out)
	}

	// host1's DN and CA, expired.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	expired := ca.CertWith(t, k, &x509.Certificate{
		Subject:   pkix.Name{Country: []string{"AU"}, Province: []string{"Queensland"}, Locality: []string{"Brisbane"}, Organization: []string{"libvirt.org"}, CommonName: "host1"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true})
	expKey, _ := MarshalKey(k)
	if out, err := libvirtdtest.Virsh(d.Addr, d.Port, writePKI(t, caPEM, expired, expKey)); err == nil {
		t.Errorf("virsh with an expired certificate connected: %s", out)
	}
	// Go's client refuses to present an expired certificate? It does not check; the server must.
	assertRefused(t, d, "an expired host1 certificate", caPEM, expired, expKey)

	// A renewal inside renew_before_days gives a new certificate that still connects.
	args := merge(ca.Args(), pkiArgs(clients[0].dir), map[string]any{"subject": testlab.SeedSubject("host1"), "renew_before_days": 364, "validity_days": 365})
	if res := mustRun(t, args); res["changed"] != false {
		t.Fatalf("a fresh certificate was renewed: %q", res["reason"])
	}
	args["renew_before_days"], args["validity_days"] = 400, 401
	res := mustRun(t, args)
	if !strings.HasPrefix(res["reason"].(string), "expires within renew_before_days") {
		t.Fatalf("reason %q", res["reason"])
	}
	assertAccepted(t, d, client{"host1 renewed", clients[0].dir, res})
}

// An ECDSA server certificate (GnuTLS requires keyEncipherment in its critical keyUsage
// too) with an RSA client, the reverse of TestLabGuideClientsConnectWithInlineCA.
func TestLabECDSAServer(t *testing.T) {
	libvirtdtest.Binary(t)
	ca := testlab.NewTestCA(t, "incus-access test CA", testlab.TestCAOptions{})
	ecdsaServer := func(m map[string]any) map[string]any {
		return merge(m, map[string]any{"key_type": "ecdsa", "key_size": 384})
	}
	serverDir, clients := issueGuideSet(t, ca.Args(), ecdsaServer, same)
	d := startGuideDaemon(t, serverDir, clients[:1])
	assertAccepted(t, d, clients[0])
	ca2, cert, key := clients[1].files(t)
	assertRefused(t, d, "host2, not in this daemon's list", ca2, cert, key)
}

func withRole(role string) func(map[string]any) map[string]any {
	return func(m map[string]any) map[string]any {
		vp := map[string]any{}
		for k, v := range m["vault_pki"].(map[string]any) {
			vp[k] = v
		}
		vp["role"] = role
		return map[string]any{"vault_pki": vp}
	}
}

func TestLabGuideClientsConnectWithVaultPKI(t *testing.T) {
	libvirtdtest.Binary(t)
	signing := testlab.Get(t).VaultPKIArgs(t, "libvirt-client")
	serverDir, clients := issueGuideSet(t, signing, withRole("libvirt-server"), withRole("libvirt-client"))
	d := startGuideDaemon(t, serverDir, clients)
	for _, c := range clients {
		assertAccepted(t, d, c)
		if c.res["issuer"] == "" || !strings.Contains(c.res["issuer"].(string), "incus-access lab libvirt CA") {
			t.Errorf("%s: issuer %q", c.name, c.res["issuer"])
		}
		out, _ := json.Marshal(c.res)
		if strings.Contains(string(out), os.Getenv("LAB_VAULT_SECRET_ID")) {
			t.Fatal("the secret_id is in the result")
		}
	}
	// Converged: a second run signs nothing.
	args := merge(signing, pkiArgs(clients[0].dir), map[string]any{"subject": testlab.SeedSubject("host1")})
	if res := mustRun(t, args); res["changed"] != false || res["fingerprint"] != clients[0].res["fingerprint"] {
		t.Fatalf("second run: changed=%v reason=%q", res["changed"], res["reason"])
	}
	// The role decides the organization: asking for another one fails, naming both
	// subjects, and changes nothing.
	before := snapshot(t, clients[0].dir)
	args["subject"] = merge(testlab.SeedSubject("host1"), map[string]any{"organization": "example.org"})
	res, failed := run(t, args)
	msg, _ := res["msg"].(string)
	if !failed || !strings.Contains(msg, `not the requested "C=AU,ST=Queensland,L=Brisbane,O=example.org,CN=host1"`) || !strings.Contains(msg, "set them on the role") {
		t.Fatalf("failed=%v msg %q", failed, msg)
	}
	if !equalMaps(before, snapshot(t, clients[0].dir)) {
		t.Fatal("the refused certificate was written")
	}
}

func TestLabVaultErrorsChangeNothing(t *testing.T) {
	signing := testlab.Get(t).VaultPKIArgs(t, "libvirt-client")
	vp := signing["vault_pki"].(map[string]any)
	lab := testlab.Get(t)
	// A token whose policies do not allow pki/sign.
	req, _ := http.NewRequest("POST", lab.VaultAddr+"/v1/auth/token/create", strings.NewReader(`{"policies":["default"],"ttl":"10m"}`))
	req.Header.Set("X-Vault-Token", lab.VaultToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.Auth.ClientToken == "" {
		t.Fatal("could not create a token")
	}
	cases := []struct {
		name string
		vp   map[string]any
		msg  string
	}{
		{"unreachable", merge(vp, map[string]any{"addr": "http://127.0.0.1:1"}), "connection refused"},
		{"403", map[string]any{"addr": vp["addr"], "role": "libvirt-client", "auth": "token", "token": tok.Auth.ClientToken}, "permission denied (HTTP 403)"},
		{"unknown role", merge(vp, map[string]any{"role": "no-such-role"}), "no-such-role"},
		{"bad secret_id", merge(vp, map[string]any{"secret_id": "00000000-0000-0000-0000-000000000000"}), "approle login failed"},
		{"wrong mount", merge(vp, map[string]any{"mount": "no-such-pki"}), "no-such-pki"},
	}
	ca := testlab.NewTestCA(t, "inline CA", testlab.TestCAOptions{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// An installed certificate from another CA: the run must not replace it.
			mustRun(t, merge(ca.Args(), pkiArgs(dir), map[string]any{"subject": testlab.SeedSubject("host1")}))
			before := snapshot(t, dir)
			res, failed := run(t, merge(pkiArgs(dir), map[string]any{"subject": testlab.SeedSubject("host1"), "vault_pki": tc.vp}))
			msg, _ := res["msg"].(string)
			if !failed || !strings.Contains(msg, tc.msg) {
				t.Fatalf("failed=%v msg %q, want %q", failed, msg, tc.msg)
			}
			if !equalMaps(before, snapshot(t, dir)) {
				t.Fatal("a failed run changed files")
			}
			out, _ := json.Marshal(res)
			for _, s := range []string{tok.Auth.ClientToken, os.Getenv("LAB_VAULT_SECRET_ID")} {
				if strings.Contains(string(out), s) {
					t.Fatal("a secret is in the result")
				}
			}
		})
	}
}

// After libvirt_cert ends, having issued through Vault PKI or failed after its login, no
// token its AppRole login made is alive; tls_skip_verify warns.
func TestLabApproleTokenDoesNotOutliveTheModule(t *testing.T) {
	l := testlab.Get(t)
	role, roleID, secretID := l.OwnAppRole(t)
	vp := map[string]any{"addr": l.VaultAddr, "role": "libvirt-client", "auth": "approle", "role_id": roleID, "secret_id": secretID,
		"timeout": 10, "tls_skip_verify": true}
	dir := t.TempDir()
	res := mustRun(t, merge(pkiArgs(dir), map[string]any{"subject": testlab.SeedSubject("host1"), "vault_pki": vp}))
	if res["changed"] != true {
		t.Fatalf("nothing issued: %v", res["msg"])
	}
	if w, _ := res["warnings"].([]any); len(w) == 0 || !contains(w, "tls_skip_verify is true") {
		t.Fatalf("no tls_skip_verify warning: %v", res["warnings"])
	}
	if n := l.LiveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) of the module's approle login are alive after it ended", n)
	}
	bad := merge(vp, map[string]any{"role": "no-such-role"})
	if res, failed := run(t, merge(pkiArgs(t.TempDir()), map[string]any{"subject": testlab.SeedSubject("host1"), "vault_pki": bad})); !failed {
		t.Fatalf("an unknown PKI role did not fail: %v", res)
	}
	if n := l.LiveTokensOf(t, role); n != 0 {
		t.Fatalf("%d token(s) alive after a failed run", n)
	}
}

func contains(list []any, s string) bool {
	for _, v := range list {
		if str, _ := v.(string); strings.Contains(str, s) {
			return true
		}
	}
	return false
}
