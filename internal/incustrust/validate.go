package incustrust

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lxc/incus/v6/shared/api"
)

// ValidationError lists every problem found before anything was written.
type ValidationError struct{ Problems []string }

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return e.Problems[0] + "; nothing was changed"
	}
	return fmt.Sprintf("%d problems, nothing was changed: %s", len(e.Problems), strings.Join(e.Problems, "; "))
}

// ValidateClients checks the client list on its own (no server needed): names,
// certificates, validity dates, duplicates. secrets returns the text of any private
// key block found, for masking, even when err is set.
func ValidateClients(clients []Client, now time.Time) (desired []*DesiredClient, secrets []string, err error) {
	var problems []string
	byName := map[string]int{}
	byFP := map[string]int{}
	for i, c := range clients {
		label := fmt.Sprintf("client %q", c.Name)
		if strings.TrimSpace(c.Name) == "" {
			problems = append(problems, fmt.Sprintf("clients[%d]: name is empty", i))
			continue
		}
		c = withDefaults(c)
		if j, dup := byName[c.Name]; dup {
			problems = append(problems, fmt.Sprintf("%s: the name is given twice (clients[%d] and clients[%d])", label, j, i))
			continue
		}
		byName[c.Name] = i
		d := &DesiredClient{Client: c}
		cert, keys, problem := clientCertificate(c)
		secrets = append(secrets, keys...)
		if problem != "" {
			problems = append(problems, label+": "+problem)
			continue
		}
		d.Cert = cert
		if d.Cert != nil {
			if j, dup := byFP[d.Cert.Fingerprint]; dup {
				problems = append(problems, fmt.Sprintf("%s: the same certificate (fingerprint %s) is also given as client %q; one certificate can be trusted under one name only",
					label, d.Cert.Fingerprint, clients[j].Name))
				continue
			}
			byFP[d.Cert.Fingerprint] = i
			if d.present() {
				if problem := validityProblem(d.Cert, now); problem != "" {
					problems = append(problems, label+": "+problem)
					continue
				}
			}
		}
		var projectProblems []string
		d.Projects, projectProblems = uniqueProjects(c.Projects)
		for _, p := range projectProblems {
			problems = append(problems, label+": "+p)
		}
		desired = append(desired, d)
	}
	if len(problems) > 0 {
		return nil, secrets, &ValidationError{Problems: problems}
	}
	return desired, secrets, nil
}

// withDefaults fills in the option defaults: type client, state present.
func withDefaults(c Client) Client {
	if c.Type == "" {
		c.Type = api.CertificateTypeClient
	}
	if c.State == "" {
		c.State = "present"
	}
	return c
}

// clientCertificate parses the client's certificate. A client without one is a problem
// unless it is absent (then it is matched by name only). keys are the private key blocks
// found in the text, for masking.
func clientCertificate(c Client) (cert *Certificate, keys []string, problem string) {
	if c.Certificate == "" {
		if c.State != "absent" {
			return nil, nil, "certificate is empty"
		}
		return nil, nil, ""
	}
	cert, err := ParseCertificate(c.Certificate)
	if err != nil {
		if pk, ok := err.(*PrivateKeyError); ok {
			keys = pk.Blocks
		}
		return nil, keys, fmt.Sprintf("certificate: %s", err)
	}
	return cert, nil, ""
}

// validityProblem says why a certificate cannot be trusted now (expired, not yet valid),
// or "".
func validityProblem(cert *Certificate, now time.Time) string {
	if now.After(cert.NotAfter) {
		return fmt.Sprintf("certificate (fingerprint %s) expired on %s", short(cert.Fingerprint), day(cert.NotAfter))
	}
	if now.Before(cert.NotBefore) {
		return fmt.Sprintf("certificate (fingerprint %s) is not valid before %s", short(cert.Fingerprint), cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return ""
}

// uniqueProjects sorts the project list (never nil, so an empty list stays `[]` in
// results) and names each project listed twice.
func uniqueProjects(projects []string) (unique []string, problems []string) {
	sortedProjects := slices.Clone(projects)
	sort.Strings(sortedProjects)
	for k := 1; k < len(sortedProjects); k++ {
		if sortedProjects[k] == sortedProjects[k-1] {
			problems = append(problems, fmt.Sprintf("project %q is listed twice", sortedProjects[k]))
		}
	}
	unique = slices.Compact(sortedProjects)
	if unique == nil {
		unique = []string{}
	}
	return unique, problems
}
