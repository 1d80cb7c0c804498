package ansible

import (
	"strings"
	"testing"
)

// "-" reads the arguments from stdin: the executor's path, where they never touch the disk.
func TestExecuteReadsArgsFromStdin(t *testing.T) {
	old := stdin
	defer func() { stdin = old }()
	stdin = strings.NewReader(`{"name": "web", "_ansible_check_mode": true}`)
	var got demoParams
	var check bool
	res, failed := Execute(demoDoc, "-", func(m *Context, p *demoParams) error {
		got, check = *p, m.CheckMode
		return nil
	})
	if failed || got.Name != "web" || !check {
		t.Fatalf("failed=%v params=%+v check=%v res=%v", failed, got, check, res)
	}
}

// Garbage on stdin fails without quoting it (it may hold secrets).
func TestExecuteStdinNotJSONIsNotQuoted(t *testing.T) {
	old := stdin
	defer func() { stdin = old }()
	stdin = strings.NewReader(`{"token": "s3cr3t-value"`)
	res, failed := Execute(demoDoc, "-", func(*Context, *demoParams) error { return nil })
	msg, _ := res["msg"].(string)
	if !failed || msg != "arguments on stdin is not a JSON object" || strings.Contains(msg, "s3cr3t") {
		t.Fatalf("failed=%v msg=%q", failed, msg)
	}
}

func TestDispatch(t *testing.T) {
	mods := map[string]Module{"incus_trust": nil, "ssh_ca_trust": nil}
	cases := []struct {
		argv       []string
		name, rest string
	}{
		// Ansible's stock binary path: a copy named AnsiballZ_<module>, the args file in argv[1].
		{[]string{"/tmp/ansible-tmp-1/AnsiballZ_incus_trust", "/tmp/ansible-tmp-1/args"}, "incus_trust", "/tmp/ansible-tmp-1/args"},
		// A copy (or link) under the module's own name, as in plugins/modules.
		{[]string{"plugins/modules/ssh_ca_trust", "args"}, "ssh_ca_trust", "args"},
		// The executor: the multi-call binary with the module as the first argument.
		{[]string{"/var/lib/incus-access/bin/incus-access-modules-abc", "ssh_ca_trust", "-"}, "ssh_ca_trust", "-"},
		{[]string{"incus-access-modules", "nope", "-"}, "", ""},
		{[]string{"incus-access-modules"}, "", ""},
		{nil, "", ""},
	}
	for _, c := range cases {
		name, rest := Dispatch(c.argv, mods)
		if name != c.name || strings.Join(rest, " ") != c.rest {
			t.Errorf("Dispatch(%q) = %q %q, want %q %q", c.argv, name, rest, c.name, c.rest)
		}
	}
	if u := Usage([]string{"/x/incus-access-modules-abc"}, mods); !strings.Contains(u, "incus-access-modules-abc MODULE ARGS_FILE") ||
		!strings.Contains(u, "modules: incus_trust, ssh_ca_trust") {
		t.Fatalf("usage: %s", u)
	}
}
