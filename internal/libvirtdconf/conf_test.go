package libvirtdconf

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const dn1 = "C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host1"
const dn2 = "C=AU,ST=Queensland,L=Brisbane,O=libvirt.org,CN=host2"

// The shape of Debian's stock libvirtd.conf around the setting, plus a user's own lines.
const stock = `# Master libvirt daemon configuration file
#
listen_tls = 1   # the user's comment after a value
listen_addr = "192.168.0.1";  unix_sock_group = 'libvirt'

# A list of x509 Distinguished Names
#tls_allowed_dn_list = ["DN1", "DN2"]

access_drivers = [ "polkit",
                   "other" ]
max_clients = -5000
`

func TestParseReadsValuesAndLines(t *testing.T) {
	c, err := Parse([]byte(stock))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range c.Entries {
		names = append(names, e.Name)
	}
	if !slices.Equal(names, []string{"listen_tls", "listen_addr", "unix_sock_group", "access_drivers", "max_clients"}) {
		t.Fatalf("entries: %v", names)
	}
	if c.String("listen_addr") != "192.168.0.1" || c.String("unix_sock_group") != "libvirt" {
		t.Fatalf("strings: %q %q", c.String("listen_addr"), c.String("unix_sock_group"))
	}
	l, ok := c.Lookup("access_drivers")[0].Value.Strings()
	if !ok || !slices.Equal(l, []string{"polkit", "other"}) || c.Lookup("access_drivers")[0].Line != 9 {
		t.Fatalf("list: %v %v line %d", l, ok, c.Lookup("access_drivers")[0].Line)
	}
	if v := c.Lookup("max_clients")[0].Value; v.Kind != Number || v.Str != "-5000" {
		t.Fatalf("number: %+v", v)
	}
}

