// Azure RBAC for a Key Vault as a Go program sets it up, with Debian's authorization
// client (2020-04-01-preview, role definitions at 2018-01-01-preview): find the role by
// name, assign it at the vault's scope, use it on the data plane, list it, and remove it.
package kvmockgo

import (
	"net/http"
	"strings"
	"testing"

	mgmt "github.com/Azure/azure-sdk-for-go/services/keyvault/mgmt/2019-09-01/keyvault"
	"github.com/Azure/azure-sdk-for-go/services/keyvault/v7.1/keyvault"
	"github.com/Azure/azure-sdk-for-go/services/preview/authorization/mgmt/2020-04-01-preview/authorization"
	"github.com/Azure/go-autorest/autorest/to"
	"github.com/gofrs/uuid"
)

func TestRBAC(t *testing.T) {
	rg := env(t, "KVMOCK_RG")
	self := env(t, "KVMOCK_OBJECT_ID")
	cloud, authorizer := armAuthorizer(t)
	sub := "00000000-0000-0000-0000-000000000000"

	vaults, vault := createVault(t, "go-rbac", mgmt.VaultProperties{
		Sku:                     &mgmt.Sku{Family: to.StringPtr("A"), Name: mgmt.Standard},
		EnableRbacAuthorization: to.BoolPtr(true),
	})
	name := to.String(vault.Name)
	scope := to.String(vault.ID)
	vaultURI := strings.TrimSuffix(to.String(vault.Properties.VaultURI), "/")
	data := dataClient(t)
	_, err := data.CreateKey(ctx, vaultURI, "k", keyvault.KeyCreateParameters{Kty: keyvault.RSA})
	expectError(t, err, http.StatusForbidden, "Forbidden")

	// The role, found by its name.
	defs := authorization.NewRoleDefinitionsClientWithBaseURI(cloud.ResourceManagerEndpoint, sub)
	defs.Authorizer = authorizer
	page, err := defs.List(ctx, "/subscriptions/"+sub, "roleName eq 'Key Vault Crypto Officer'")
	must(t, err, "RoleDefinitions.List by name")
	found := page.Values()
	if len(found) != 1 || to.String(found[0].RoleName) != "Key Vault Crypto Officer" ||
		!strings.HasSuffix(to.String(found[0].ID), "/14b46e9e-c2b7-41b4-b07b-48a6ebf60603") ||
		to.String(found[0].RoleType) != "BuiltInRole" {
		t.Fatalf("role definitions by name: %+v", found)
	}
	officer := to.String(found[0].ID)

	// Assigned at the vault's scope: the data plane lets the caller create keys.
	assignments := authorization.NewRoleAssignmentsClientWithBaseURI(cloud.ResourceManagerEndpoint, sub)
	assignments.Authorizer = authorizer
	params := authorization.RoleAssignmentCreateParameters{
		RoleAssignmentProperties: &authorization.RoleAssignmentProperties{
			RoleDefinitionID: to.StringPtr(officer), PrincipalID: to.StringPtr(self)}}
	assignment := uuid.Must(uuid.NewV4()).String()
	made, err := assignments.Create(ctx, scope, assignment, params)
	must(t, err, "RoleAssignments.Create")
	if made.StatusCode != http.StatusCreated || to.String(made.Name) != assignment ||
		to.String(made.Scope) != scope || to.String(made.PrincipalID) != self {
		t.Fatalf("created assignment: %d %s at %s for %s", made.StatusCode, to.String(made.Name),
			to.String(made.Scope), to.String(made.PrincipalID))
	}
	_, err = data.CreateKey(ctx, vaultURI, "k", keyvault.KeyCreateParameters{Kty: keyvault.RSA})
	must(t, err, "CreateKey under Crypto Officer")

	// The same assignment under another name is refused; the list shows the one.
	_, err = assignments.Create(ctx, scope, uuid.Must(uuid.NewV4()).String(), params)
	expectError(t, err, http.StatusConflict, "RoleAssignmentExists")
	listed, err := assignments.ListForScope(ctx, scope, "atScope()", "")
	must(t, err, "RoleAssignments.ListForScope")
	mine := 0
	for _, a := range listed.Values() {
		if to.String(a.Name) == assignment && to.String(a.Scope) == scope {
			mine++
		}
	}
	if mine != 1 {
		t.Fatalf("ListForScope shows the assignment %d times: %+v", mine, listed.Values())
	}

	// Removed: the data plane refuses again.
	_, err = assignments.Delete(ctx, scope, assignment, "")
	must(t, err, "RoleAssignments.Delete")
	_, err = data.CreateKey(ctx, vaultURI, "k2", keyvault.KeyCreateParameters{Kty: keyvault.RSA})
	expectError(t, err, http.StatusForbidden, "Forbidden")
	_, err = assignments.Get(ctx, scope, assignment, "")
	expectError(t, err, http.StatusNotFound, "RoleAssignmentNotFound")
	_, err = vaults.Delete(ctx, rg, name)
	must(t, err, "Delete the vault")
}
