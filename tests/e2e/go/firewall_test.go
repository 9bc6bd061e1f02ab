// A vault's firewall as a Go program sets it, with Debian's management client
// (2019-09-01): networkAcls that keep loopback out make the data plane refuse with Key
// Vault's 403 ForbiddenByFirewall, and an update that lets loopback in opens it.
package kvmockgo

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	mgmt "github.com/Azure/azure-sdk-for-go/services/keyvault/mgmt/2019-09-01/keyvault"
	"github.com/Azure/azure-sdk-for-go/services/keyvault/v7.1/keyvault"
	"github.com/Azure/go-autorest/autorest"
	"github.com/Azure/go-autorest/autorest/azure"
	"github.com/Azure/go-autorest/autorest/to"
	"github.com/gofrs/uuid"
)

// innerCode is the innererror code of a failed data-plane call.
func innerCode(t *testing.T, err error) string {
	t.Helper()
	var de autorest.DetailedError
	var re *azure.RequestError
	if !errors.As(err, &de) || !errors.As(de.Original, &re) || re.ServiceError == nil {
		t.Fatalf("not a Key Vault error: %v", err)
	}
	code, _ := re.ServiceError.InnerError["code"].(string)
	return code
}

func ipRules(v mgmt.Vault) []string {
	var out []string
	if v.Properties != nil && v.Properties.NetworkAcls != nil && v.Properties.NetworkAcls.IPRules != nil {
		for _, r := range *v.Properties.NetworkAcls.IPRules {
			out = append(out, to.String(r.Value))
		}
	}
	return out
}

func TestFirewall(t *testing.T) {
	rg := env(t, "KVMOCK_RG")
	self := env(t, "KVMOCK_OBJECT_ID")
	tenant := uuid.FromStringOrNil(env(t, "AZURE_TENANT_ID"))
	vaults, vault := createVault(t, "go-fw", mgmt.VaultProperties{
		Sku: &mgmt.Sku{Family: to.StringPtr("A"), Name: mgmt.Premium},
		AccessPolicies: &[]mgmt.AccessPolicyEntry{{
			TenantID: &tenant, ObjectID: to.StringPtr(self),
			Permissions: &mgmt.Permissions{Keys: &[]mgmt.KeyPermissions{
				mgmt.KeyPermissionsGet, mgmt.KeyPermissionsCreate}},
		}},
		NetworkAcls: &mgmt.NetworkRuleSet{
			DefaultAction: mgmt.Deny, Bypass: mgmt.AzureServices,
			IPRules: &[]mgmt.IPRule{{Value: to.StringPtr("203.0.113.7")}},
		},
	})
	name := to.String(vault.Name)
	if got := ipRules(vault); len(got) != 1 || got[0] != "203.0.113.7/32" ||
		vault.Properties.NetworkAcls.DefaultAction != mgmt.Deny || vault.Properties.Sku.Name != mgmt.Premium {
		t.Fatalf("the vault's firewall: rules %v, default %s, sku %s", got,
			vault.Properties.NetworkAcls.DefaultAction, vault.Properties.Sku.Name)
	}
	vaultURI := strings.TrimSuffix(to.String(vault.Properties.VaultURI), "/")

	// Loopback is in no rule: refused before the access policy is asked.
	data := dataClient(t)
	_, err := data.CreateKey(ctx, vaultURI, "refused", keyvault.KeyCreateParameters{Kty: keyvault.EC})
	expectError(t, err, http.StatusForbidden, "Forbidden")
	if code := innerCode(t, err); code != "ForbiddenByFirewall" {
		t.Fatalf("innererror %q, want ForbiddenByFirewall", code)
	}

	// An update with rules for loopback replaces the rule set and lets the caller in.
	updated, err := vaults.Update(ctx, rg, name, mgmt.VaultPatchParameters{
		Properties: &mgmt.VaultPatchProperties{NetworkAcls: &mgmt.NetworkRuleSet{
			DefaultAction: mgmt.Deny,
			IPRules: &[]mgmt.IPRule{{Value: to.StringPtr("127.0.0.0/8")},
				{Value: to.StringPtr("::1/128")}},
		}},
	})
	must(t, err, "Update of the firewall")
	if got := ipRules(updated); strings.Join(got, " ") != "127.0.0.0/8 ::1/128" ||
		!strings.EqualFold(to.String(updated.ID), to.String(vault.ID)) {
		t.Fatalf("updated vault %s: rules %v", to.String(updated.ID), got)
	}
	_, err = data.GetKey(ctx, vaultURI, "refused", "")
	expectError(t, err, http.StatusNotFound, "KeyNotFound") // the refused create made nothing
	_, err = data.CreateKey(ctx, vaultURI, "allowed", keyvault.KeyCreateParameters{Kty: keyvault.EC})
	must(t, err, "CreateKey from loopback once a rule lets it in")

	_, err = vaults.Delete(ctx, rg, name)
	must(t, err, "Delete")
}