func TestParseStringForms(t *testing.T) {
	c, err := Parse([]byte("a = \"it's\"\nb = 'say \"x\"'\nc = \"\"\"both ' and \" \"\"\"\nd = \"\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a": "it's", "b": `say "x"`, "c": `both ' and " `, "d": ""} {
		if got := c.String(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// Where libvirtd would refuse the file, Parse does too, naming the line.
func TestParseRejectsWhatLibvirtRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		text string
		line int
	}{
		"unterminated":        {"a = 1\nb = \"open\n", 2},
		"string over lines":   {"a = 'x\ny'\n", 1},
		"comment in list":     {"a = [ \"x\", # no\n \"y\" ]\n", 1},
		"missing separator":   {"a = 1 b = 2\n", 1},
		"unclosed list":       {"x = 0\na = [ \"x\"\n", 3},
		"no value":            {"a =\n", 1},
		"bare word":           {"a = yes\n", 1},
		"name with a dash":    {"tls-port = 1\n", 1},
		"list without commas": {"a = [ \"x\" \"y\" ]\n", 1},
	} {
		_, err := Parse([]byte(tc.text))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%s: got %v, want a syntax error", name, err)
			continue
		}
		if se.Line != tc.line {
			t.Errorf("%s: line %d, want %d (%v)", name, se.Line, tc.line, err)
		}
	}
}

func TestQuoteRoundTrips(t *testing.T) {
	for _, s := range []string{dn1, `CN=O'Brien`, `CN=say \"hi\"`, `CN=a\"b',O=x`, `CN=x*?[a]`, `CN=back\\slash`, "", `'`, `"`} {
		q, ok := Quote(s)
		if !ok {
			t.Errorf("%q: not quotable", s)
			continue
		}
		c, err := Parse([]byte("k = [ " + q + " ]\n"))
		if err != nil {
			t.Errorf("%q quoted as %s: %v", s, q, err)
			continue
		}
		if got, _ := c.Lookup("k")[0].Value.Strings(); len(got) != 1 || got[0] != s {
			t.Errorf("%q quoted as %s reads back as %q", s, q, got)
		}
	}
	for _, s := range []string{`CN=it's \"x\"`, `CN='a"""b`, "CN=a\nb"} {
		if q, ok := Quote(s); ok {
			t.Errorf("%q quoted as %s, but libvirtd.conf cannot hold it", s, q)
		}
	}
}

func TestAllowedEntryReplacesOnlyUnquotableQuotes(t *testing.T) {
	if e, exact := AllowedEntry(`CN=O'Brien \"x\",O=y`); !exact || e != `CN=O'Brien \"x\",O=y` {
		t.Fatalf("%q %v", e, exact)
	}
	if e, exact := AllowedEntry(`CN=O'Brien \"x\\"`); exact || e != `CN=O'Brien \?x\\?` {
		t.Fatalf("%q %v", e, exact)
	}
}

func TestPlanInsertsAfterTheCommentedExampleAndKeepsEveryOtherByte(t *testing.T) {
	pl, err := PlanAllowedDNs([]byte(stock), []string{dn2, dn1, dn2})
	if err != nil {
		t.Fatal(err)
	}
	if !pl.Changed || !slices.Equal(pl.After, []string{dn1, dn2}) || !slices.Equal(pl.Added, []string{dn1, dn2}) || pl.Before != nil {
		t.Fatalf("plan: %+v", pl)
	}
	example := "#tls_allowed_dn_list = [\"DN1\", \"DN2\"]\n"
	inserted := "tls_allowed_dn_list = [\n    \"" + dn1 + "\",\n    \"" + dn2 + "\"\n]\n"
	want := strings.Replace(stock, example, example+inserted, 1)
	if string(pl.Data) != want {
		t.Fatalf("got\n%s\nwant\n%s", pl.Data, want)
	}
	again, err := PlanAllowedDNs(pl.Data, []string{dn1, dn2})
	if err != nil || again.Changed || string(again.Data) != want {
		t.Fatalf("second plan: %+v %v", again, err)
	}
}

func TestPlanReplacesTheValueInPlace(t *testing.T) {
	before := "a = 1\ntls_allowed_dn_list=[\"" + dn1 + "\", 'CN=gone']   # who may connect\nb = 2 ; c = 'x'\n"
	pl, err := PlanAllowedDNs([]byte(before), []string{dn1, dn2})
	if err != nil {
		t.Fatal(err)
	}
	want := "a = 1\ntls_allowed_dn_list=[\n    \"" + dn1 + "\",\n    \"" + dn2 + "\"\n]   # who may connect\nb = 2 ; c = 'x'\n"
	if string(pl.Data) != want {
		t.Fatalf("got\n%s\nwant\n%s", pl.Data, want)
	}
	if !slices.Equal(pl.Added, []string{dn2}) || !slices.Equal(pl.Removed, []string{"CN=gone"}) {
		t.Fatalf("added %v removed %v", pl.Added, pl.Removed)
	}
}

// The same DNs in another order or layout are left as the user wrote them.
func TestPlanSameSetIsUnchanged(t *testing.T) {
	before := "tls_allowed_dn_list = [ '" + dn2 + "', \"" + dn1 + "\" ]\n"
	pl, err := PlanAllowedDNs([]byte(before), []string{dn1, dn2})
	if err != nil || pl.Changed || string(pl.Data) != before {
		t.Fatalf("%+v %v", pl, err)
	}
}

func TestPlanAppendsWithoutExampleAndFixesAMissingNewline(t *testing.T) {
	pl, err := PlanAllowedDNs([]byte("listen_tls = 1"), []string{dn1})
	if err != nil {
		t.Fatal(err)
	}
	if want := "listen_tls = 1\ntls_allowed_dn_list = [\n    \"" + dn1 + "\"\n]\n"; string(pl.Data) != want {
		t.Fatalf("got %q", pl.Data)
	}
	pl, err = PlanAllowedDNs(nil, []string{dn1})
	if err != nil || !strings.HasPrefix(string(pl.Data), "tls_allowed_dn_list = [") {
		t.Fatalf("empty file: %q %v", pl.Data, err)
	}
}

func TestPlanQuotesDNsWithQuotesCommasAndGlobs(t *testing.T) {
	dns := []string{`CN=O'Brien\, Pat,O=x`, `CN=\"quoted\",O=x`, `CN=both ' \"x\",O=y`, `CN=star?,O=x`}
	pl, err := PlanAllowedDNs([]byte("x = 1\n"), dns)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`"CN=O'Brien\, Pat,O=x"`, `'CN=\"quoted\",O=x'`, `"""CN=both ' \"x\",O=y"""`, `"CN=star?,O=x"`} {
		if !strings.Contains(string(pl.Data), q) {
			t.Errorf("%s not in\n%s", q, pl.Data)
		}
	}
	c, _ := Parse(pl.Data)
	got, _ := c.Lookup(Key)[0].Value.Strings()
	want := slices.Clone(dns)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("reads back as %q", got)
	}
}

func TestPlanRefusesBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		data string
		dns  []string
		want string
	}{
		"empty list":     {"x = 1\n", nil, "never written"},
		"empty DN":       {"x = 1\n", []string{dn1, " "}, "dns[1] is empty"},
		"control char":   {"x = 1\n", []string{"CN=a\nb"}, "dns[0]"},
		"set twice":      {"tls_allowed_dn_list = ['a']\nx = 1\ntls_allowed_dn_list = ['b']\n", []string{dn1}, "set 2 times (lines 1, 3)"},
		"not a list":     {"tls_allowed_dn_list = \"a\"\n", []string{dn1}, "line 1 is not a list of strings"},
		"broken file":    {"x = 'open\n", []string{dn1}, "line 1: unterminated string"},
		"same set twice": {"tls_allowed_dn_list = ['" + dn1 + "']\ntls_allowed_dn_list = ['b']\n", []string{dn1}, "set 2 times"},
	} {
		_, err := PlanAllowedDNs([]byte(tc.data), tc.dns)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", name, err, tc.want)
		}
	}
}

// A commented example inside a multi-line string is not a place to insert: the re-read
// check refuses instead of writing into the string.
func TestPlanRefusesAnEditThatWouldNotReadBack(t *testing.T) {
	data := "motd = \"\"\"text\n#tls_allowed_dn_list = [\"x\"]\nmore\"\"\"\n"
	if _, err := PlanAllowedDNs([]byte(data), []string{dn1}); err == nil || !strings.Contains(err.Error(), "nothing written") {
		t.Fatalf("got %v", err)
	}
}

func TestTLSFilesAndAdminURI(t *testing.T) {
	c, _ := Parse([]byte("unix_sock_dir = \"/srv/lab/sock/\"\nca_file = \"/etc/pki/CA/cacert.pem\"\n"))
	files, def := TLSFiles(c)
	if !def || files["ca_file"] != "/etc/pki/CA/cacert.pem" || files["key_file"] != "" {
		t.Fatalf("%v %v", files, def)
	}
	if u := AdminURI(c); u != "libvirtd:///system?socket=/srv/lab/sock/libvirt-admin-sock" {
		t.Fatal(u)
	}
	c, _ = Parse([]byte("key_file = '/srv/pki/key.pem'\n"))
	if _, def := TLSFiles(c); def {
		t.Fatal("a custom key_file reported as default")
	}
	if u := AdminURI(c); u != "libvirtd:///system" {
		t.Fatal(u)
	}
}

// Whatever a DN holds: the planned file parses, reads back as the entries, and every other
// statement is unchanged (go test -fuzz FuzzPlanReadsBack ./internal/libvirtdconf).
func FuzzPlanReadsBack(f *testing.F) {
	for _, s := range []string{dn1, `CN=O'Brien`, `CN=a\"b',O=x`, `CN=x"""y'`, `"`, `'"`, "CN=*?[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dn string) {
		pl, err := PlanAllowedDNs([]byte(stock), []string{dn, dn1})
		if err != nil {
			if strings.TrimSpace(dn) == "" || strings.ContainsFunc(dn, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				return
			}
			t.Fatalf("%q: %v", dn, err)
		}
		c, err := Parse(pl.Data)
		if err != nil {
			t.Fatalf("%q: the planned file does not parse: %v", dn, err)
		}
		got, _ := c.Lookup(Key)[0].Value.Strings()
		if !slices.Equal(got, pl.After) || len(c.Entries) != 6 {
			t.Fatalf("%q: reads back as %q (%d statements)", dn, got, len(c.Entries))
		}
		if e, exact := AllowedEntry(dn); exact && !slices.Contains(got, dn) || !exact && !slices.Contains(got, e) {
			t.Fatalf("%q: not listed in %q", dn, got)
		}
	})
}
