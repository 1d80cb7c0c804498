package incustrust

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/incus-access/incus-access/internal/testlab"
)

func TestValidateClientsProblems(t *testing.T) {
	good, other := testlab.NewIncusClientCert(t, "good"), testlab.NewIncusClientCert(t, "other")
	expired := testlab.NewIncusClientCertValid(t, "old", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	future := testlab.NewIncusClientCertValid(t, "new", time.Now().Add(24*time.Hour), time.Now().Add(48*time.Hour))
	cases := []struct {
		name    string
		clients []Client
		want    []string
	}{
		{"not PEM", []Client{{Name: "ci-prod", Certificate: "hello"}}, []string{`client "ci-prod": certificate: is not PEM`}},
		{"private key", []Client{{Name: "ci-prod", Certificate: good.CertPEM + good.KeyPEM}}, []string{`client "ci-prod": certificate: contains a PRIVATE KEY block (not shown)`}},
		{"expired", []Client{{Name: "old", Certificate: expired.CertPEM}}, []string{`client "old": certificate (fingerprint ` + expired.FP[:12] + `) expired on`}},
		{"not yet valid", []Client{{Name: "new", Certificate: future.CertPEM}}, []string{`client "new": certificate (fingerprint ` + future.FP[:12] + `) is not valid before`}},
		{"duplicate names", []Client{{Name: "a", Certificate: good.CertPEM}, {Name: "a", Certificate: other.CertPEM}}, []string{`client "a": the name is given twice (clients[0] and clients[1])`}},
		{"same cert twice", []Client{{Name: "a", Certificate: good.CertPEM}, {Name: "b", Certificate: strings.ReplaceAll(good.CertPEM, "\n", "\r\n")}}, []string{`client "b": the same certificate (fingerprint ` + good.FP + `) is also given as client "a"`}},
		{"present without certificate", []Client{{Name: "a"}}, []string{`client "a": certificate is empty`}},
		{"empty name", []Client{{Name: " ", Certificate: good.CertPEM}}, []string{`clients[0]: name is empty`}},
		{"several at once", []Client{{Name: "x", Certificate: "junk"}, {Name: "old", Certificate: expired.CertPEM}}, []string{"2 problems, nothing was changed", `client "x"`, `client "old"`}},
	}
	for _, tc := range cases {
		_, secrets, err := ValidateClients(tc.clients, time.Now())
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q, want it to contain %q", tc.name, err, w)
			}
		}
		if tc.name == "private key" {
			if len(secrets) != 1 || !strings.Contains(secrets[0], strings.Split(good.KeyPEM, "\n")[1]) {
				t.Errorf("private key block not returned for masking: %d secrets", len(secrets))
			}
			if strings.Contains(err.Error(), strings.Split(good.KeyPEM, "\n")[1]) {
				t.Errorf("error echoes the key")
			}
		}
	}
	// An expired certificate may still be named to remove it.
	if _, _, err := ValidateClients([]Client{{Name: "old", State: "absent", Certificate: expired.CertPEM}}, time.Now()); err != nil {
		t.Errorf("absent client with an expired certificate: %v", err)
	}
}

