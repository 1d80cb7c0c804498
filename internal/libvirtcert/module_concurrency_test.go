package libvirtcert

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/fileutil"
	"github.com/incus-access/incus-access/internal/testlab"
)

// startModule starts the built libvirt_cert binary with args, as Ansible does.
func startModule(t *testing.T, args map[string]any) (*exec.Cmd, *[]byte) {
	t.Helper()
	data, _ := json.Marshal(args)
	path := filepath.Join(t.TempDir(), "args.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out := new([]byte)
	cmd := exec.Command(testlab.ModuleBinary(t, "libvirt_cert"), path)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { *out, _ = readAll(stdout) }()
	return cmd, out
}

func readAll(r interface{ Read([]byte) (int, error) }) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, nil
		}
	}
}

// keyMatchesCert fails the test unless the key file is the private key of the certificate.
func keyMatchesCert(t *testing.T, f files, round int) {
	t.Helper()
	c := readCert(t, f.Cert)
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		t.Fatalf("round %d: the key file is not PEM", round)
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		if k, err2 := x509.ParseECPrivateKey(b.Bytes); err2 == nil {
			key = k
		} else if k, err3 := x509.ParsePKCS1PrivateKey(b.Bytes); err3 == nil {
			key = k
		} else {
			t.Fatalf("round %d: the key does not parse: %v", round, err)
		}
	}
	pub := key.(crypto.Signer).Public()
	if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PublicKey) {
		t.Fatalf("round %d: the key is not the certificate's (one run's key beside another run's certificate)", round)
	}
}

func tempsLeft(t *testing.T, f files) []string {
	t.Helper()
	left, err := fileutil.StaleTemps([]string{f.Cert, f.Key, f.CA}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// Two runs at once on the same paths, fifty times: both succeed, and the key on disk is
// always the certificate's (without the lock, one run's key ended beside the other's
// certificate).
func TestConcurrentRunsLeaveKeyAndCertificateOfOneRun(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	f := newFiles(t, t.TempDir())
	args := merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1")})
	for round := 0; round < 50; round++ {
		os.Remove(f.Cert) // each round both runs find nothing and want to issue
		os.Remove(f.Key)
		var wg sync.WaitGroup
		results := make([]map[string]any, 2)
		for i := range results {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i], _ = testlab.RunModule(t, "libvirt_cert", args)
			}(i)
		}
		wg.Wait()
		issued := 0
		for i, r := range results {
			if r["failed"] == true {
				t.Fatalf("round %d run %d failed: %v", round, i, r["msg"])
			}
			if r["changed"] == true {
				issued++
			}
		}
		if issued != 1 {
			t.Fatalf("round %d: %d runs issued a certificate; the lock lets exactly one issue, the other finds it", round, issued)
		}
		keyMatchesCert(t, f, round)
		if left := tempsLeft(t, f); len(left) > 0 {
			t.Fatalf("round %d: temp files left: %v", round, left)
		}
	}
}

// Forty runs killed (SIGKILL) at random moments, then one normal run: no temp file is
// left beside any managed file (a key's temp file is a copy of a private key), and the
// key is the certificate's.
func TestKilledRunsLeaveNothingAfterTheNextRun(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	f := newFiles(t, t.TempDir())
	args := merge(ca.Args(), f.args(), map[string]any{"subject": testlab.SeedSubject("host1"), "key_type": "rsa", "key_size": 2048})
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	killed, leftovers := 0, 0
	for i := 0; i < 40; i++ {
		os.Remove(f.Cert)
		cmd, _ := startModule(t, args)
		time.Sleep(time.Duration(rng.Intn(60_000)) * time.Microsecond)
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			killed++
		}
		cmd.Wait()
		leftovers = max(leftovers, len(tempsLeft(t, f)))
	}
	// One leftover of our naming pattern for sure, whatever the kills hit.
	os.MkdirAll(filepath.Dir(f.Key), 0o700)
	planted := filepath.Join(filepath.Dir(f.Key), ".clientkey.pem.tmp-4242")
	if err := os.WriteFile(planted, []byte("a killed run's copy of a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d runs killed; at most %d temp files were left at once before the recovery run", killed, leftovers)

	res := mustRun(t, args)
	removed, _ := res["removed_temp_files"].([]any)
	if len(removed) == 0 {
		t.Fatalf("the recovery run removed no temp file: %v", res)
	}
	if left := tempsLeft(t, f); len(left) > 0 {
		t.Fatalf("temp files left after the recovery run: %v", left)
	}
	if _, err := os.Stat(planted); !os.IsNotExist(err) {
		t.Fatalf("the planted temp file is still there: %v", err)
	}
	keyMatchesCert(t, f, 0)
	if res2 := mustRun(t, args); res2["changed"] != false {
		t.Fatalf("the run after the recovery changed again: %v", res2["msg"])
	}
}

// A server and a client certificate issued at once share the CA file: fifty rounds of
// both runs at once, both succeed (neither removes the other's temp file of the CA as
// stale) and both keys match their certificates.
func TestServerAndClientAtOnceShareTheCAFile(t *testing.T) {
	ca := testlab.NewTestCA(t, "test CA", testlab.TestCAOptions{})
	dir := t.TempDir()
	client := newFiles(t, dir)
	server := files{Dir: dir, Cert: filepath.Join(dir, "servercert.pem"), Key: filepath.Join(dir, "private", "serverkey.pem"), CA: client.CA}
	argsFor := func(f files, typ string) map[string]any {
		return merge(ca.Args(), f.args(), map[string]any{"type": typ, "subject": testlab.SeedSubject("host1"), "install_ca_cert": true})
	}
	for round := 0; round < 50; round++ {
		for _, f := range []files{client, server} {
			os.Remove(f.Cert)
			os.Remove(f.CA) // both runs write the CA file
		}
		var wg sync.WaitGroup
		results := make([]map[string]any, 2)
		for i, a := range []map[string]any{argsFor(client, "client"), argsFor(server, "server")} {
			wg.Add(1)
			go func(i int, a map[string]any) {
				defer wg.Done()
				results[i], _ = testlab.RunModule(t, "libvirt_cert", a)
			}(i, a)
		}
		wg.Wait()
		for i, r := range results {
			if r["failed"] == true {
				t.Fatalf("round %d run %d failed: %v", round, i, r["msg"])
			}
		}
		keyMatchesCert(t, client, round)
		keyMatchesCert(t, server, round)
	}
}
