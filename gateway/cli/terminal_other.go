//go:build !linux

package cli

import (
	"errors"
	"os"
)

// isTerminal is false off Linux (edgegate runs on Linux): the password is
// then read as the first line of stdin, or given with --password.
func isTerminal(*os.File) bool { return false }

func readPasswordNoEcho(*os.File) (string, error) {
	return "", errors.New("password prompts need Linux; use --password or stdin")
}