func TestValidateClientsNormalizes(t *testing.T) {
	a := testlab.NewIncusClientCert(t, "a")
	desired, secrets, err := ValidateClients([]Client{
		{Name: "ci", Certificate: "  " + strings.ReplaceAll(a.CertPEM, "\n", "\r\n"), Projects: []string{"staging", "default"}},
		{Name: "gone", State: "absent"},
	}, time.Now())
	if err != nil || len(secrets) != 0 || len(desired) != 2 {
		t.Fatalf("desired %v, secrets %d, err %v", desired, len(secrets), err)
	}
	ci, gone := desired[0], desired[1]
	if ci.Type != "client" || ci.State != "present" || ci.Cert == nil || ci.Cert.Fingerprint != a.FP || !reflect.DeepEqual(ci.Projects, []string{"default", "staging"}) {
		t.Errorf("ci = %+v", ci)
	}
	if gone.Cert != nil || gone.State != "absent" || gone.Projects == nil {
		t.Errorf("gone = %+v (an absent client needs no certificate; projects are never nil)", gone)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	cases := []struct {
		problems []string
		want     string
	}{
		{[]string{`client "a": certificate is empty`}, `client "a": certificate is empty; nothing was changed`},
		{[]string{"one", "two"}, "2 problems, nothing was changed: one; two"},
	}
	for _, tc := range cases {
		if got := (&ValidationError{Problems: tc.problems}).Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	cases := []struct{ in, want Client }{
		{Client{Name: "a"}, Client{Name: "a", Type: "client", State: "present"}},
		{Client{Name: "a", Type: "metrics", State: "absent"}, Client{Name: "a", Type: "metrics", State: "absent"}},
	}
	for _, tc := range cases {
		if got := withDefaults(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("withDefaults(%+v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestClientCertificate(t *testing.T) {
	a := testlab.NewIncusClientCert(t, "a")
	cases := []struct {
		name    string
		client  Client
		fp      string // the certificate read, "" for none
		problem string // a prefix of the problem, "" for none
		keys    int
	}{
		{"a certificate", Client{Certificate: a.CertPEM, State: "present"}, a.FP, "", 0},
		{"present without one", Client{State: "present"}, "", "certificate is empty", 0},
		{"absent without one", Client{State: "absent"}, "", "", 0},
		{"absent with one", Client{Certificate: a.CertPEM, State: "absent"}, a.FP, "", 0},
		{"not PEM", Client{Certificate: "hello", State: "present"}, "", "certificate: is not PEM", 0},
		{"with its private key", Client{Certificate: a.CertPEM + a.KeyPEM, State: "present"}, "", "certificate: contains a PRIVATE KEY block (not shown)", 1},
	}
	for _, tc := range cases {
		cert, keys, problem := clientCertificate(tc.client)
		fp := ""
		if cert != nil {
			fp = cert.Fingerprint
		}
		if fp != tc.fp || len(keys) != tc.keys || !strings.HasPrefix(problem, tc.problem) || (tc.problem == "") != (problem == "") {
			t.Errorf("%s: fingerprint %q, %d keys, problem %q", tc.name, fp, len(keys), problem)
		}
		if tc.keys > 0 && (!strings.Contains(keys[0], a.KeyLine()) || strings.Contains(problem, a.KeyLine())) {
			t.Errorf("%s: the key block must be returned for masking and never be in the problem", tc.name)
		}
	}
}

func TestValidityProblem(t *testing.T) {
	now := time.Now()
	cert := func(from, to time.Time) *Certificate {
		return &Certificate{Fingerprint: "0123456789abcdef", NotBefore: from, NotAfter: to}
	}
	cases := []struct {
		name string
		cert *Certificate
		want string
	}{
		{"valid", cert(now.Add(-time.Hour), now.Add(time.Hour)), ""},
		{"expired", cert(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2021, 1, 2, 3, 0, 0, 0, time.UTC)),
			"certificate (fingerprint 0123456789ab) expired on 2021-01-02"},
		{"not yet valid", cert(time.Date(2099, 1, 1, 12, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)),
			"certificate (fingerprint 0123456789ab) is not valid before 2099-01-01T12:00:00Z"},
	}
	for _, tc := range cases {
		if got := validityProblem(tc.cert, now); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestUniqueProjects(t *testing.T) {
	cases := []struct {
		in       []string
		want     []string
		problems []string
	}{
		{nil, []string{}, nil},
		{[]string{"staging", "default"}, []string{"default", "staging"}, nil},
		{[]string{"b", "a", "b", "b"}, []string{"a", "b"}, []string{`project "b" is listed twice`, `project "b" is listed twice`}},
	}
	for _, tc := range cases {
		in := append([]string(nil), tc.in...)
		got, problems := uniqueProjects(tc.in)
		if !reflect.DeepEqual(got, tc.want) || !reflect.DeepEqual(problems, tc.problems) {
			t.Errorf("uniqueProjects(%q) = %q, %q; want %q, %q", tc.in, got, problems, tc.want, tc.problems)
		}
		if !reflect.DeepEqual(in, tc.in) {
			t.Errorf("uniqueProjects changed its input: %q", tc.in)
		}
	}
}
