// Command vault is the HashiCorp Vault v1.20.0 server and CLI, built from
// Go modules for the e2e tests (test/e2e/vault_test.go runs it in dev
// mode). scripts/install-vault.sh builds it with -tags minimal, Vault's own
// build tag that leaves out the external plugins but keeps the KV secrets
// engine and the AppRole and TLS certificate auth methods built in.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
