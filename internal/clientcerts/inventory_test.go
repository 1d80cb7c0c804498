package clientcerts

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/incus-access/incus-access/internal/testlab"
)

// addedLines returns the lines of after that are not in before, checking that removing
// them gives before byte for byte (nothing else moved or changed).
func addedLines(t *testing.T, before, after string) []string {
	t.Helper()
	b, a := strings.SplitAfter(before, "\n"), strings.SplitAfter(after, "\n")
	i := 0
	for i < len(b) && i < len(a) && a[i] == b[i] {
		i++
	}
	j := 0
	for j < len(b)-i && j < len(a)-i && a[len(a)-1-j] == b[len(b)-1-j] {
		j++
	}
	if i+j != len(b) {
		t.Fatalf("more than one insertion:\n--- before\n%s\n--- after\n%s", before, after)
	}
	return a[i : len(a)-j]
}

func clients(t *testing.T, path string) []map[string]any {
	t.Helper()
	var inv struct {
		All struct {
			Vars struct {
				Clients []map[string]any `yaml:"incus_trusted_clients"`
			} `yaml:"vars"`
		} `yaml:"all"`
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &inv); err != nil {
		t.Fatal(err)
	}
	return inv.All.Vars.Clients
}

// The seed's Quick Start step 4 on the project's own example inventory: the entry is
// appended in the list's style, every other byte stays, the certificate lands beside it.
func TestAddToInventoryKeepsTheSeedInventoryAndAppendsTheClient(t *testing.T) {
	w := newWorkstation(t)
	w.ok("generate", "ci-pipeline-staging")
	dir := filepath.Join(w.home, "infra")
	os.MkdirAll(dir, 0o755)
	example, err := os.ReadFile(filepath.Join(testlab.RepoRoot(), "inventory", "example", "host-incus-cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "host-incus-cluster.yaml")
	os.WriteFile(inv, example, 0o640)
	seed := clients(t, inv)

	r := w.ok("add-to-inventory", inv, "--restricted", "--project", "staging", "--project", "production",
		"--description", "CI/CD pipeline for staging: deploys")
	after, _ := os.ReadFile(inv)
	added := addedLines(t, string(example), string(after))
	want := []string{
		`      - name: "ci-pipeline-staging"` + "\n",
		`        description: "CI/CD pipeline for staging: deploys"` + "\n",
		`        certificate_file: "incus/trusted-client-certs/ci-pipeline-staging.crt"` + "\n",
		"        restricted: true\n",
		"        projects:\n",
		`          - "staging"` + "\n",
		`          - "production"` + "\n",
	}
	if !reflect.DeepEqual(added, want) {
		t.Fatalf("added\n%s\nwant\n%s", strings.Join(added, ""), strings.Join(want, ""))
	}
	list := clients(t, inv)
	if len(list) != len(seed)+1 || !reflect.DeepEqual(list[:len(seed)], seed) || list[len(seed)]["name"] != "ci-pipeline-staging" {
		t.Fatalf("incus_trusted_clients now: %v", list)
	}
	crt, err := os.ReadFile(filepath.Join(dir, "incus", "trusted-client-certs", "ci-pipeline-staging.crt"))
	if err != nil || string(crt) != string(w.read("client.crt")) {
		t.Fatalf("certificate file: %v", err)
	}
	if mode(t, inv) != 0o640 {
		t.Errorf("inventory mode changed to %o", mode(t, inv))
	}
	if !strings.Contains(r.stdout, "certificate_file:") {
		t.Errorf("the added entry is not shown:\n%s", r.stdout)
	}

	// Again: already there, nothing written.
	before := testlab.Tree(t, w.home)
	if r := w.ok("add-to-inventory", inv); !strings.Contains(r.stdout, "nothing changed") {
		t.Errorf("second run:\n%s", r.stdout)
	}
	if testlab.Tree(t, w.home) != before {
		t.Error("the second run wrote something")
	}
	// The same certificate under another name is refused (Incus trusts it once).
	assertOneLineFailure(t, w.run("add-to-inventory", inv, "--name", "second-name"),
		fmt.Sprintf(`this certificate is already incus_trusted_clients[%d] "ci-pipeline-staging"`, len(seed)))
	if testlab.Tree(t, w.home) != before {
		t.Error("the refused run wrote something")
	}
}

func TestAddToInventoryFollowsTheFilesStyle(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"plain strings and flow projects", `all:
  vars:
    incus_trusted_clients:
      - name: ci
        description: CI
        certificate_file: incus/trusted-client-certs/ci.crt
        restricted: true
        projects: [production]   # only production
    other: 1
`, `all:
  vars:
    incus_trusted_clients:
      - name: ci
        description: CI
        certificate_file: incus/trusted-client-certs/ci.crt
        restricted: true
        projects: [production]   # only production
      - name: laptop
        description: 'Laptop: admin'
        certificate_file: incus/trusted-client-certs/laptop.crt
        restricted: true
        projects: [default, production]
    other: 1
`},
		{"empty list", `all:
  vars:
    incus_trusted_clients: []   # nobody yet

    # keep this
    x: 1
`, `all:
  vars:
    incus_trusted_clients:   # nobody yet
      - name: "laptop"
        description: "Laptop: admin"
        certificate_file: "incus/trusted-client-certs/laptop.crt"
        restricted: true
        projects:
          - "default"
          - "production"

    # keep this
    x: 1
`},
		{"no list yet, no final newline", `# inventory
all:
  vars:
    x: 1

  # the hosts
  children:
    incus: {hosts: {h1: }}`, `# inventory
all:
  vars:
    x: 1
    incus_trusted_clients:
      - name: "laptop"
        description: "Laptop: admin"
        certificate_file: "incus/trusted-client-certs/laptop.crt"
        restricted: true
        projects:
          - "default"
          - "production"

  # the hosts
  children:
    incus: {hosts: {h1: }}`},
		{"last entry with a block scalar", `all:
  vars:
    incus_trusted_clients:
    - name: a
      description: |
        first line

        second line
      certificate_file: a.crt
      projects: []
    y: 2
`, `all:
  vars:
    incus_trusted_clients:
    - name: a
      description: |
        first line

        second line
      certificate_file: a.crt
      projects: []
    - name: laptop
      description: 'Laptop: admin'
      certificate_file: incus/trusted-client-certs/laptop.crt
      restricted: true
      projects:
        - default
        - production
    y: 2
`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorkstation(t)
			w.ok("generate", "laptop")
			inv := filepath.Join(w.home, "hosts.yaml")
			os.WriteFile(inv, []byte(c.in), 0o644)
			w.ok("add-to-inventory", inv, "--description", "Laptop: admin", "--restricted", "--project", "default", "--project", "production")
			got, _ := os.ReadFile(inv)
			if string(got) != c.want {
				t.Fatalf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}
