package incustrust

import "github.com/incus-access/incus-access/internal/incustrust/trusttest"

type testCert = trusttest.Cert

var (
	newCert      = trusttest.NewCert
	newCertValid = trusttest.NewCertValid
)
