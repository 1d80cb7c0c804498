// Package incustrust reconciles the trusted client certificates of one Incus server with
// a desired list: it compares the list with GetCertificates() and returns a TrustPlan
// (add, update, rename, replace, remove, each with a reason) as data; Apply executes it.
// Check mode is a plan that is not applied, so it cannot drift from a real run.
package incustrust

import (
	"time"

	"github.com/lxc/incus/v6/shared/api"
)

// NewTrustPlan compares the desired clients with the server's trust store and projects.
// It fails, before anything is written, when the list does not fit this server (a
// project the server lacks, for one). The steps are in plansteps.go, the types in types.go.
func NewTrustPlan(desired []*DesiredClient, current []api.Certificate, projects []string, opts PlanOptions) (*TrustPlan, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	keep := keepSet(opts.Keep)
	if problems := serverProblems(desired, current, projects, keep); len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	entries := readEntries(current)
	match := matchClients(desired, entries)
	names := namesOf(desired)
	strays := sortStrays(entries, match, names, keep, opts)
	plan := &TrustPlan{
		Items:  inExecutionOrder(append(clientItems(desired, match), strays.removals...)),
		Before: snapshot(entries),
	}
	plan.After = predict(plan.Before, plan.Items, desired)
	plan.Warnings = append(strayWarnings(strays, names, opts), adviceWarnings(desired, plan.After, opts)...)
	return plan, nil
}
