// The Azure SDK for Go against kvmock, unmodified: Debian's
// golang-github-azure-azure-sdk-for-go (the Key Vault data plane at 7.1, the
// Microsoft.KeyVault management client at 2019-09-01, the resource groups
// client at 2021-04-01 and, in rbac_test.go, the authorization client) with
// go-autorest's authorizers. tests/e2e/test_go_sdk.py builds this package and runs its tests
// against a kvmock it started, one group at a time, each with the environment
// a user would set:
//
//	KVMOCK_VAULT_URL  https://default.vault.localhost:PORT
//	KVMOCK_ARM_URL    https://localhost:PORT/ (the Resource Manager endpoint)
//	KVMOCK_RG         the resource group that vault ids name
//	KVMOCK_EXPECT     for TestDenied: the status the caller must get
//
// and the SDK's own variables (MSI_ENDPOINT, MSI_SECRET, AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET, AZURE_TENANT_ID, AZURE_ENVIRONMENT,
// AZURE_ENVIRONMENT_FILEPATH, SSL_CERT_FILE). Every check compares what the
// SDK returns with what a local computation or an earlier call says it must
// be, so a wrong answer from kvmock fails here.
package kvmockgo

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/services/keyvault/auth"
	mgmt "github.com/Azure/azure-sdk-for-go/services/keyvault/mgmt/2019-09-01/keyvault"
	"github.com/Azure/azure-sdk-for-go/services/keyvault/v7.1/keyvault"
	"github.com/Azure/azure-sdk-for-go/services/resources/mgmt/2021-04-01/resources"
	"github.com/Azure/go-autorest/autorest"
	"github.com/Azure/go-autorest/autorest/azure"
	azauth "github.com/Azure/go-autorest/autorest/azure/auth"
	"github.com/Azure/go-autorest/autorest/date"
	"github.com/Azure/go-autorest/autorest/to"
	"github.com/gofrs/uuid"
)

var ctx = context.Background()

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set (tests/e2e/test_go_sdk.py sets it)", name)
	}
	return v
}

// dataClient is the Key Vault client as the SDK's README builds it: the
// authorizer from the environment (client credentials, else managed identity).
func dataClient(t *testing.T) keyvault.BaseClient {
	t.Helper()
	authorizer, err := auth.NewAuthorizerFromEnvironment()
	if err != nil {
		t.Fatalf("NewAuthorizerFromEnvironment: %v", err)
	}
	c := keyvault.New()
	c.Authorizer = authorizer
	return c
}

func b64(b []byte) *string { return to.StringPtr(base64.RawURLEncoding.EncodeToString(b)) }

func unb64(t *testing.T, s *string) []byte {
	t.Helper()
	if s == nil {
		t.Fatalf("a base64url field is missing")
	}
	b, err := base64.RawURLEncoding.DecodeString(*s)
	if err != nil {
		t.Fatalf("not base64url: %q: %v", *s, err)
	}
	return b
}

// serviceError is the status and Key Vault error code of a failed call.
func serviceError(t *testing.T, err error) (int, string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the call succeeded; an error was expected")
	}
	var de autorest.DetailedError
	if !errors.As(err, &de) {
		t.Fatalf("not an autorest.DetailedError: %T %v", err, err)
	}
	code := ""
	var re *azure.RequestError
	if errors.As(de.Original, &re) && re.ServiceError != nil {
		code = re.ServiceError.Code
	}
	status, _ := de.StatusCode.(int)
	return status, code
}

func expectError(t *testing.T, err error, status int, code string) {
	t.Helper()
	gotStatus, gotCode := serviceError(t, err)
	if gotStatus != status || gotCode != code {
		t.Fatalf("got %d %q, want %d %q (%v)", gotStatus, gotCode, status, code, err)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// kidParts splits https://host/keys/NAME/VERSION and checks the vault part.
func kidParts(t *testing.T, vault string, kid *string) (string, string) {
	t.Helper()
	if kid == nil || !strings.HasPrefix(*kid, vault+"/keys/") {
		t.Fatalf("kid %v is not under %s/keys/", kid, vault)
	}
	parts := strings.Split(strings.TrimPrefix(*kid, vault+"/keys/"), "/")
	if len(parts) != 2 || len(parts[1]) != 32 {
		t.Fatalf("kid %s is not .../keys/NAME/VERSION with a 32-character version", *kid)
	}
	return parts[0], parts[1]
}

func rsaPublic(t *testing.T, k *keyvault.JSONWebKey) *rsa.PublicKey {
	t.Helper()
	if k == nil || k.Kty != keyvault.RSA {
		t.Fatalf("not an RSA key: %+v", k)
	}
	if k.D != nil || k.P != nil || k.Q != nil || k.DP != nil || k.DQ != nil || k.QI != nil {
		t.Fatalf("the answer carries private key material")
	}
	e := new(big.Int).SetBytes(unb64(t, k.E))
	return &rsa.PublicKey{N: new(big.Int).SetBytes(unb64(t, k.N)), E: int(e.Int64())}
}

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1000000000)
}

