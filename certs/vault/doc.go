// Package vault syncs the gateway's trust list and issuer list from a
// HashiCorp Vault or OpenBao KV version 2 secrets engine, and reports each
// device's sync status back to it.
//
// The vault holds one secret per certificate at <prefix>/trust/<name> and
// <prefix>/issuer/<name> (the PEM in one field of the secret) and one status
// secret per device at <prefix>/status/<device-id>. Client speaks the small
// part of the Vault HTTP API this needs with net/http and encoding/json only,
// because the gateway binary's size matters and the official client pulls in
// far more than it uses. Syncer polls a Source (a Client) and hands the whole
// current set to a Target (the trust store), fetching only the secrets whose
// version changed and never handing over a partial set.
package vault
