// Package entra is a stand-in for Microsoft Entra ID, for local development
// and tests: a tenant of managed identities and users whose access tokens
// the other stand-ins (Databricks) verify as the real services verify
// Entra's.
//
// Tokens are JWTs with the claims the services read (aud, appid, oid, tid,
// exp), signed with a key of the process. A managed identity gets its
// tokens through the App Service identity endpoint, the protocol a Function
// App offers its code (IDENTITY_ENDPOINT and IDENTITY_HEADER, api-version
// 2019-08-01), which azidentity's ManagedIdentityCredential speaks
// unchanged. A developer's sign-in (the Azure CLI credential in Azure) is a
// Credential that takes tokens straight from the tenant.
package entra