// TestKeys: create, get, versions, paging, update, and the key operations,
// each result checked with Go's own crypto.
func TestKeys(t *testing.T) {
	vault := env(t, "KVMOCK_VAULT_URL")
	c := dataClient(t)
	name := uniqueName("go-rsa")

	created, err := c.CreateKey(ctx, vault, name, keyvault.KeyCreateParameters{
		Kty:     keyvault.RSA,
		KeySize: to.Int32Ptr(2048),
		KeyOps: &[]keyvault.JSONWebKeyOperation{keyvault.WrapKey, keyvault.UnwrapKey,
			keyvault.Encrypt, keyvault.Decrypt, keyvault.Sign, keyvault.Verify},
		Tags: map[string]*string{"team": to.StringPtr("go")},
	})
	must(t, err, "CreateKey")
	if created.StatusCode != http.StatusOK {
		t.Fatalf("create answered %d", created.StatusCode)
	}
	gotName, v1 := kidParts(t, vault, created.Key.Kid)
	if gotName != name {
		t.Fatalf("kid names %s, want %s", gotName, name)
	}
	pub := rsaPublic(t, created.Key)
	if pub.N.BitLen() != 2048 || pub.E != 65537 {
		t.Fatalf("modulus %d bits, e %d", pub.N.BitLen(), pub.E)
	}
	if created.Attributes == nil || !to.Bool(created.Attributes.Enabled) ||
		created.Attributes.Created == nil || created.Attributes.RecoveryLevel == "" {
		t.Fatalf("attributes: %+v", created.Attributes)
	}
	if to.String(created.Tags["team"]) != "go" {
		t.Fatalf("tags: %v", created.Tags)
	}

	got, err := c.GetKey(ctx, vault, name, "")
	must(t, err, "GetKey latest")
	if to.String(got.Key.Kid) != to.String(created.Key.Kid) || to.String(got.Key.N) != to.String(created.Key.N) {
		t.Fatalf("get latest: %s, want %s", to.String(got.Key.Kid), to.String(created.Key.Kid))
	}

	second, err := c.CreateKey(ctx, vault, name, keyvault.KeyCreateParameters{Kty: keyvault.RSA})
	must(t, err, "CreateKey second version")
	_, v2 := kidParts(t, vault, second.Key.Kid)
	if v2 == v1 {
		t.Fatalf("the second version has the first one's id")
	}
	old, err := c.GetKey(ctx, vault, name, v1)
	must(t, err, "GetKey by version")
	if to.String(old.Key.N) != to.String(created.Key.N) {
		t.Fatalf("version %s answered another key", v1)
	}

	// Versions one per page: the SDK follows nextLink.
	seen := map[string]bool{}
	pages := 0
	for page, err := c.GetKeyVersions(ctx, vault, name, to.Int32Ptr(1)); page.NotDone(); err = page.NextWithContext(ctx) {
		must(t, err, "GetKeyVersions page")
		pages++
		for _, item := range page.Values() {
			_, v := kidParts(t, vault, item.Kid)
			seen[v] = true
		}
	}
	if len(seen) != 2 || !seen[v1] || !seen[v2] || pages < 2 {
		t.Fatalf("versions %v in %d pages, want %s and %s in 2 or more", seen, pages, v1, v2)
	}

	// The key list, two per page, finds this key once, by its base id.
	found := 0
	it, err := c.GetKeysComplete(ctx, vault, to.Int32Ptr(2))
	for ; err == nil && it.NotDone(); err = it.NextWithContext(ctx) {
		if to.String(it.Value().Kid) == vault+"/keys/"+name {
			found++
		}
	}
	must(t, err, "GetKeys")
	if found != 1 {
		t.Fatalf("the key list shows %s %d times", name, found)
	}

	// Update: tags and expiry on the latest version; the first keeps its own.
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
	expires := date.UnixTime(exp)
	updated, err := c.UpdateKey(ctx, vault, name, v2, keyvault.KeyUpdateParameters{
		KeyAttributes: &keyvault.KeyAttributes{Expires: &expires},
		Tags:          map[string]*string{"stage": to.StringPtr("updated")},
	})
	must(t, err, "UpdateKey")
	if updated.Attributes.Expires == nil || !time.Time(*updated.Attributes.Expires).Equal(exp) {
		t.Fatalf("expires %v, want %v", updated.Attributes.Expires, exp)
	}
	if to.String(updated.Tags["stage"]) != "updated" || updated.Tags["team"] != nil {
		t.Fatalf("tags after update: %v", updated.Tags)
	}

	// wrapKey with the service, unwrap locally is impossible (no private key):
	// wrap locally with the public key, unwrap with the service, and round trip.
	cek := make([]byte, 32)
	_, _ = rand.Read(cek)
	local, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPublic(t, old.Key), cek, nil)
	must(t, err, "local OAEP-256")
	unwrapped, err := c.UnwrapKey(ctx, vault, name, v1, keyvault.KeyOperationsParameters{
		Algorithm: keyvault.RSAOAEP256, Value: b64(local)})
	must(t, err, "UnwrapKey")
	if !bytes.Equal(unb64(t, unwrapped.Result), cek) {
		t.Fatalf("unwrapKey did not return the locally wrapped key")
	}
	if to.String(unwrapped.Kid) != vault+"/keys/"+name+"/"+v1 {
		t.Fatalf("unwrapKey kid %s", to.String(unwrapped.Kid))
	}
	wrapped, err := c.WrapKey(ctx, vault, name, v2, keyvault.KeyOperationsParameters{
		Algorithm: keyvault.RSAOAEP256, Value: b64(cek)})
	must(t, err, "WrapKey")
	if len(unb64(t, wrapped.Result)) != 256 {
		t.Fatalf("wrapped length %d", len(unb64(t, wrapped.Result)))
	}
	back, err := c.UnwrapKey(ctx, vault, name, v2, keyvault.KeyOperationsParameters{
		Algorithm: keyvault.RSAOAEP256, Value: wrapped.Result})
	must(t, err, "UnwrapKey of WrapKey")
	if !bytes.Equal(unb64(t, back.Result), cek) {
		t.Fatalf("wrap then unwrap changed the key")
	}
	// The first version cannot unwrap what the second wrapped.
	_, err = c.UnwrapKey(ctx, vault, name, v1, keyvault.KeyOperationsParameters{
		Algorithm: keyvault.RSAOAEP256, Value: wrapped.Result})
	expectError(t, err, http.StatusBadRequest, "BadParameter")

	// encrypt with RSA-OAEP (SHA-1), decrypt with the service
	plain := []byte("kvmock go sdk")
	enc, err := rsa.EncryptOAEP(crypto.SHA1.New(), rand.Reader, rsaPublic(t, second.Key), plain, nil)
	must(t, err, "local OAEP")
	dec, err := c.Decrypt(ctx, vault, name, v2, keyvault.KeyOperationsParameters{
		Algorithm: keyvault.RSAOAEP, Value: b64(enc)})
	must(t, err, "Decrypt")
	if !bytes.Equal(unb64(t, dec.Result), plain) {
		t.Fatalf("decrypt: %q", unb64(t, dec.Result))
	}
	svcEnc, err := c.Encrypt(ctx, vault, name, v2, keyvault.KeyOperationsParameters{
		Algorithm: keyvault.RSA15, Value: b64(plain)})
	must(t, err, "Encrypt RSA1_5")
	svcDec, err := c.Decrypt(ctx, vault, name, v2, keyvault.KeyOperationsParameters{
		Algorithm: keyvault.RSA15, Value: svcEnc.Result})
	must(t, err, "Decrypt RSA1_5")
	if !bytes.Equal(unb64(t, svcDec.Result), plain) {
		t.Fatalf("RSA1_5 round trip: %q", unb64(t, svcDec.Result))
	}

	// sign with the service, verify locally and with the service
	digest := sha256.Sum256([]byte("a message"))
	for _, alg := range []keyvault.JSONWebKeySignatureAlgorithm{keyvault.RS256, keyvault.PS256} {
		sig, err := c.Sign(ctx, vault, name, v2, keyvault.KeySignParameters{Algorithm: alg, Value: b64(digest[:])})
		must(t, err, "Sign "+string(alg))
		raw := unb64(t, sig.Result)
		if alg == keyvault.RS256 {
			err = rsa.VerifyPKCS1v15(rsaPublic(t, second.Key), crypto.SHA256, digest[:], raw)
		} else {
			err = rsa.VerifyPSS(rsaPublic(t, second.Key), crypto.SHA256, digest[:], raw, nil)
		}
		must(t, err, "local verify "+string(alg))
		ok, err := c.Verify(ctx, vault, name, v2, keyvault.KeyVerifyParameters{
			Algorithm: alg, Digest: b64(digest[:]), Signature: sig.Result})
		must(t, err, "Verify "+string(alg))
		if !to.Bool(ok.Value) {
			t.Fatalf("the service rejects its own %s signature", alg)
		}
		other := sha256.Sum256([]byte("another message"))
		ok, err = c.Verify(ctx, vault, name, v2, keyvault.KeyVerifyParameters{
			Algorithm: alg, Digest: b64(other[:]), Signature: sig.Result})
		must(t, err, "Verify other digest")
		if to.Bool(ok.Value) {
			t.Fatalf("%s verified a signature over another digest", alg)
		}
	}

	// A disabled version refuses operations, and says why.
	_, err = c.UpdateKey(ctx, vault, name, v1, keyvault.KeyUpdateParameters{
		KeyAttributes: &keyvault.KeyAttributes{Enabled: to.BoolPtr(false)}})
	must(t, err, "disable")
	_, err = c.WrapKey(ctx, vault, name, v1, keyvault.KeyOperationsParameters{
		Algorithm: keyvault.RSAOAEP256, Value: b64(cek)})
	expectError(t, err, http.StatusForbidden, "Forbidden")

	_, err = c.GetKey(ctx, vault, uniqueName("absent"), "")
	expectError(t, err, http.StatusNotFound, "KeyNotFound")
	_, err = c.CreateKey(ctx, vault, name, keyvault.KeyCreateParameters{Kty: keyvault.RSA, KeySize: to.Int32Ptr(1000)})
	expectError(t, err, http.StatusBadRequest, "BadParameter")
}

