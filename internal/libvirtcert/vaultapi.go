package libvirtcert

import (
	"context"

	"github.com/hashicorp/vault/api"
)

// apiClient is the two calls VaultPKI makes, on the Vault API client.
type apiClient struct{ c *api.Client }

func (a apiClient) read(ctx context.Context, path string) (map[string]any, error) {
	s, err := a.c.Logical().ReadWithContext(ctx, path)
	if err != nil || s == nil {
		return nil, err
	}
	return s.Data, nil
}

func (a apiClient) write(ctx context.Context, path string, data map[string]any) (map[string]any, error) {
	s, err := a.c.Logical().WriteWithContext(ctx, path, data)
	if err != nil || s == nil {
		return nil, err
	}
	return s.Data, nil
}