// TestECAndImport: an EC P-256 key signs ES256 (checked with crypto/ecdsa),
// and an imported RSA key decrypts what Go encrypted.
func TestECAndImport(t *testing.T) {
	vault := env(t, "KVMOCK_VAULT_URL")
	c := dataClient(t)

	ec, err := c.CreateKey(ctx, vault, uniqueName("go-ec"), keyvault.KeyCreateParameters{
		Kty: keyvault.EC, Curve: keyvault.P256})
	must(t, err, "CreateKey EC")
	if ec.Key.Kty != keyvault.EC || ec.Key.Crv != keyvault.P256 || ec.Key.D != nil {
		t.Fatalf("EC key: %+v", ec.Key)
	}
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(unb64(t, ec.Key.X)),
		Y: new(big.Int).SetBytes(unb64(t, ec.Key.Y))}
	if !pub.Curve.IsOnCurve(pub.X, pub.Y) {
		t.Fatalf("the public point is not on P-256")
	}
	name, version := kidParts(t, vault, ec.Key.Kid)
	digest := sha256.Sum256([]byte("ec message"))
	sig, err := c.Sign(ctx, vault, name, version, keyvault.KeySignParameters{
		Algorithm: keyvault.ES256, Value: b64(digest[:])})
	must(t, err, "Sign ES256")
	raw := unb64(t, sig.Result)
	if len(raw) != 64 {
		t.Fatalf("ES256 signature is %d bytes, want r||s of 64", len(raw))
	}
	r, s := new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		t.Fatalf("crypto/ecdsa rejects the service's ES256 signature")
	}

	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err, "rsa.GenerateKey")
	priv.Precompute()
	bigB64 := func(i *big.Int) *string { return b64(i.Bytes()) }
	importName := uniqueName("go-imported")
	imported, err := c.ImportKey(ctx, vault, importName, keyvault.KeyImportParameters{
		Key: &keyvault.JSONWebKey{
			Kty:    keyvault.RSA,
			KeyOps: &[]string{"encrypt", "decrypt", "wrapKey", "unwrapKey"},
			N:      bigB64(priv.N), E: bigB64(big.NewInt(int64(priv.E))), D: bigB64(priv.D),
			P: bigB64(priv.Primes[0]), Q: bigB64(priv.Primes[1]),
			DP: bigB64(priv.Precomputed.Dp), DQ: bigB64(priv.Precomputed.Dq),
			QI: bigB64(priv.Precomputed.Qinv),
		},
		Tags: map[string]*string{"origin": to.StringPtr("go")},
	})
	must(t, err, "ImportKey")
	if rsaPublic(t, imported.Key).N.Cmp(priv.N) != 0 {
		t.Fatalf("the imported key's modulus changed")
	}
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, []byte("imported"), nil)
	must(t, err, "local encrypt")
	pt, err := c.Decrypt(ctx, vault, importName, "", keyvault.KeyOperationsParameters{
		Algorithm: keyvault.RSAOAEP256, Value: b64(ct)})
	must(t, err, "Decrypt with the imported key")
	if string(unb64(t, pt.Result)) != "imported" {
		t.Fatalf("decrypt with the imported key: %q", unb64(t, pt.Result))
	}
	// An imported key keeps the operations it was given: sign is not one.
	_, err = c.Sign(ctx, vault, importName, "", keyvault.KeySignParameters{
		Algorithm: keyvault.RS256, Value: b64(digest[:])})
	if st, _ := serviceError(t, err); st != http.StatusBadRequest && st != http.StatusForbidden {
		t.Fatalf("sign with a key without the sign operation answered %d: %v", st, err)
	}
}

// TestDeleteRecoverPurgeBackup: soft delete, the deleted-key views, recover,
// backup and restore after a purge.
func TestDeleteRecoverPurgeBackup(t *testing.T) {
	vault := env(t, "KVMOCK_VAULT_URL")
	c := dataClient(t)
	name := uniqueName("go-life")
	created, err := c.CreateKey(ctx, vault, name, keyvault.KeyCreateParameters{Kty: keyvault.EC, Curve: keyvault.P256})
	must(t, err, "CreateKey")

	backup, err := c.BackupKey(ctx, vault, name)
	must(t, err, "BackupKey")
	blob := unb64(t, backup.Value)
	if len(blob) < 64 || bytes.Contains(blob, []byte(name)) {
		t.Fatalf("the backup is %d bytes and names the key in clear: it is not sealed", len(blob))
	}

	deleted, err := c.DeleteKey(ctx, vault, name)
	must(t, err, "DeleteKey")
	if to.String(deleted.RecoveryID) != vault+"/deletedkeys/"+name {
		t.Fatalf("recoveryId %s", to.String(deleted.RecoveryID))
	}
	if deleted.DeletedDate == nil || deleted.ScheduledPurgeDate == nil ||
		!time.Time(*deleted.ScheduledPurgeDate).After(time.Time(*deleted.DeletedDate)) {
		t.Fatalf("deletedDate %v, scheduledPurgeDate %v", deleted.DeletedDate, deleted.ScheduledPurgeDate)
	}
	if to.String(deleted.Key.Kid) != to.String(created.Key.Kid) {
		t.Fatalf("the deleted key is %s, want %s", to.String(deleted.Key.Kid), to.String(created.Key.Kid))
	}
	_, err = c.GetKey(ctx, vault, name, "")
	expectError(t, err, http.StatusNotFound, "KeyNotFound")
	_, err = c.CreateKey(ctx, vault, name, keyvault.KeyCreateParameters{Kty: keyvault.RSA})
	expectError(t, err, http.StatusConflict, "Conflict")

	gotDeleted, err := c.GetDeletedKey(ctx, vault, name)
	must(t, err, "GetDeletedKey")
	if to.String(gotDeleted.Key.Kid) != to.String(created.Key.Kid) {
		t.Fatalf("GetDeletedKey answered %s", to.String(gotDeleted.Key.Kid))
	}
	listed := false
	dit, err := c.GetDeletedKeysComplete(ctx, vault, nil)
	for ; err == nil && dit.NotDone(); err = dit.NextWithContext(ctx) {
		if to.String(dit.Value().RecoveryID) == vault+"/deletedkeys/"+name {
			listed = true
		}
	}
	must(t, err, "GetDeletedKeys")
	if !listed {
		t.Fatalf("the deleted key is not in the deleted-key list")
	}

	recovered, err := c.RecoverDeletedKey(ctx, vault, name)
	must(t, err, "RecoverDeletedKey")
	if to.String(recovered.Key.Kid) != to.String(created.Key.Kid) {
		t.Fatalf("recovered %s", to.String(recovered.Key.Kid))
	}
	_, err = c.GetKey(ctx, vault, name, "")
	must(t, err, "GetKey after recover")

	// Delete and purge; then the backup brings the same key back.
	_, err = c.DeleteKey(ctx, vault, name)
	must(t, err, "DeleteKey again")
	purged, err := c.PurgeDeletedKey(ctx, vault, name)
	must(t, err, "PurgeDeletedKey")
	if purged.StatusCode != http.StatusNoContent {
		t.Fatalf("purge answered %d, want 204", purged.StatusCode)
	}
	_, err = c.GetDeletedKey(ctx, vault, name)
	expectError(t, err, http.StatusNotFound, "KeyNotFound")

	restored, err := c.RestoreKey(ctx, vault, keyvault.KeyRestoreParameters{KeyBundleBackup: backup.Value})
	must(t, err, "RestoreKey")
	if to.String(restored.Key.Kid) != to.String(created.Key.Kid) || to.String(restored.Key.X) != to.String(created.Key.X) {
		t.Fatalf("restored %s, want %s", to.String(restored.Key.Kid), to.String(created.Key.Kid))
	}
	_, err = c.RestoreKey(ctx, vault, keyvault.KeyRestoreParameters{KeyBundleBackup: backup.Value})
	expectError(t, err, http.StatusConflict, "Conflict")
	tampered := append([]byte(nil), blob...)
	tampered[len(tampered)/2] ^= 1
	_, err = c.RestoreKey(ctx, vault, keyvault.KeyRestoreParameters{KeyBundleBackup: b64(tampered)})
	expectError(t, err, http.StatusBadRequest, "BadParameter")
}

// TestDenied: the identity in the environment may only get and list keys.
func TestDenied(t *testing.T) {
	vault := env(t, "KVMOCK_VAULT_URL")
	c := dataClient(t)
	_, err := c.CreateKey(ctx, vault, uniqueName("go-denied"), keyvault.KeyCreateParameters{Kty: keyvault.RSA})
	expectError(t, err, http.StatusForbidden, "Forbidden")
	var de autorest.DetailedError
	if errors.As(err, &de) {
		var re *azure.RequestError
		if errors.As(de.Original, &re) && !strings.Contains(re.ServiceError.Message, "create") {
			t.Fatalf("the 403 does not name the refused permission: %s", re.ServiceError.Message)
		}
	}
	_, err = c.GetKeysComplete(ctx, vault, nil)
	must(t, err, "GetKeys with list permission")
}

// TestARM: the environment from kvmock's /metadata/endpoints, then vaults
// through the management client: create (a long-running operation), get,
// list, access policy, patch, delete, the deleted view, and purge.
// armAuthorizer is Resource Manager's environment, read from kvmock's metadata endpoint,
// and an authorizer for it from the SDK's own environment variables.
func armAuthorizer(t *testing.T) (azure.Environment, autorest.Authorizer) {
	t.Helper()
	armURL := env(t, "KVMOCK_ARM_URL")
	cloud, err := azure.EnvironmentFromURL(armURL)
	must(t, err, "EnvironmentFromURL")
	if cloud.ActiveDirectoryEndpoint != armURL || cloud.ResourceManagerEndpoint != armURL ||
		cloud.TokenAudience == "" {
		t.Fatalf("the environment from %s: login %q, ARM %q, audience %q", armURL,
			cloud.ActiveDirectoryEndpoint, cloud.ResourceManagerEndpoint, cloud.TokenAudience)
	}
	settings, err := azauth.GetSettingsFromEnvironment()
	must(t, err, "GetSettingsFromEnvironment")
	settings.Values[azauth.Resource] = cloud.TokenAudience
	authorizer, err := settings.GetAuthorizer()
	must(t, err, "GetAuthorizer for Resource Manager")
	return cloud, authorizer
}

// vaultsClient is the Microsoft.KeyVault vaults client on kvmock's Resource Manager,
// polling its long-running operations every 100 ms.
func vaultsClient(cloud azure.Environment, authorizer autorest.Authorizer, sub string) mgmt.VaultsClient {
	vaults := mgmt.NewVaultsClientWithBaseURI(cloud.ResourceManagerEndpoint, sub)
	vaults.Authorizer = authorizer
	vaults.PollingDelay = 100 * time.Millisecond
	return vaults
}

// createVault makes a vault named PREFIX-… in $KVMOCK_RG, in westeurope, with PROPS in the
// tenant $AZURE_TENANT_ID, and answers its client and the vault.
func createVault(t *testing.T, prefix string, props mgmt.VaultProperties) (mgmt.VaultsClient, mgmt.Vault) {
	t.Helper()
	tenant := uuid.FromStringOrNil(env(t, "AZURE_TENANT_ID"))
	props.TenantID = &tenant
	cloud, authorizer := armAuthorizer(t)
	vaults := vaultsClient(cloud, authorizer, "00000000-0000-0000-0000-000000000000")
	future, err := vaults.CreateOrUpdate(ctx, env(t, "KVMOCK_RG"), uniqueName(prefix),
		mgmt.VaultCreateOrUpdateParameters{Location: to.StringPtr("westeurope"), Properties: &props})
	must(t, err, "CreateOrUpdate of a "+prefix+" vault")
	must(t, future.WaitForCompletionRef(ctx, vaults.Client), "CreateOrUpdate completion")
	vault, err := future.Result(vaults)
	must(t, err, "CreateOrUpdate result")
	return vaults, vault
}

func TestARM(t *testing.T) {
	rg := env(t, "KVMOCK_RG")
	tenant := uuid.FromStringOrNil(env(t, "AZURE_TENANT_ID"))
	cloud, authorizer := armAuthorizer(t)

	sub := "00000000-0000-0000-0000-000000000000"
	groups := resources.NewGroupsClientWithBaseURI(cloud.ResourceManagerEndpoint, sub)
	groups.Authorizer = authorizer
	groups.PollingDelay = 100 * time.Millisecond
	group, err := groups.CreateOrUpdate(ctx, rg, resources.Group{Location: to.StringPtr("westeurope")})
	must(t, err, "Groups.CreateOrUpdate")
	if to.String(group.ID) != "/subscriptions/"+sub+"/resourceGroups/"+rg || to.String(group.Location) != "westeurope" {
		t.Fatalf("group %s in %s", to.String(group.ID), to.String(group.Location))
	}
	exists, err := groups.CheckExistence(ctx, rg)
	must(t, err, "Groups.CheckExistence")
	if exists.StatusCode != http.StatusNoContent {
		t.Fatalf("CheckExistence of a group answered %d", exists.StatusCode)
	}
	vaults := vaultsClient(cloud, authorizer, sub)
	name := uniqueName("go-vault")
	free, err := vaults.CheckNameAvailability(ctx, mgmt.VaultCheckNameAvailabilityParameters{
		Name: to.StringPtr(name), Type: to.StringPtr("Microsoft.KeyVault/vaults")})
	must(t, err, "CheckNameAvailability")
	if !to.Bool(free.NameAvailable) {
		t.Fatalf("%s is not available: %s %s", name, free.Reason, to.String(free.Message))
	}
	self := env(t, "KVMOCK_OBJECT_ID")
	future, err := vaults.CreateOrUpdate(ctx, rg, name, mgmt.VaultCreateOrUpdateParameters{
		Location: to.StringPtr("westeurope"),
		Tags:     map[string]*string{"made-by": to.StringPtr("go")},
		Properties: &mgmt.VaultProperties{
			TenantID:                  &tenant,
			Sku:                       &mgmt.Sku{Family: to.StringPtr("A"), Name: mgmt.Standard},
			EnableSoftDelete:          to.BoolPtr(true),
			SoftDeleteRetentionInDays: to.Int32Ptr(7),
			AccessPolicies: &[]mgmt.AccessPolicyEntry{{
				TenantID: &tenant, ObjectID: to.StringPtr(self),
				Permissions: &mgmt.Permissions{Keys: &[]mgmt.KeyPermissions{mgmt.KeyPermissionsGet}},
			}},
		},
	})
	must(t, err, "CreateOrUpdate")
	must(t, future.WaitForCompletionRef(ctx, vaults.Client), "CreateOrUpdate completion")
	vault, err := future.Result(vaults)
	must(t, err, "CreateOrUpdate result")
	wantID := "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.KeyVault/vaults/" + name
	if !strings.EqualFold(to.String(vault.ID), wantID) || to.String(vault.Location) != "westeurope" {
		t.Fatalf("created vault id %s in %s, want %s in westeurope", to.String(vault.ID), to.String(vault.Location), wantID)
	}
	vaultURI := strings.TrimSuffix(to.String(vault.Properties.VaultURI), "/")
	taken, err := vaults.CheckNameAvailability(ctx, mgmt.VaultCheckNameAvailabilityParameters{
		Name: to.StringPtr(name), Type: to.StringPtr("Microsoft.KeyVault/vaults")})
	must(t, err, "CheckNameAvailability of a taken name")
	if to.Bool(taken.NameAvailable) || taken.Reason != mgmt.AlreadyExists {
		t.Fatalf("a taken name: available %v, reason %s", to.Bool(taken.NameAvailable), taken.Reason)
	}
	if !strings.HasPrefix(vaultURI, "https://"+name+".vault.") {
		t.Fatalf("vaultUri %s", vaultURI)
	}

	got, err := vaults.Get(ctx, rg, name)
	must(t, err, "Get")
	if to.Int32(got.Properties.SoftDeleteRetentionInDays) != 7 || to.String(got.Tags["made-by"]) != "go" {
		t.Fatalf("get: retention %d, tags %v", to.Int32(got.Properties.SoftDeleteRetentionInDays), got.Tags)
	}
	listed := false
	it, err := vaults.ListBySubscriptionComplete(ctx, nil)
	for ; err == nil && it.NotDone(); err = it.NextWithContext(ctx) {
		listed = listed || to.String(it.Value().Name) == name
	}
	must(t, err, "ListBySubscription")
	if !listed {
		t.Fatalf("ListBySubscription does not list %s", name)
	}

	// The new vault's data plane: the policy grants get only, then create too.
	data := dataClient(t)
	_, err = data.CreateKey(ctx, vaultURI, "k", keyvault.KeyCreateParameters{Kty: keyvault.RSA})
	expectError(t, err, http.StatusForbidden, "Forbidden")
	_, err = vaults.UpdateAccessPolicy(ctx, rg, name, mgmt.Add, mgmt.VaultAccessPolicyParameters{
		Properties: &mgmt.VaultAccessPolicyProperties{AccessPolicies: &[]mgmt.AccessPolicyEntry{{
			TenantID: &tenant, ObjectID: to.StringPtr(self),
			Permissions: &mgmt.Permissions{Keys: &[]mgmt.KeyPermissions{mgmt.KeyPermissionsCreate}},
		}}},
	})
	must(t, err, "UpdateAccessPolicy add")
	created, err := data.CreateKey(ctx, vaultURI, "k", keyvault.KeyCreateParameters{Kty: keyvault.RSA})
	must(t, err, "CreateKey after the policy grants create")
	kidParts(t, vaultURI, created.Key.Kid)

	// Keys through Resource Manager (as ARM templates make them): created if absent,
	// the data plane's own keys.
	armKeys := mgmt.NewKeysClientWithBaseURI(cloud.ResourceManagerEndpoint, sub)
	armKeys.Authorizer = authorizer
	cmk, err := armKeys.CreateIfNotExist(ctx, rg, name, "cmk", mgmt.KeyCreateParameters{
		Tags: map[string]*string{"purpose": to.StringPtr("cmk")},
		Properties: &mgmt.KeyProperties{Kty: mgmt.RSA, KeySize: to.Int32Ptr(2048),
			KeyOps: &[]mgmt.JSONWebKeyOperation{mgmt.JSONWebKeyOperationWrapKey, mgmt.JSONWebKeyOperationUnwrapKey}},
	})
	must(t, err, "Keys.CreateIfNotExist")
	if cmk.KeyProperties == nil || cmk.Kty != mgmt.RSA || to.Int32(cmk.KeySize) != 2048 ||
		to.String(cmk.Tags["purpose"]) != "cmk" || to.String(cmk.ID) != to.String(vault.ID)+"/keys/cmk" {
		t.Fatalf("ARM key: %s %+v", to.String(cmk.ID), cmk.KeyProperties)
	}
	again, err := armKeys.CreateIfNotExist(ctx, rg, name, "cmk", mgmt.KeyCreateParameters{
		Properties: &mgmt.KeyProperties{Kty: mgmt.EC, CurveName: mgmt.P256}})
	must(t, err, "Keys.CreateIfNotExist again")
	if to.String(again.KeyURIWithVersion) != to.String(cmk.KeyURIWithVersion) || again.Kty != mgmt.RSA {
		t.Fatalf("a second create changed the key: %s %s", to.String(again.KeyURIWithVersion), again.Kty)
	}
	onData, err := data.GetKey(ctx, vaultURI, "cmk", "")
	must(t, err, "GetKey of the ARM key on the data plane")
	if to.String(onData.Key.Kid) != to.String(cmk.KeyURIWithVersion) {
		t.Fatalf("data plane kid %s, ARM keyUriWithVersion %s", to.String(onData.Key.Kid), to.String(cmk.KeyURIWithVersion))
	}
	keyCount := 0
	kit, err := armKeys.ListComplete(ctx, rg, name)
	for ; err == nil && kit.NotDone(); err = kit.NextWithContext(ctx) {
		keyCount++
	}
	must(t, err, "Keys.List")
	if keyCount != 2 {
		t.Fatalf("Keys.List lists %d keys, want k and cmk", keyCount)
	}
	version := to.String(cmk.KeyURIWithVersion)[strings.LastIndex(to.String(cmk.KeyURIWithVersion), "/")+1:]
	byVersion, err := armKeys.GetVersion(ctx, rg, name, "cmk", version)
	must(t, err, "Keys.GetVersion")
	if to.String(byVersion.Name) != version {
		t.Fatalf("Keys.GetVersion name %s", to.String(byVersion.Name))
	}

	patched, err := vaults.Update(ctx, rg, name, mgmt.VaultPatchParameters{
		Tags: map[string]*string{"made-by": to.StringPtr("go"), "patched": to.StringPtr("yes")}})
	must(t, err, "Update")
	if to.String(patched.Tags["patched"]) != "yes" {
		t.Fatalf("patch tags: %v", patched.Tags)
	}

	_, err = vaults.Delete(ctx, rg, name)
	must(t, err, "Delete")
	_, err = vaults.Get(ctx, rg, name)
	if st, _ := serviceError(t, err); st != http.StatusNotFound {
		t.Fatalf("get after delete answered %d", st)
	}
	dv, err := vaults.GetDeleted(ctx, name, "westeurope")
	must(t, err, "GetDeleted")
	if dv.Properties == nil || to.String(dv.Properties.Location) != "westeurope" ||
		!strings.EqualFold(to.String(dv.Properties.VaultID), wantID) || dv.Properties.ScheduledPurgeDate == nil {
		t.Fatalf("deleted vault: %+v", dv.Properties)
	}
	deletedListed := false
	dit, err := vaults.ListDeletedComplete(ctx)
	for ; err == nil && dit.NotDone(); err = dit.NextWithContext(ctx) {
		deletedListed = deletedListed || to.String(dit.Value().Name) == name
	}
	must(t, err, "ListDeleted")
	if !deletedListed {
		t.Fatalf("ListDeleted does not list %s", name)
	}
	purge, err := vaults.PurgeDeleted(ctx, name, "westeurope")
	must(t, err, "PurgeDeleted")
	must(t, purge.WaitForCompletionRef(ctx, vaults.Client), "PurgeDeleted completion")
	_, err = vaults.GetDeleted(ctx, name, "westeurope")
	if st, _ := serviceError(t, err); st != http.StatusNotFound {
		t.Fatalf("get deleted after purge answered %d", st)
	}

	// The group goes with what is left in it.
	del, err := groups.Delete(ctx, rg, "")
	must(t, err, "Groups.Delete")
	must(t, del.WaitForCompletionRef(ctx, groups.Client), "Groups.Delete completion")
	exists, err = groups.CheckExistence(ctx, rg)
	if exists.StatusCode != http.StatusNotFound {
		t.Fatalf("CheckExistence after the delete answered %d (%v)", exists.StatusCode, err)
	}
}
